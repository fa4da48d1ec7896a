"""`dlkit report`: the ablation report of a sweep, read back from MLflow.

Per factor, the deciding metric as mean ± standard deviation over the runs at each level (seeds are
replicates, never a factor), the difference to the baseline level and the number of runs; a grid for
the first two factors; learning curves per level; a breakdown per device; and, for a study, its claim
and a verdict from dlkit/stats.py: Welch's test of treatment − control over seeds, its p-value Holm-adjusted over
the study's treatment levels, with a 95% confidence interval and Hedges' g.
Printed as tables, written as Markdown, CSV and PNG, and attached to the parent run as artifacts.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from dlkit.errors import ConfigError
from dlkit.plots import pyplot
from dlkit.stats import ALPHA, Comparison, compare, holm, p_cell, seeds_for_power
from dlkit.tracking import tags as tag
from dlkit.tracking.sweep_store import latest_attempts

REPLICATE_KEYS = {"seed"}
SMOKE = "smoke test, no verdict"  # what a quick variant's numbers say about the claim


@dataclass
class Run:
    run_id: str
    name: str
    status: str
    factors: dict[str, str]
    metrics: dict[str, float]
    device: str
    start: int


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else 0.0

    def text(self, digits: int = 4) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}" if self.values else "–"


@dataclass
class Study:
    name: str
    claim: str
    factor: str
    control: str
    treatment: str
    metric: str
    direction: str  # "higher" or "lower": which way of treatment − control supports the claim
    smoke: bool = False  # a quick variant: a smoke test of the study, whose numbers decide nothing


@dataclass(frozen=True)
class Verdict:
    word: str  # supported, not supported, inconclusive
    comparison: Comparison  # the declared treatment against the control
    p: float  # its p-value, Holm-adjusted over the `levels` treatment levels compared with the control
    levels: int

    def line(self) -> str:
        """'supported: Δ = +0.0180 [+0.0050, +0.0310], p = 0.01, 5 vs 5 runs'; an inconclusive one says how many
        seeds would detect the difference it saw."""
        text = f"{self.word}: {self.comparison.text(self.p)}"
        if self.word == "inconclusive":
            needed = seeds_for_power(self.comparison.g)
            text += (
                f"; about {needed} seeds per level would detect a difference this size with 80% power" if needed else ""
            )
        return text


@dataclass
class Report:
    title: str
    metric: str
    runs: list[Run]
    factors: list[str]
    study: Study | None = None
    parent_run_id: str | None = None
    uri: str = ""

    def levels(self, factor: str) -> list[str]:
        seen: list[str] = []
        for run in sorted(self.runs, key=lambda r: r.start):
            level = run.factors.get(factor)
            if level is not None and level not in seen:
                seen.append(level)
        return seen

    def cell(self, **where: str) -> Cell:
        cell = Cell()
        for run in self.runs:
            if (
                run.status == "FINISHED"
                and self.metric in run.metrics
                and all(run.factors.get(k) == v for k, v in where.items())
            ):
                cell.values.append(run.metrics[self.metric])
        return cell

    def devices(self) -> dict[str, list[Run]]:
        by_device: dict[str, list[Run]] = defaultdict(list)
        for run in self.runs:
            by_device[run.device].append(run)
        return dict(by_device)

    def comparisons(self) -> dict[str, tuple[Comparison, float]]:
        """Every level of the study's factor against its control: the comparison and its Holm-adjusted p-value."""
        assert self.study is not None
        s = self.study
        control = self.cell(**{s.factor: s.control}).values
        levels = [level for level in self.levels(s.factor) if level != s.control]
        found = {level: compare(control, self.cell(**{s.factor: level}).values) for level in levels}
        adjusted = holm([c.p for c in found.values()])
        return {level: (c, p) for (level, c), p in zip(found.items(), adjusted)}

    def verdict(self) -> Verdict:
        """The study's claim, decided by its declared treatment against its control."""
        assert self.study is not None
        s = self.study
        found = self.comparisons()
        comparison, p = found.get(s.treatment) or (compare([], []), math.nan)
        if s.smoke:
            word = SMOKE
        elif comparison.method == "too few":
            word = "inconclusive (fewer than 2 runs per level)"
        elif p < ALPHA:
            word = "supported" if (comparison.diff > 0) == (s.direction == "higher") else "not supported"
        else:
            word = "inconclusive"
        return Verdict(word, comparison, p, len(found))


