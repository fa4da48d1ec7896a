"""A sweep's progress: a line as each job ends (jobs done of the total, failures, time elapsed and left) and, when the
sweep ends, one table of its jobs (each one's swept values, objective, status and epochs).

Jobs end in other processes too (hydra/launcher=parallel, SLURM), so they share a ledger: a file in the sweep's folder,
started by the launching process (the sweep's size, its swept keys, when it started) and appended to by each job as it
ends, one JSON line in one write (lines of jobs that end together do not mix). Its path reaches the jobs in the
environment, as the sweep's size does. The jobs are counted from the ledger itself, whoever ran them.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

from dlkit import environment
from dlkit.overrides import pairs
from dlkit.tracking.tags import trained

log = logging.getLogger("dlkit")
LEDGER = "sweep_progress.jsonl"


def start(folder: str | Path, total: int, factors: Sequence[str], objective: str, noun: str = "jobs") -> None:
    """Begin the ledger of a sweep of `total` jobs (noun: what they are called, trials for a search)."""
    path = Path(folder) / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {"total": total, "factors": list(factors), "objective": objective, "noun": noun, "start": time.time()}
    path.write_text(json.dumps(head) + "\n")
    os.environ[environment.SWEEP_LEDGER] = str(path)


def job_ended(label: str, overrides: Sequence[str], result, max_epochs: int | None) -> None:
    """Note a job that ended (result: train()'s, None when it failed) and say how far the sweep is."""
    path = os.environ.get(environment.SWEEP_LEDGER)
    if not path or (result is not None and result.rank):  # not a sweep's job; a DDP process beside rank 0
        return
    head = _entries(Path(path))[0]
    value = result.metrics.get(head["objective"]) if result is not None else None
    entry = {
        "job": label,
        "overrides": list(overrides),
        "objective": value if value is not None and math.isfinite(value) else None,
        "status": "FINISHED" if result is not None else "FAILED",
        "epochs": result.epochs if result is not None else None,
        "max_epochs": max_epochs,
        "stopped": result.stopped if result is not None else "",
    }
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(descriptor, (json.dumps(entry) + "\n").encode())
    finally:
        os.close(descriptor)
    log.info("%s", line(_entries(Path(path))))


def line(entries: list[dict]) -> str:
    """'[sweep] 3 of 12 jobs done, 1 failed; 0:00:42 elapsed, about 0:02:06 left'"""
    head, ended = entries[0], entries[1:]
    done, failed = len(ended), sum(e["status"] == "FAILED" for e in ended)
    elapsed = time.time() - head["start"]
    text = f"[sweep] {done} of {head['total']} {head['noun']} done"
    text += f", {failed} failed" if failed else ""
    text += f"; {_clock(elapsed)} elapsed"
    if 0 < done < head["total"]:
        text += f", about {_clock(elapsed / done * (head['total'] - done))} left"
    return text


def finish() -> str:
    """The sweep's table of jobs, as they ended ('' when no ledger was started); the ledger is closed."""
    path = os.environ.pop(environment.SWEEP_LEDGER, None)
    if not path or not Path(path).is_file():
        return ""
    entries = _entries(Path(path))
    head, ended = entries[0], entries[1:]
    noun = head["noun"].rstrip("s")
    header = [noun, *head["factors"], head["objective"], "status", "epochs"]
    rows = [
        [
            entry["job"].partition(" ")[2] or entry["job"],
            *(pairs(entry["overrides"]).get(factor, "") for factor in head["factors"]),
            f"{entry['objective']:.4f}" if entry["objective"] is not None else "–",
            entry["status"],
            _epochs(entry),
        ]
        for entry in ended
    ]
    finished = sum(e["status"] == "FINISHED" for e in ended)
    title = (
        f"Sweep summary: {len(ended)} of {head['total']} {head['noun']} ran, {finished} finished,"
        f" {len(ended) - finished} failed, in {_clock(time.time() - head['start'])}"
    )
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    table = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join([title, *table])


def _epochs(entry: dict) -> str:
    """tags.trained's text; '–' for a job that failed, or had finished before (a relaunched sweep's)."""
    return "–" if entry["epochs"] is None else trained(entry["epochs"], entry["max_epochs"], entry["stopped"])


def _entries(path: Path) -> list[dict]:
    return [json.loads(text) for text in path.read_text().splitlines() if text.strip()]


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))
