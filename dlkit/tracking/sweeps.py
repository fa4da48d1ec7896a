"""A sweep as MLflow records it: one parent run, one child run per job, and how the parent is closed.

The same sweep launched again (same experiment, same overrides) reopens its parent: each job finds its
earlier attempt by its config's hash, is skipped if it finished and resumed if it was cut short; the parent
counts each job's latest attempt. (dlkit/sweep.py is the Hydra side: the callback that opens the parent.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dlkit import overrides as override_text
from dlkit.tracking import store
from dlkit.tracking import tags as tag


@dataclass(frozen=True)
class Sweep:
    parent_run_id: str
    uri: str
    factors: tuple[str, ...]
    objective: str = "val/loss"
    maximize: bool = False

    def child_tags(self, overrides: Sequence[str]) -> dict[str, str]:
        values = factor_values(overrides, self.factors)
        return {
            tag.PARENT: self.parent_run_id,
            tag.SWEEP_ID: self.parent_run_id,
            **{tag.FACTOR_PREFIX + k: v for k, v in values.items()},
        }

    def child_name(self, overrides: Sequence[str]) -> str:
        return ",".join(f"{k}={v}" for k, v in factor_values(overrides, self.factors).items())

    def job_failed_early(self, overrides: Sequence[str], reason: str) -> None:
        """A job that failed before its run existed (a bad value only its data reveals): noted on the parent."""
        name = self.child_name(overrides) or ",".join(overrides)
        key = tag.EARLY_FAILURE_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:8]  # the same job, the same tag
        store.client(self.uri).set_tag(self.parent_run_id, key, f"{name}: {reason}"[: tag.MAX_REASON])

    def earlier_attempt(self, config_hash: str):
        """The latest child of this sweep that ran this config (a job run before, when the sweep is relaunched)."""
        client = store.client(self.uri)
        experiment = client.get_run(self.parent_run_id).info.experiment_id
        return latest(
            client,
            experiment,
            f"tags.`{tag.PARENT}` = '{self.parent_run_id}' and tags.`{tag.CONFIG_HASH}` = '{config_hash}'",
        )


@dataclass
class Outcome:
    status: str  # FINISHED, FAILED or KILLED
    failures: list[str] = field(default_factory=list)  # the jobs that did not finish, with the reason


def factor_values(overrides: Sequence[str], factors: Sequence[str]) -> dict[str, str]:
    pairs = override_text.pairs(overrides)
    return {k: pairs[k] for k in factors if k in pairs}


def latest(client, experiment_id: str, filter_string: str):
    """The most recently started run that matches, or None."""
    found = client.search_runs([experiment_id], filter_string, order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def latest_attempts(runs: list) -> list:
    """A relaunched sweep may run a job again: keep each job's latest attempt (by its config's hash)."""
    kept: dict[str, Any] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        kept[run.data.tags.get(tag.CONFIG_HASH, run.info.run_id)] = run
    return list(kept.values())


def close(sweep: Sweep, failed: bool = False, status: str | None = None) -> Outcome:
    """End the parent run: FINISHED if every job's latest attempt finished (and nothing failed), else FAILED,
    or the status given (KILLED on an interrupt). The best job is recorded on the parent."""
    client = store.client(sweep.uri)
    parent = client.get_run(sweep.parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`{tag.PARENT}` = '{sweep.parent_run_id}'"
    )
    children = latest_attempts(children)
    early = [v for k, v in parent.data.tags.items() if k.startswith(tag.EARLY_FAILURE_PREFIX)]
    done = children and all(c.info.status == "FINISHED" for c in children) and not early
    outcome = Outcome(status or ("FINISHED" if done and not failed else "FAILED"))
    outcome.failures += [
        f"{c.info.run_name}: {c.data.tags.get(tag.FAILURE_REASON, c.info.status)}"
        for c in children
        if c.info.status != "FINISHED"
    ]
    outcome.failures += early
    scored = [c for c in children if c.info.status == "FINISHED" and sweep.objective in c.data.metrics]
    if scored:  # the best job, recorded on the parent (for an optimizing sweeper: the best trial)
        best = (max if sweep.maximize else min)(scored, key=lambda c: c.data.metrics[sweep.objective])
        client.set_tag(sweep.parent_run_id, tag.BEST_RUN_ID, best.info.run_id)
        client.set_tag(sweep.parent_run_id, tag.BEST_RUN_NAME, best.info.run_name)
        client.log_metric(sweep.parent_run_id, f"best/{sweep.objective}", best.data.metrics[sweep.objective])
    if parent.info.status == "RUNNING":
        client.set_terminated(sweep.parent_run_id, status=outcome.status)
    return outcome