def load(
    uri: str,
    sweep_id: str | None = None,
    experiment: str | None = None,
    metric: str | None = None,
    study: str | None = None,
) -> Report:
    """The report of one sweep: by parent run id, the latest of a study, or the latest of all; or of an experiment."""
    from dlkit.tracking import store

    client = store.client(uri)
    experiments = client.search_experiments()
    if experiment is not None:
        found = [e for e in experiments if e.name == experiment]
        if not found:
            from dlkit.errors import unknown

            raise unknown("experiment", experiment, [e.name for e in experiments])
        experiments = found
    ids = [e.experiment_id for e in experiments]
    if not ids:
        raise ConfigError(f"the store {uri} holds no experiment yet: run a sweep first (dlkit -m ...).")
    parent = None
    if sweep_id is None and experiment is None:
        which = f"tags.`{tag.STUDY}` = '{study}'" if study else f"tags.`{tag.SWEEP}` = '{tag.SWEEP_PARENT}'"
        parents = client.search_runs(ids, filter_string=which, order_by=["attributes.start_time DESC"], max_results=1)
        if not parents:
            raise ConfigError(
                f"no {'study ' + study if study else 'sweep'} in {uri}: run one with dlkit -m ..., or name an "
                "experiment with --experiment."
            )
        parent = parents[0]
    elif sweep_id is not None:
        try:
            parent = client.get_run(sweep_id)
        except Exception:
            raise ConfigError(
                f"no run '{sweep_id}' in {uri}; `dlkit report` without --sweep takes the latest sweep."
            ) from None
    if parent is not None:
        found = latest_attempts(
            client.search_runs(
                [parent.info.experiment_id], filter_string=f"tags.`{tag.PARENT}` = '{parent.info.run_id}'"
            )
        )
        factors = [f for f in parent.data.tags.get(tag.FACTORS, "").split(",") if f and f not in REPLICATE_KEYS]
        title = f"{parent.info.run_name} ({parent.info.run_id})"
    else:
        found = [r for r in client.search_runs(ids) if r.data.tags.get(tag.SWEEP) != tag.SWEEP_PARENT]
        factors = sorted(
            {k[len(tag.FACTOR_PREFIX) :] for r in found for k in r.data.tags if k.startswith(tag.FACTOR_PREFIX)}
            - REPLICATE_KEYS
        )
        title = f"experiment {experiment}"
    if not found:
        raise ConfigError(f"{title} has no runs to report on.")
    runs = [
        Run(
            r.info.run_id,
            r.info.run_name,
            r.info.status + (f" ({r.data.tags[tag.FAILURE]})" if tag.FAILURE in r.data.tags else ""),
            {k[len(tag.FACTOR_PREFIX) :]: v for k, v in r.data.tags.items() if k.startswith(tag.FACTOR_PREFIX)},
            dict(r.data.metrics),
            f"{r.data.tags.get('device.accelerator', '?')}: {r.data.tags.get('device.name', '?')}",
            r.info.start_time,
        )
        for r in found
    ]
    declared = _study(parent.data.tags) if parent is not None else None
    chosen = (
        metric
        or (declared.metric if declared else None)
        or next(
            (m for m in ("test/acc", "test/token_acc", "test/mse", "test/loss") if any(m in r.metrics for r in runs)),
            "test/loss",
        )
    )
    derive(chosen, runs, client)
    return Report(title, chosen, runs, factors, declared, parent.info.run_id if parent is not None else None, uri)


