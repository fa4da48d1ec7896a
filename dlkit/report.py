"""`dlkit report`: the ablation report of a sweep, read back from MLflow.

Per factor, the deciding metric as mean ± standard deviation over the runs at each level (seeds are
replicates, never a factor; a run that diverged counts as the worst outcome, a target never reached as
censored, "> 30"), the difference to the baseline level and the number of runs; a grid for the first two
factors; learning curves per level; a breakdown per device; for a study, its claim and a verdict per comparison
(dlkit/verdict.py); for an optimizing sweeper's trials (optuna), the trials best first and the metric against
each searched value. Printed as tables, written as Markdown, CSV and PNG, and attached to the parent run.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dlkit.errors import ConfigError
from dlkit.metrics import DIFFERENCE, EPOCHS_TO, condition, parse, run_outcome
from dlkit.plots import pyplot
from dlkit.stats import p_cell
from dlkit.tracking import tags as tag
from dlkit.tracking.sweep_store import latest_attempts
from dlkit.verdict import Study, Verdict, cell_text, decide


@dataclass
class Run:
    run_id: str
    name: str
    status: str
    factors: dict[str, str]
    metrics: dict[str, float]
    device: str
    start: int
    failure: str = ""  # dlkit.failure: diverged, recording, an exception's type
    pruned_epoch: int | None = None  # a search's trial its pruner stopped: the epoch (from 0)
    trial: str = ""  # a search's trial: Optuna's number
    epochs: int = 0  # the epochs it trained, from its history
    max_epochs: str = "?"  # trainer.max_epochs
    stopped: str = ""  # why it was stopped before max_epochs (tags.STOPPED_REASON): early stopping, pruned

    def counts(self, metric: str) -> bool:
        """Whether the run is an outcome for `metric`: it finished, or it diverged and where a diverged run stands on
        the metric's scale is known (see value)."""
        if self.status == "FINISHED":
            return metric in self.metrics
        return self.failure == "diverged" and parse(metric).direction is not None

    def trained(self) -> str:
        return tag.trained(self.epochs, self.max_epochs, self.stopped)

    def value(self, metric: str) -> float:
        if self.status == "FINISHED":
            return self.metrics[metric]
        parsed = parse(metric)
        if parsed.kind == EPOCHS_TO:  # diverged: the epoch it reached the target first, or never (censored)
            return self.metrics.get(metric, math.inf)
        return -math.inf if parsed.direction == "higher" else math.inf  # diverged: worse than any run that did not


@dataclass
class Cell:
    """A metric's values over some runs; ±inf is beyond every number (`beyond`: '> 30' never reached, 'diverged')."""

    values: list[float] = field(default_factory=list)
    beyond: str = "diverged"

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def finite(self) -> list[float]:
        return [v for v in self.values if math.isfinite(v)]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.finite) if self.finite else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.finite) if len(self.finite) > 1 else 0.0

    def text(self, digits: int = 4) -> str:
        """'0.9080 ± 0.0360'; with runs beyond every number, how many: '12.8 ± 1.5 (4/5 reached)', '> 30 (0/5
        reached)', '0.1010 ± 0.0000 (1/5 diverged)'."""
        shown = f"{self.mean:.{digits}f} ± {self.std:.{digits}f}" if self.finite else ""
        beyond = self.n - len(self.finite)
        if not beyond:
            return shown or "–"
        censored = self.beyond.startswith(">")
        tail = f"{len(self.finite)}/{self.n} reached" if censored else f"{beyond}/{self.n} diverged"
        return f"{shown or (self.beyond if censored else '–')} ({tail})"


