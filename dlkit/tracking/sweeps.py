"""A sweep as its jobs see it: one MLflow parent run, one child run per job, the parent closed at the end.

The same sweep launched again (same experiment, same overrides) reopens its parent: each job finds its
earlier attempt by its config's hash, is skipped if it finished and resumed if it was cut short; the parent
counts each job's latest attempt. (dlkit/sweep.py is the Hydra side: the callback that opens the parent.)

What touches the store is in sweep_store.py, plain values in and out, so that a `Sweep` runs it in the recorder
process (dlkit/tracking/recorder.py) when there is one: then the process that trains never imports MLflow, and the
store is created on the other core while this one imports torch.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlkit import overrides as override_text
from dlkit.tracking import tags as tag
from dlkit.tracking.sweep_store import Attempt, Outcome

_worker_flushes = False  # set while a search's worker runs its trials: see Sweep.runs_here


def worker_flushes(flushes: bool) -> None:
    global _worker_flushes
    _worker_flushes = flushes


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"  # a SLURM job's process runs on another machine


@dataclass(frozen=True)
class Sweep:
    parent_run_id: str
    uri: str
    factors: tuple[str, ...]
    objective: str = "val/loss"
    maximize: bool = False
    via_recorder: bool = True  # the store is written by the recorder process (tracking.recorder)
    # A relaunched sweep's jobs that ran before: each config hash's latest attempt, read when the parent reopened.
    attempts: Mapping[str, Attempt] = field(default_factory=dict)
    opened_in: str = field(default_factory=_this_process)  # the process that opened the sweep, and closes it

    @property
    def runs_here(self) -> bool:
        """Whether this job's process flushes its recorder once its jobs are done, and so can leave its runs' last
        writes to the recorder until then: the process that opened the sweep (Hydra's basic launcher), before it
        closes the sweep, or a search's worker (dlkit.sweep.worker_flushes), before it returns."""
        return _worker_flushes or _this_process() == self.opened_in

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
        self.set_parent_tag(key, f"{name}: {reason}"[: tag.MAX_REASON])

    def set_parent_tag(self, key: str, value: str) -> None:
        in_store(self.via_recorder).set_parent_tag(uri=self.uri, run_id=self.parent_run_id, key=key, value=value)

    def earlier_attempt(self, config_hash: str) -> Attempt | None:
        """The latest child of this sweep that ran this config (a job run before, when the sweep is relaunched)."""
        return self.attempts.get(config_hash)

    def close(self, failed: bool = False, status: str | None = None) -> Outcome:
        """End the parent: see close_parent."""
        return in_store(self.via_recorder).close_parent(
            uri=self.uri,
            parent=self.parent_run_id,
            objective=self.objective,
            maximize=self.maximize,
            failed=failed,
            status=status,
        )


def in_store(via_recorder: bool) -> Any:
    """sweep_store's operations, run here or in the recorder process (which answers after it has written everything
    sent before)."""
    from dlkit.tracking import recorder, sweep_store

    return recorder.sweeps if via_recorder else sweep_store


def factor_values(overrides: Sequence[str], factors: Sequence[str]) -> dict[str, str]:
    pairs = override_text.pairs(overrides)
    return {k: pairs[k] for k in factors if k in pairs}