def derive(metric: str, runs: list[Run], client) -> None:
    """Metrics computed from what the runs logged, stored on each run under the metric's own text:
    `a - b` (for example `train_eval/acc - test/acc`, the generalization gap) and
    `epochs_to:val/acc>=0.9` (the first epoch reaching a target; max_epochs + 1 when never reached)."""
    if " - " in metric:
        a, b = (part.strip() for part in metric.split(" - ", 1))
        for run in runs:
            if a in run.metrics and b in run.metrics:
                run.metrics[metric] = run.metrics[a] - run.metrics[b]
    elif metric.startswith("epochs_to:"):
        key, _, target = metric[len("epochs_to:") :].partition(">=")
        for run in runs:
            history = sorted(client.get_metric_history(run.run_id, key.strip()), key=lambda m: m.step)
            if history:
                reached = [m.step + 1 for m in history if m.value >= float(target)]
                run.metrics[metric] = float(reached[0] if reached else len(history) + 1)


def _study(tags: dict[str, str]) -> Study | None:
    if tag.STUDY not in tags:
        return None
    get = lambda key: tags.get(f"{tag.STUDY}.{key}", "")  # noqa: E731
    return Study(
        tags[tag.STUDY],
        get("claim"),
        get("factor"),
        get("control"),
        get("treatment"),
        get("metric"),
        get("direction") or "higher",
        get("smoke").lower() == "true",
    )


# --- rendering -----------------------------------------------------------------------------------
def markdown(report: Report, curves: list[str] = ()) -> str:
    lines = [f"## {report.study.name if report.study else 'Sweep'}: {report.title}", ""]
    if report.study:
        verdict = report.verdict()
        s = report.study
        lines += [
            f"**Claim:** {s.claim}",
            "",
            f"**Verdict: {verdict.line()}** — {s.factor}={s.treatment} against {s.factor}={s.control} on"
            f" `{s.metric}` ({s.direction} supports the claim). Welch's t-test, two-sided, p Holm-adjusted over the"
            f" {verdict.levels} level(s) compared with the control; decided at p < {ALPHA:g}.",
            "",
            f"| {s.factor} against {s.control} | Δ [95% CI] | p (Holm) | Hedges' g | runs |",
            "|---|---|---|---|---|",
        ]
        for level, (c, p) in report.comparisons().items():
            g = f"{c.g:+.2f}" if math.isfinite(c.g) else "–"
            lines.append(f"| {level} | {c.interval()} | {p_cell(p)} | {g} | {c.n_treatment} vs {c.n_control} |")
        lines.append("")
    failed = [r for r in report.runs if r.status != "FINISHED"]
    lines.append(
        f"Metric `{report.metric}`, mean ± standard deviation over seeds; {len(report.runs)} runs"
        + (
            f", {len(failed)} not finished (left out: {', '.join(f'{r.name} {r.status}' for r in failed)})"
            if failed
            else ""
        )
        + "."
    )
    for factor in report.factors:
        lines += ["", f"### {factor}", "", "| level | mean ± std | Δ to baseline | runs |", "|---|---|---|---|"]
        for row in factor_rows(report, factor):
            lines.append(f"| {row['level']} | {row['mean ± std']} | {row['delta']} | {row['runs']} |")
    if len(report.factors) >= 2:
        a, b = report.factors[:2]
        lines += [
            "",
            f"### {a} × {b}",
            "",
            f"| {a} \\ {b} | " + " | ".join(report.levels(b)) + " |",
            "|---" * (len(report.levels(b)) + 1) + "|",
        ]
        for level_a in report.levels(a):
            cells = [report.cell(**{a: level_a, b: level_b}) for level_b in report.levels(b)]
            lines.append(f"| {level_a} | " + " | ".join(f"{c.text()} (n={c.n})" for c in cells) + " |")
    devices = report.devices()
    if len(devices) > 1:
        lines += ["", "### Devices", "", "| device | runs | mean ± std | s/epoch |", "|---|---|---|---|"]
        for device, runs in devices.items():
            cell = Cell([r.metrics[report.metric] for r in runs if report.metric in r.metrics])
            seconds = [r.metrics["train/epoch_seconds"] for r in runs if "train/epoch_seconds" in r.metrics]
            lines.append(
                f"| {device} | {len(runs)} | {cell.text()} | {statistics.fmean(seconds):.3f} |"
                if seconds
                else f"| {device} | {len(runs)} | {cell.text()} | – |"
            )
    for path in curves:  # relative to the document's folder: the figures show on disk and in MLflow's artifact view
        lines += ["", f"![learning curves]({path})"]
    return "\n".join(lines) + "\n"