@dataclass
class Report:
    title: str
    metric: str
    runs: list[Run]
    factors: list[str]
    study: Study | None = None
    parent_run_id: str | None = None
    uri: str = ""
    beyond: dict[str, str] = field(default_factory=dict)  # per derived metric, how its ±inf reads: '> 30'
    search: str = ""  # "lower" or "higher": a search's trials (hydra/sweeper=optuna), best first that way
    study_name: str = ""  # a search's Optuna study, and where it is stored
    storage: str = ""

    def levels(self, factor: str) -> list[str]:
        seen: list[str] = []
        for run in sorted(self.runs, key=lambda r: r.start):
            level = run.factors.get(factor)
            if level is not None and level not in seen:
                seen.append(level)
        return seen

    def values(self, metric: str, where: Mapping[str, str]) -> list[float]:
        """`metric` over the runs of one cell that count as outcomes (finished, or diverged: see Run.counts)."""
        return [
            run.value(metric)
            for run in self.runs
            if all(run.factors.get(k) == v for k, v in where.items()) and run.counts(metric)
        ]

    def cell(self, **where: str) -> Cell:
        return Cell(self.values(self.metric, where), self.beyond_text(self.metric))

    def beyond_text(self, metric: str) -> str:
        return self.beyond.get(metric, "diverged")

    def left_out(self) -> list[Run]:
        """Runs that are no outcome of the deciding metric: interrupted, failed other than by diverging."""
        return [run for run in self.runs if not run.counts(self.metric)]

    def devices(self) -> dict[str, list[Run]]:
        by_device: dict[str, list[Run]] = defaultdict(list)
        for run in self.runs:
            by_device[run.device].append(run)
        return dict(by_device)

    def verdicts(self) -> list[Verdict]:
        """One per comparison the study declares, its treatment's first (see dlkit/verdict.py)."""
        assert self.study is not None
        return decide(self.study, self.levels(self.study.factor), self.values, self.beyond_text)

    def verdict(self) -> Verdict:
        """The study's claim, decided by its declared treatment against its control."""
        return self.verdicts()[0]

    def trials(self) -> list[Run]:
        """A search's trials, best first: those that ran to their end, then the pruned ones (their metric is an
        earlier epoch's)."""
        done = [run for run in self.runs if run.status == "FINISHED" and self.metric in run.metrics]
        ranked = sorted(done, key=lambda r: r.metrics[self.metric], reverse=self.search == "higher")
        return sorted(ranked, key=lambda r: r.pruned_epoch is not None)


def load(
    uri: str,
    sweep_id: str | None = None,
    experiment: str | None = None,
    metric: str | None = None,
    study: str | None = None,
) -> Report:
    """The report of one sweep: by parent run id, the latest of a study, or the latest of all; or of an experiment."""
    from dlkit.tracking import store

    if metric is not None:
        parse(metric, "--metric")  # a malformed one is named before the store is read
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
        factors = [f for f in parent.data.tags.get(tag.FACTORS, "").split(",") if f and f not in tag.REPLICATES]
        title = f"{parent.info.run_name} ({parent.info.run_id})"
    else:
        found = [r for r in client.search_runs(ids) if r.data.tags.get(tag.SWEEP) != tag.SWEEP_PARENT]
        factors = sorted(
            {k[len(tag.FACTOR_PREFIX) :] for r in found for k in r.data.tags if k.startswith(tag.FACTOR_PREFIX)}
            - tag.REPLICATES
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
            run_outcome(r.data.metrics),  # an early-stopped run's best epoch's
            f"{r.data.tags.get('device.accelerator', '?')}: {r.data.tags.get('device.name', '?')}",
            r.info.start_time,
            r.data.tags.get(tag.FAILURE, "") if r.info.status == "FAILED" else "",
            int(r.data.tags[tag.PRUNED_EPOCH]) if tag.PRUNED_EPOCH in r.data.tags else None,
            r.data.tags.get(tag.TRIAL_NUMBER, ""),
            len({m.step for m in client.get_metric_history(r.info.run_id, "train/loss")}),
            r.data.params.get("trainer.max_epochs", "?"),
            r.data.tags.get(tag.STOPPED_REASON, "pruned" if tag.PRUNED_EPOCH in r.data.tags else ""),
        )
        for r in found
    ]
    tags = parent.data.tags if parent is not None else {}
    declared = Study.from_tags(tags)
    search = ""
    if tag.SEARCH_STUDY in tags:  # trials of a search, not levels of a factor
        objective = tags.get(tag.OBJECTIVE)
        metric = metric or objective
        if metric == objective:
            search = "higher" if tags.get(tag.MAXIMIZE) == "true" else "lower"
        else:
            search = parse(metric).direction or "lower"
    chosen = (
        metric
        or (declared.metric if declared else None)
        or next(
            (m for m in ("test/acc", "test/token_acc", "test/mse", "test/loss") if any(m in r.metrics for r in runs)),
            "test/loss",
        )
    )
    needed = [chosen]
    if declared:
        needed += [*declared.guards, condition(declared.trained, "study.trained").metric if declared.trained else ""]
    beyond = {}
    for name in dict.fromkeys(m for m in needed if m):
        beyond.update(derive(name, runs, client))
    parent_id = parent.info.run_id if parent is not None else None
    return Report(
        title,
        chosen,
        runs,
        factors,
        declared,
        parent_id,
        uri,
        beyond,
        search,
        tags.get(tag.SEARCH_STUDY, ""),
        tags.get(tag.SEARCH_STORAGE, ""),
    )


