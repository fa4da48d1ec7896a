"""A Hydra multirun as one MLflow parent run (the sweep) with one child run per job.

The parent is created once, in the launching process (`on_multirun_start`), which also creates the
store and the experiment, so parallel workers never race to migrate a new sqlite file. Each job learns
the parent through `on_job_start`, which Hydra runs in the job's own process for every launcher
(the callback object is pickled into joblib and submitit workers). The parent is closed FINISHED when
every child finished, else FAILED; `close_abandoned` closes it when Hydra skips `on_multirun_end`
(KILLED when the sweep was interrupted). The same sweep launched again (same experiment, same
overrides) reopens its parent: each job finds its earlier attempt by its config's hash, skips it if
it finished and resumes it if it was cut short.
"""
from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

PARENT_TAG = "mlflow.parentRunId"
SWEEP_TAG = "dlkit.sweep_id"
EARLY_FAILURE_PREFIX = "dlkit.failed_job."
KEY_TAG = "dlkit.sweep_key"  # the hash of a sweep's experiment and overrides: the same sweep launched again has the same key
CONFIG_HASH_TAG = "dlkit.config_hash"  # a job's resolved config, hashed: how a relaunched sweep knows a job it already ran
FACTOR_PREFIX = "factor."


@dataclass(frozen=True)
class Sweep:
    parent_run_id: str
    uri: str
    factors: tuple[str, ...]
    objective: str = "val/loss"
    maximize: bool = False

    def child_tags(self, overrides: Sequence[str]) -> dict[str, str]:
        values = factor_values(overrides, self.factors)
        return {PARENT_TAG: self.parent_run_id, SWEEP_TAG: self.parent_run_id, **{FACTOR_PREFIX + k: v for k, v in values.items()}}

    def child_name(self, overrides: Sequence[str]) -> str:
        return ",".join(f"{k}={v}" for k, v in factor_values(overrides, self.factors).items())

    def job_failed_early(self, overrides: Sequence[str], reason: str) -> None:
        """A job that failed before its run existed (a bad value only its data reveals): noted on the parent."""
        from dlkit.tracking import store

        name = self.child_name(overrides) or ",".join(overrides)
        tag = EARLY_FAILURE_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:8]  # the same job, the same tag
        store.client(self.uri).set_tag(self.parent_run_id, tag, f"{name}: {reason}"[:5000])

    def earlier_attempt(self, config_hash: str):
        """The latest child of this sweep that ran this config (a job run before, when the sweep is relaunched)."""
        from dlkit.tracking import store

        client = store.client(self.uri)
        experiment = client.get_run(self.parent_run_id).info.experiment_id
        return _latest(client, experiment, f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and tags.`{CONFIG_HASH_TAG}` = '{config_hash}'")


current: Sweep | None = None  # the sweep the job running in this process belongs to
_opened: list[Sweep] = []  # parents this process opened and has not closed yet
outcome: str | None = None  # how the last sweep this process closed ended: FINISHED, FAILED or KILLED
failures: list[str] = []  # and its jobs that did not finish, with the reason


def runs_here() -> bool:
    """Whether this job runs in the process that opened its sweep (Hydra's basic launcher), which closes
    the sweep itself, and so can leave its run's last writes to the recorder until then."""
    return current is not None and current in _opened


def factor_values(overrides: Sequence[str], factors: Sequence[str]) -> dict[str, str]:
    pairs = dict(o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)
    return {k: pairs[k] for k in factors if k in pairs}


def swept_keys(overrides: Sequence[str], sweeper_params: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The keys a sweep varies: sweep syntax on the command line, and the sweeper's own `params`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    keys = [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]
    keys += [str(k) for k in (sweeper_params or {}) if str(k) not in keys]
    return tuple(keys)


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.sweep: Sweep | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.tracking.enabled:
            return
        from dlkit.tracking import store

        overrides = list(config.hydra.overrides.task)
        params = config.hydra.sweeper.get("params")
        params = OmegaConf.to_container(params, resolve=False) if isinstance(params, DictConfig) else {}
        factors = swept_keys(overrides, params)
        client = store.client(config.tracking.uri)
        experiment_id = store.experiment_id(client, config.tracking.experiment, config.tracking.get("artifact_root"))
        fixed = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in factors]
        from dlkit import plugins
        from dlkit.tracking.provenance import run_tags

        tags = {
            **run_tags([f"{p.name} ({p.origin})" for p in plugins.discover() if not p.error]),  # versions, git commit
            "dlkit.sweep": "parent",
            "dlkit.factors": ",".join(factors),
            "dlkit.jobs": os.environ.get("DLKIT_SWEEP_SIZE", "?"),
            "dlkit.sweep_dir": str(config.hydra.sweep.dir),
            "dlkit.command": " ".join(["dlkit", *sys.argv[1:]]),
            "dlkit.launcher": str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1],
        }
        key = hashlib.sha256("\n".join([config.tracking.experiment, *sorted(overrides)]).encode()).hexdigest()[:16]
        tags[KEY_TAG] = key
        name = config.tracking.get("run_name") or "sweep " + " ".join(o for o in overrides if o not in fixed)
        if "study" in config:  # a study preset: its claim and how to decide it travel with the parent
            study = config.study
            tags.update({"dlkit.study": study.name, **{f"dlkit.study.{k}": str(v) for k, v in study.items() if k != "name"}})
            name = f"study {study.name}"
        earlier = _latest(client, experiment_id, f"tags.`{KEY_TAG}` = '{key}'") if config.tracking.get("resume", True) else None
        if earlier is not None:  # the same sweep launched again: its parent goes on, finished jobs are skipped
            run_id = earlier.info.run_id
            client.update_run(run_id, status="RUNNING")
            for tag in [t for t in earlier.data.tags if t.startswith(EARLY_FAILURE_PREFIX)]:
                client.delete_tag(run_id, tag)  # those jobs run again
            client.set_tag(run_id, "dlkit.jobs", tags["dlkit.jobs"])
            print(f"Resuming sweep {run_id}: jobs that finished are skipped, interrupted ones resume (tracking.resume=false starts afresh)")
        else:
            run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
            client.set_tag(run_id, SWEEP_TAG, run_id)
            from mlflow.entities import Param

            client.log_batch(run_id, params=[Param(f"override.{i}", item) for i, item in enumerate(fixed)])
        direction = str(config.hydra.sweeper.get("direction", "minimize"))
        self.sweep = Sweep(run_id, config.tracking.uri, factors, str(config.objective), direction.endswith("maximize"))
        _opened.append(self.sweep)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        global current
        current = self.sweep
        if self.sweep is not None:  # in a new worker: the recorder imports MLflow while the job imports torch
            from dlkit.tracking import recorder

            recorder.start()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        global current
        current = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.sweep is not None:
            status = close(self.sweep)
            print(f"Sweep {status}: parent run {self.sweep.parent_run_id} (experiment '{config.tracking.experiment}') in {self.sweep.uri}")
            for failure in failures:
                print(f"  not finished: {failure}")
            print("Report: dlkit report   Browse: dlkit ui")