def factor_rows(report: Report, factor: str) -> list[dict[str, str]]:
    levels = report.levels(factor)
    baseline = (
        report.study.control if report.study and report.study.factor == factor else (levels[0] if levels else None)
    )
    base = report.cell(**{factor: baseline}) if baseline is not None else Cell()
    rows = []
    for level in levels:
        cell = report.cell(**{factor: level})
        delta = "baseline" if level == baseline else (f"{cell.mean - base.mean:+.4f}" if cell.n and base.n else "–")
        rows.append(
            {
                "factor": factor,
                "level": level,
                "mean": f"{cell.mean:.6f}",
                "std": f"{cell.std:.6f}",
                "mean ± std": cell.text(),
                "delta": delta,
                "runs": str(cell.n),
            }
        )
    return rows


def write(report: Report, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = [*learning_curves(report, folder)]
    with open(folder / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["factor", "level", "mean", "std", "delta", "runs"], extrasaction="ignore")
        writer.writeheader()
        for factor in report.factors:
            writer.writerows(factor_rows(report, factor))
    (folder / "report.md").write_text(markdown(report, [p.name for p in files]))
    return [folder / "report.md", folder / "report.csv", *files]


def learning_curves(report: Report, folder: Path) -> list[Path]:
    plt = pyplot()

    from dlkit.tracking import store

    client = store.client(report.uri)
    curve = "val/" + report.metric.split("/", 1)[-1]
    paths = []
    for factor in report.factors:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for level in report.levels(factor):
            for ax, key in zip(axes, (curve, "train/loss")):
                by_step: dict[int, list[float]] = defaultdict(list)
                for run in report.runs:
                    if run.factors.get(factor) == level:
                        for m in client.get_metric_history(run.run_id, key):
                            by_step[m.step].append(m.value)
                if by_step:
                    steps = sorted(by_step)
                    ax.plot(
                        [s + 1 for s in steps], [statistics.fmean(by_step[s]) for s in steps], label=f"{factor}={level}"
                    )
        for ax, key in zip(axes, (curve, "train/loss")):
            ax.set_xlabel("epoch")
            ax.set_ylabel(key)
            ax.legend()
        fig.suptitle(f"{factor}: mean over seeds")
        fig.tight_layout()
        path = folder / f"curves_{factor.replace('/', '_')}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths


def print_tables(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if report.study:
        console.print(f"[bold]{report.study.name}[/bold]: {report.study.claim}")
        console.print(f"verdict: [bold]{report.verdict().line()}[/bold]")
    for factor in report.factors:
        table = Table(title=f"{factor}: {report.metric}, mean ± std over seeds")
        for column in ("level", "mean ± std", "Δ to baseline", "runs"):
            table.add_column(column)
        for row in factor_rows(report, factor):
            table.add_row(row["level"], row["mean ± std"], row["delta"], row["runs"])
        console.print(table)
    for run in report.runs:
        if run.status != "FINISHED":
            console.print(f"left out, not finished: {run.name} {run.status}")


def attach(report: Report, files: list[Path]) -> None:
    if report.parent_run_id is None:
        return
    from dlkit.tracking import store

    client = store.client(report.uri)
    for path in files:
        client.log_artifact(report.parent_run_id, str(path), artifact_path="report")