def derive(metric: str, runs: list[Run], client) -> dict[str, str]:
    """Metrics computed from what the runs logged (see dlkit/metrics.py), stored on each run under the metric's own
    text: a difference of two final metrics, or the first epoch reaching a target (+inf when never reached:
    censored, all runs at the same max_epochs). Returns how such a metric's +inf reads: {metric: '> 30'}."""
    parsed = parse(metric)
    if parsed.kind == DIFFERENCE:
        for run in runs:
            value = parsed.of(run.metrics)
            if value is not None:
                run.metrics[metric] = value
    elif parsed.kind == EPOCHS_TO:
        ran = 0
        for run in runs:
            history = client.get_metric_history(run.run_id, parsed.bases[0])
            if history:
                run.metrics[metric] = parsed.first_epoch([(m.step, m.value) for m in history])
                ran = max(ran, len(history))
        return {metric: f"> {ran}"}
    return {}


# --- rendering -----------------------------------------------------------------------------------
def markdown(report: Report, figures: Sequence[str] = ()) -> str:
    """report.md: figures are paths relative to the document, so that they show on disk and in MLflow's view."""
    lines = [f"## {report.study.name if report.study else 'Sweep'}: {report.title}", ""]
    if report.study:
        lines += [*_study_lines(report), ""]
    left_out = report.left_out()
    lines.append(
        f"Metric `{report.metric}`, mean ± standard deviation over seeds; {len(report.runs)} runs"
        + (f", {len(left_out)} left out: {', '.join(f'{r.name} {r.status}' for r in left_out)}" if left_out else "")
        + "."
    )
    if report.search:
        lines += ["", f"### Trials, best first ({report.search} is better)", ""]
        lines += _markdown_table(*_trial_table(report))
        weights = importances(report)
        if weights:
            lines += ["", f"### What mattered: Optuna's parameter importances for `{report.metric}`", ""]
            lines += _markdown_table(*_importance_table(weights))
    else:
        for factor in report.factors:
            lines += ["", f"### {_factor_title(report, factor)}", ""]
            rows = factor_rows(report, factor)
            lines += _markdown_table(
                ["level", "mean ± std", "Δ to baseline", "runs"],
                [[r["level"], r["mean ± std"], r["delta"], r["runs"]] for r in rows],
            )
        if len(report.factors) >= 2:
            lines += ["", f"### {' × '.join(report.factors[:2])}", ""]
            lines += _markdown_table(*_grid(report))
        lines += ["", "### Runs", ""]
        lines += _markdown_table(*_run_table(report))
    devices = report.devices()
    if len(devices) > 1:
        lines += ["", "### Devices", "", "| device | runs | mean ± std | s/epoch |", "|---|---|---|---|"]
        for device, runs in devices.items():
            cell = Cell([r.metrics[report.metric] for r in runs if report.metric in r.metrics])
            seconds = [r.metrics["train/epoch_seconds"] for r in runs if "train/epoch_seconds" in r.metrics]
            per_epoch = f"{statistics.fmean(seconds):.3f}" if seconds else "–"
            lines.append(f"| {device} | {len(runs)} | {cell.text()} | {per_epoch} |")
    for path in figures:
        lines += ["", f"![{Path(path).stem}]({path})"]
    return "\n".join(lines) + "\n"


