"""`dlkit studies`: run the chapter's studies (the quick variants by default) and write one document
with each claim, its numbers and its verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dlkit import config, report
from dlkit.stats import p_cell


def names() -> list[str]:
    return sorted(p.stem for p in (config.CONF_DIR / "study").glob("*.yaml") if not p.stem.endswith("_quick"))


def run_all(selected: list[str], full: bool, overrides: list[str], seeds: int | None = None) -> Path:
    """seeds: run each study over seeds 0..seeds-1 instead of its preset's."""
    cfg = config.compose(overrides)  # where the studies are recorded
    if seeds is not None:  # the command line's sweep of a key replaces the preset's (hydra.sweeper.params)
        overrides = [*overrides, "seed=" + ",".join(map(str, range(seeds)))]
    sections, summary = [], []
    for name in selected:
        preset = name if full else f"{name}_quick"
        print(f"== study {name} ({preset})", flush=True)
        # Its own process per study: Hydra runs one app per process, and one failing study must not stop the rest.
        done = subprocess.run([sys.executable, "-m", "dlkit", "-m", f"+study={preset}", *overrides])
        try:
            built = report.load(cfg.tracking.uri, study=name)
        except Exception as exc:  # noqa: BLE001  (the study did not leave a sweep to report on)
            summary.append(f"| {name} | – | failed to run (exit {done.returncode}): {exc} | | | |")
            continue
        folder = Path(cfg.paths.output_dir) / "reports" / built.parent_run_id
        files = report.write(built, folder)
        report.attach(built, files)
        verdict = built.verdict()
        c = verdict.comparison
        word = f"**{verdict.word}**" + (f": {verdict.why}" if verdict.why else "")
        row = f"{word} | {c.interval()} | {p_cell(verdict.p)} | {c.n_treatment} vs {c.n_control}"
        summary.append(f"| {name} | {built.study.claim} | {row} |")
        figures = [f"{built.parent_run_id}/{p.name}" for p in files if p.suffix == ".png"]  # beside the document
        sections.append(report.markdown(built, figures))
    document = Path(cfg.paths.output_dir) / "reports" / ("studies.md" if full else "studies_quick.md")
    document.parent.mkdir(parents=True, exist_ok=True)
    header = [
        f"# The chapter's claims, tested ({'full' if full else 'quick'} variants)",
        "",
        *(
            []
            if full
            else [
                "Quick variants (two seeds, a few epochs) are smoke tests of the studies: their numbers decide"
                " nothing; `dlkit studies --full` gives the verdicts.",
                "",
            ]
        ),
        "Each verdict: Welch's t-test of treatment − control over seeds, two-sided, p Holm-adjusted over the study's"
        " comparisons, decided at p < 0.05 (an exact permutation test where neither arm varies; a rank test where a"
        " run never reached its target or diverged), and only when the study's guards pass (training went far"
        " enough; guard metrics not worsened beyond their margin).",
        "",
        "| study | claim | verdict | Δ [95% CI] | p | runs |",
        "|---|---|---|---|---|---|",
        *summary,
        "",
    ]
    document.write_text("\n".join(header) + "\n" + "\n".join(sections))
    return document