def _latest(client, experiment_id: str, filter_string: str):
    """The most recently started run that matches, or None."""
    found = client.search_runs([experiment_id], filter_string, order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def latest_attempts(runs: list) -> list:
    """A relaunched sweep may run a job again: keep each job's latest attempt (by its config's hash)."""
    latest: dict[str, Any] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        latest[run.data.tags.get(CONFIG_HASH_TAG, run.info.run_id)] = run
    return list(latest.values())


def close(sweep: Sweep, failed: bool = False, status: str | None = None) -> str:
    """End the parent run: FINISHED if every job's latest attempt finished (and nothing failed), else FAILED,
    or the status given (KILLED on an interrupt)."""
    global outcome
    from dlkit.tracking import recorder, store

    try:
        recorder.flush()  # the runs of the jobs that ran in this process, all written and ended
    except recorder.RecorderError as exc:
        print(f"dlkit: {exc}", file=sys.stderr)  # those runs ended FAILED, with the reason: counted below
    client = store.client(sweep.uri)
    parent = client.get_run(sweep.parent_run_id)
    children = client.search_runs([parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{sweep.parent_run_id}'")
    children = latest_attempts(children)
    early = [v for k, v in parent.data.tags.items() if k.startswith(EARLY_FAILURE_PREFIX)]
    done = children and all(c.info.status == "FINISHED" for c in children) and not early
    status = status or ("FINISHED" if done and not failed else "FAILED")
    outcome = status
    failures.clear()
    failures.extend(f"{c.info.run_name}: {c.data.tags.get('dlkit.failure_reason', c.info.status)}" for c in children if c.info.status != "FINISHED")
    failures.extend(early)
    scored = [c for c in children if c.info.status == "FINISHED" and sweep.objective in c.data.metrics]
    if scored:  # the best job, recorded on the parent (for an optimizing sweeper: the best trial)
        best = (max if sweep.maximize else min)(scored, key=lambda c: c.data.metrics[sweep.objective])
        client.set_tag(sweep.parent_run_id, "dlkit.best_run_id", best.info.run_id)
        client.set_tag(sweep.parent_run_id, "dlkit.best_run_name", best.info.run_name)
        client.log_metric(sweep.parent_run_id, f"best/{sweep.objective}", best.data.metrics[sweep.objective])
    if parent.info.status == "RUNNING":
        client.set_terminated(sweep.parent_run_id, status=status)
    if sweep in _opened:
        _opened.remove(sweep)
    return status


def close_abandoned(interrupted: bool = False) -> None:
    """Close the parents Hydra left open (it skips on_multirun_end when a job raises or on Ctrl-C)."""
    for sweep in list(_opened):
        close(sweep, failed=True, status="KILLED" if interrupted else None)