def _study_lines(report: Report) -> list[str]:
    s = report.study
    verdicts = report.verdicts()
    first = verdicts[0]
    needs = [f"training far enough (`{s.trained}` for the control)"] if s.trained else []
    needs += [f"`{m}` not worse by more than {margin:g}" for m, margin in s.guards.items()]
    lines = [
        f"**Claim:** {s.claim}",
        "",
        f"**Verdict: {first.line()}** — {cell_text(first.arm.treatment)} against {cell_text(first.arm.control)}"
        f" on `{s.metric}` ({s.direction} supports the claim). Welch's t-test, two-sided (a rank test where a run"
        f" never reached its target or diverged), p Holm-adjusted over the {first.levels} comparison(s); decided"
        f" at p < 0.05" + (f"; a verdict also needs {' and '.join(needs)}" if needs else "") + ".",
        "",
    ]
    rows = [
        [
            v.arm.label,
            cell_text(v.arm.control),
            v.word + (f": {v.why}" if v.why else ""),
            v.comparison.interval(),
            p_cell(v.p),
            f"{v.comparison.g:+.2f}" if math.isfinite(v.comparison.g) else "–",
            f"{v.comparison.n_treatment} vs {v.comparison.n_control}",
        ]
        for v in verdicts
    ]
    return lines + _markdown_table(
        ["treatment", "control", "verdict", "Δ [95% CI]", "p (Holm)", "Hedges' g", "runs"], rows
    )


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _factor_title(report: Report, factor: str) -> str:
    others = [f for f in report.factors if f != factor]
    return factor + (f" (pooled over the levels of {', '.join(others)})" if others else "")


def _grid(report: Report) -> tuple[list[str], list[list[str]]]:
    """The first two factors' cells: mean ± std (n)."""
    a, b = report.factors[:2]
    header = [f"{a} \\ {b}", *report.levels(b)]
    rows = [
        [level_a, *(f"{c.text()} (n={c.n})" for c in (report.cell(**{a: level_a, b: lb}) for lb in report.levels(b)))]
        for level_a in report.levels(a)
    ]
    return header, rows


def _trial_table(report: Report) -> tuple[list[str], list[list[str]]]:
    header = ["trial #", *report.factors, report.metric, "trained"]
    rows = [
        [
            run.trial or run.name,
            *(_short(run.factors.get(f, "–")) for f in report.factors),
            f"{run.metrics[report.metric]:.4f}",
            run.trained(),
        ]
        for run in report.trials()
    ]
    return header, rows


def _run_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Each run: its status, the deciding metric and the epochs it trained (an early-stopped one's fewer)."""
    header = ["run", "status", report.metric, "trained"]
    rows = [
        [
            run.name,
            run.status,
            f"{run.metrics[report.metric]:.4f}" if report.metric in run.metrics else "–",
            run.trained(),
        ]
        for run in sorted(report.runs, key=lambda r: r.start)
    ]
    return header, rows


def _short(value: str) -> str:
    """A searched number as a table shows it (4 significant digits); any other value as it is."""
    try:
        return f"{float(value):.4g}" if not value.lstrip("-").isdigit() else value
    except ValueError:
        return value


def _importance_table(importances: Mapping[str, float]) -> tuple[list[str], list[list[str]]]:
    return ["searched key", "importance"], [[k, f"{v:.3f}"] for k, v in importances.items()]


def importances(report: Report) -> dict[str, float]:
    """Optuna's importance of each searched key for the objective (fANOVA over the finished trials); {} when the
    study cannot tell (fewer than two finished trials, or it is not reachable)."""
    if not report.study_name:
        return {}
    import optuna

    from dlkit import search

    try:
        study = optuna.load_study(study_name=report.study_name, storage=search.open_storage(report.storage))
        return dict(optuna.importance.get_param_importances(study))
    except Exception:  # too few trials, a single value searched, a storage gone: the report goes on without
        return {}


def factor_rows(report: Report, factor: str) -> list[dict[str, str]]:
    levels = report.levels(factor)
    baseline = (
        report.study.control if report.study and report.study.factor == factor else (levels[0] if levels else None)
    )
    base = report.cell(**{factor: baseline}) if baseline is not None else Cell()
    rows = []
    for level in levels:
        cell = report.cell(**{factor: level})
        whole = cell.n and base.n and len(cell.finite) == cell.n and len(base.finite) == base.n
        delta = "baseline" if level == baseline else (f"{cell.mean - base.mean:+.4f}" if whole else "–")
        rows.append(
            {
                "factor": factor,
                "level": level,
                "mean": f"{cell.mean:.6f}",
                "std": f"{cell.std:.6f}",
                "mean ± std": cell.text(),
                "delta": delta,
                "runs": str(cell.n),
                "beyond": str(cell.n - len(cell.finite)),
            }
        )
    return rows


def write(report: Report, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    figures = plots(report, folder)
    with open(folder / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["factor", "level", "mean", "std", "delta", "runs", "beyond"], extrasaction="ignore")
        writer.writeheader()
        for factor in report.factors:
            writer.writerows(factor_rows(report, factor))
    text = markdown(report, [p.name for p in figures])
    (folder / "report.md").write_text(text)
    (folder / "report.html").write_text(standalone_html(text, folder, f"Sweep {report.parent_run_id or ''}"))
    return [folder / "report.md", folder / "report.html", folder / "report.csv", *figures]


def standalone_html(text: str, folder: Path, title: str) -> str:
    """The Markdown report as one HTML page, its figures inside it as data URIs: MLflow's artifact view shows an
    HTML file with its images (its Markdown view shows an image as a line of text), and the page can be mailed."""
    import markdown as md

    def inline(match: re.Match) -> str:
        figure = folder / html.unescape(match.group(1))
        if "/" in match.group(1) or not figure.is_file():
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(figure.read_bytes()).decode()}"'

    body = re.sub(r'src="([^"]+\.png)"', inline, md.markdown(text, extensions=["tables"]))
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:1em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
        "img{max-width:100%}"
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>{body}</body></html>\n"
    )


def plots(report: Report, folder: Path) -> list[Path]:
    """Figures with names unique across studies: the trials of a search, else learning curves per factor."""
    plt = pyplot()
    from dlkit.tracking import store

    client = store.client(report.uri)
    prefix = f"{report.study.name}_" if report.study else ""
    if report.search:
        return [
            _trials_plot(plt, report, folder / f"{prefix}trials.png"),
            _history_plot(plt, report, folder / f"{prefix}history.png"),
        ]
    paths, target = [], parse(report.metric).target
    for factor in report.factors:
        panels = {}  # key -> {level: (epochs, means)}
        for key in dict.fromkeys((parse(report.metric).curve_key, "train/loss")):
            curves = {}
            for level in report.levels(factor):
                by_step: dict[int, list[float]] = defaultdict(list)
                for run in report.runs:
                    if run.factors.get(factor) == level:
                        for m in client.get_metric_history(run.run_id, key):
                            by_step[m.step].append(m.value)
                if by_step:
                    steps = sorted(by_step)
                    curves[level] = ([s + 1 for s in steps], [statistics.fmean(by_step[s]) for s in steps])
            if curves:
                panels[key] = curves
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
        for ax, (key, curves) in zip(axes[0], panels.items()):
            for level, (epochs, means) in curves.items():
                ax.plot(epochs, means, label=f"{factor}={level}")
            if target is not None and key == target.metric:
                ax.axhline(target.value, color="grey", linestyle=":", label="target")
            ax.set_xlabel("epoch")
            ax.set_ylabel(key)
            ax.legend(fontsize="small")
        others = [f for f in report.factors if f != factor]
        fig.suptitle(f"{factor}: mean over seeds" + (f", pooled over {', '.join(others)}" if others else ""))
        fig.tight_layout()
        path = folder / f"curves_{prefix}{factor.replace('/', '_')}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths


def _trials_plot(plt, report: Report, path: Path) -> Path:
    """The metric against each searched value, one point per trial."""
    trials = report.trials()
    fig, axes = plt.subplots(
        1, max(1, len(report.factors)), figsize=(5 * max(1, len(report.factors)), 4), squeeze=False
    )
    for ax, factor in zip(axes[0], report.factors):
        points = [(run.factors.get(factor), run.metrics[report.metric]) for run in trials if factor in run.factors]
        try:
            xs = [float(x) for x, _ in points]
        except ValueError:  # a categorical choice: its values in order
            xs = [sorted({x for x, _ in points}).index(x) for x, _ in points]
            ax.set_xticks(range(len({x for x, _ in points})), sorted({x for x, _ in points}))
        else:
            if xs and min(xs) > 0 and max(xs) / min(xs) > 100:
                ax.set_xscale("log")
        ax.scatter(xs, [y for _, y in points])
        ax.set_xlabel(factor)
        ax.set_ylabel(report.metric)
    fig.suptitle(f"{len(trials)} trials: {report.metric} against each searched value")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _history_plot(plt, report: Report, path: Path) -> Path:
    """The optimization history: each trial's objective in the order the trials started, and the best so far."""
    trials = sorted(report.trials(), key=lambda r: r.start)
    fig, ax = plt.subplots(figsize=(6, 4))
    ended = [(i, r.metrics[report.metric]) for i, r in enumerate(trials) if r.pruned_epoch is None]
    pruned = [(i, r.metrics[report.metric]) for i, r in enumerate(trials) if r.pruned_epoch is not None]
    ax.scatter([i + 1 for i, _ in ended], [v for _, v in ended], label="ran to the end")
    ax.scatter([i + 1 for i, _ in pruned], [v for _, v in pruned], marker="x", label="pruned (at its last epoch)")
    best, line = None, []
    for i, value in ended:
        best = value if best is None else (max if report.search == "higher" else min)(best, value)
        line.append((i + 1, best))
    ax.step([i for i, _ in line], [v for _, v in line], where="post", color="grey", label="best so far")
    ax.set_xlabel("trial (in the order started)")
    ax.set_ylabel(report.metric)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def print_tables(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()

    def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        shown = Table(title=title)
        for column in header:
            shown.add_column(column)
        for row in rows:
            shown.add_row(*row)
        console.print(shown)

    if report.study:
        console.print(f"[bold]{report.study.name}[/bold]: {report.study.claim}")
        for i, v in enumerate(report.verdicts()):
            against = f"{cell_text(v.arm.treatment)} vs {cell_text(v.arm.control)}"
            console.print(("verdict, " if i == 0 else "  ") + f"{against}: [bold]{v.line()}[/bold]")
    if report.search:
        table(f"trials, best first: {report.metric} ({report.search} is better)", *_trial_table(report))
        weights = importances(report)
        if weights:
            table("parameter importances (Optuna, fANOVA)", *_importance_table(weights))
    else:
        for factor in report.factors:
            rows = factor_rows(report, factor)
            table(
                f"{_factor_title(report, factor)}: {report.metric}, mean ± std over seeds",
                ["level", "mean ± std", "Δ to baseline", "runs"],
                [[r["level"], r["mean ± std"], r["delta"], r["runs"]] for r in rows],
            )
        if len(report.factors) >= 2:
            table(f"{' × '.join(report.factors[:2])}: {report.metric}", *_grid(report))
        table("runs", *_run_table(report))
    for run in report.left_out():
        console.print(f"left out: {run.name} {run.status}")
    for name, link in view_links(report):
        console.print(f"view '{name}': {link}", soft_wrap=True)


def view_links(report: Report) -> list[tuple[str, str]]:
    """The sweep's saved views in MLflow's UI (dlkit/tracking/views.py), to open once `dlkit ui` serves the store."""
    if report.parent_run_id is None:
        return []
    from dlkit.tracking import store, views

    client = store.client(report.uri)
    experiment_id = client.get_run(report.parent_run_id).info.experiment_id
    return views.saved(experiment_id, client.get_experiment(experiment_id).tags, report.parent_run_id)


VERDICT_HEADING = "### The study's verdict"


def attach(report: Report, files: list[Path]) -> None:
    """The report's files on the parent run (folder report/), and a study's claim and verdicts in its description
    (mlflow.note.content, below what the sweep wrote there; replaced, not repeated, when the report runs again)."""
    if report.parent_run_id is None:
        return
    from dlkit.tracking import store, views

    client = store.client(report.uri)
    for path in files:
        client.log_artifact(report.parent_run_id, str(path), artifact_path="report")
    if report.study:
        written = client.get_run(report.parent_run_id).data.tags.get(views.NOTE, "")
        lines = [VERDICT_HEADING, "", f"{report.study.claim}", ""]
        lines += [
            f"- {cell_text(v.arm.treatment)} vs {cell_text(v.arm.control)}: **{v.line()}**" for v in report.verdicts()
        ]
        kept = written.split(VERDICT_HEADING)[0].rstrip()
        note = "\n\n".join(filter(None, [kept, "\n".join(lines)]))
        client.set_tag(report.parent_run_id, views.NOTE, note[: views.MAX_NOTE])
