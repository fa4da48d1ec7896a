"""A Hydra multirun as one MLflow parent run (the sweep) with one child run per job: the Hydra side.

The parent is created once, in the launching process (`on_multirun_start`), which also creates the store
and the experiment, so parallel workers never race to migrate a new sqlite file. Each job learns its sweep
through `on_job_start`, which Hydra runs in the job's own process for every launcher (the callback object is
pickled into joblib and submitit workers): `current()` is what the job function hands to train(). The parent
is closed when the sweep ends (dlkit/tracking/sweeps.py decides its status); `close_abandoned` closes it when
Hydra skips `on_multirun_end` (KILLED when the sweep was interrupted).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from dlkit import environment, progress
from dlkit.overrides import key as override_key
from dlkit.tracking import sweeps
from dlkit.tracking import tags as tag
from dlkit.tracking.sweeps import Outcome, Sweep

_current: Sweep | None = None  # the sweep of the job running in this process, between on_job_start and on_job_end
_opened: list[Sweep] = []  # parents this process opened and has not closed yet
outcome: Outcome | None = None  # how the last sweep this process closed ended


def current() -> Sweep | None:
    return _current


def note_search(study_name: str, storage: str, n_trials: int) -> None:
    """A search's study and its trials in all, on the parent run this process opened for it (when tracking is on)."""
    for opened in _opened[-1:]:
        for key, value in ((tag.SEARCH_STUDY, study_name), (tag.SEARCH_STORAGE, storage), (tag.JOBS, str(n_trials))):
            opened.set_parent_tag(key, value)


def swept_keys(overrides: Sequence[str], sweeper_params: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The keys a sweep varies: sweep syntax on the command line, and the sweeper's own `params`."""
    from dlkit import config

    keys = [override_key(o.get_key_element()) for o in config.parse(overrides) if o.is_sweep_override()]
    keys += [str(k) for k in (sweeper_params or {}) if str(k) not in keys]
    return tuple(keys)


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.sweep: Sweep | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from dlkit import config as configs

        if str(config.hydra.launcher.get("_target_")).startswith("hydra_plugins.dlkit_slurm."):
            _check_slurm_request(config.hydra.launcher)  # before the parent exists
        if not configs.is_search(config.hydra.sweeper):  # a search counts its trials itself, once it knows them
            size = int(os.environ.get(environment.SWEEP_SIZE, "0"))
            progress.start(config.hydra.sweep.dir, size, _factors(config), str(config.objective))
        if not config.tracking.enabled:
            return
        self.sweep = _open_parent(config)
        _opened.append(self.sweep)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _current
        _current = self.sweep
        if self.sweep is not None and config.tracking.get("recorder", True):
            from dlkit.tracking import recorder

            recorder.start()  # in a new worker: the recorder imports MLflow while the job imports torch

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        global _current
        _current = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summary = progress.finish()
        if summary:
            print(summary)
        if self.sweep is not None:
            ended = close(self.sweep)
            print(
                f"Sweep {ended.status}: parent run {self.sweep.parent_run_id}"
                f" (experiment '{config.tracking.experiment}') in {self.sweep.uri}"
            )
            for failure in ended.failures:
                print(f"  not finished: {failure}")
            print("Report: dlkit report   Browse: dlkit ui")
            for name, link in ended.views:
                print(f"  view '{name}': {link}")
            if ended.warning:
                print(f"dlkit: warning: {ended.warning}", file=sys.stderr)


def _check_slurm_request(launcher: DictConfig) -> None:
    """A request the cluster can never grant stops the sweep here with one line (a ConfigError raised here would
    reach Hydra's error report, which prints a traceback)."""
    from dlkit.errors import ConfigError, stop
    from dlkit.slurm import check_request

    try:
        check_request(OmegaConf.to_container(launcher, resolve=True))
    except ConfigError as exc:
        stop(str(exc))


def _open_parent(config: DictConfig) -> Sweep:
    """Create the sweep's parent run, or reopen it when the same sweep is launched again."""
    from dlkit import plugins
    from dlkit.tracking.provenance import run_tags
    from dlkit.tracking.sweeps import in_store

    tracking = config.tracking
    overrides = list(config.hydra.overrides.task)
    factors = _factors(config)
    fixed = [o for o in overrides if override_key(o) not in factors]
    maximize = str(config.hydra.sweeper.get("direction", "minimize")).endswith("maximize")
    tags = {
        **run_tags(plugins.labels(discovered=True)),  # versions, git commit
        tag.SWEEP: tag.SWEEP_PARENT,
        tag.FACTORS: ",".join(factors),
        tag.JOBS: os.environ.get(environment.SWEEP_SIZE, "?"),
        tag.SWEEP_DIR: str(config.hydra.sweep.dir),
        tag.COMMAND: " ".join(["dlkit", *sys.argv[1:]]),
        tag.LAUNCHER: str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1],
        tag.SWEEPER: str(config.hydra.sweeper.get("_target_", "")).rsplit(".", 1)[-1],
        tag.OBJECTIVE: str(config.objective),
        tag.MAXIMIZE: str(maximize).lower(),
    }
    name = tracking.get("run_name") or "sweep " + " ".join(o for o in overrides if o not in fixed)
    if "study" in config:  # a study preset: its claim and how to decide it travel with the parent
        study = config.study
        tags.update(
            {
                tag.STUDY: study.name,
                **{f"{tag.STUDY}.{k}": _tag_text(v) for k, v in study.items() if k != "name" and v is not None},
            }
        )
        name = f"study {study.name}"
    via_recorder = bool(tracking.get("recorder", True))
    where = {"uri": tracking.uri, "experiment": tracking.experiment, "artifact_root": tracking.get("artifact_root")}
    key, resume = sweep_key(tracking.experiment, overrides), bool(tracking.get("resume", True))
    run_id, attempts = in_store(via_recorder).open_parent(
        **where, key=key, name=name, tags=tags, fixed=fixed, resume=resume
    )
    if attempts is not None:
        print(
            f"Resuming sweep {run_id}: jobs that finished are skipped, interrupted ones resume"
            " (tracking.resume=false starts afresh)"
        )
    return Sweep(run_id, tracking.uri, factors, str(config.objective), maximize, via_recorder, attempts or {})


def _factors(config: DictConfig) -> tuple[str, ...]:
    """The keys the sweep being launched varies."""
    params = config.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if isinstance(params, DictConfig) else {}
    return swept_keys(list(config.hydra.overrides.task), params)


def _tag_text(value) -> str:
    """A study key's value as a tag: text as it is, lists and mappings as JSON (read back by verdict.Study)."""
    if isinstance(value, DictConfig | ListConfig):
        return json.dumps(OmegaConf.to_container(value, resolve=True))
    return str(value)


def sweep_key(experiment: str, overrides: Sequence[str]) -> str:
    """The same sweep launched again (same experiment, same overrides) has the same key. Overrides of a study's
    declaration (study.guards=...) are left out: they change how it is judged, not what it runs."""
    kept = sorted(o for o in overrides if not override_key(o).startswith("study."))
    return hashlib.sha256("\n".join([experiment, *kept]).encode()).hexdigest()[:16]


def close(sweep: Sweep, failed: bool = False, status: str | None = None) -> Outcome:
    """Close the parent once the recorder has written and ended the runs of the jobs that ran in this process. A store
    that can no longer be written ends the command (exit 1), the parent left as it is there: a relaunch reopens it."""
    global outcome
    _flush()
    outcome = sweep.close(failed, status)
    if sweep in _opened:
        _opened.remove(sweep)
    return outcome


def _flush() -> None:
    """Wait until the recorder has written and ended this process's runs. A store that can no longer be written ends
    the command (exit 1); a write it refused ended its run FAILED with the reason, and is said here."""
    from dlkit.errors import StoreLost
    from dlkit.tracking import recorder

    try:
        recorder.flush()
    except StoreLost as exc:
        store_lost()
        print(f"dlkit: {exc}", file=sys.stderr)
        sys.exit(1)
    except recorder.RecorderError as exc:
        print(f"dlkit: {exc}", file=sys.stderr)


@contextlib.contextmanager
def worker_flushes() -> Iterator[None]:
    """A search's worker, in a process of its own (hydra/launcher=parallel or slurm): each trial's run is left to the
    recorder to finish while the next trial trains, as in the sweep's own process, and the recorder is flushed before
    the worker returns (its first trial's figures and model no longer hold the second one up by seconds)."""
    sweeps.worker_flushes(True)
    try:
        yield
    finally:
        sweeps.worker_flushes(False)
    _flush()  # cut short instead (Ctrl-C), the recorder writes the rest as the process exits


def store_lost() -> None:
    """The store can no longer be written: the open parents stay as they are there (a relaunch reopens them)."""
    _opened.clear()


def close_abandoned(interrupted: bool = False) -> None:
    """Close the parents Hydra left open (it skips on_multirun_end when a job raises or on Ctrl-C)."""
    from dlkit.errors import RecorderError, one_line

    for sweep in list(_opened):
        try:
            close(sweep, failed=True, status="KILLED" if interrupted else None)
        except RecorderError as exc:  # the store is gone too (a tracking server that stopped): the parent stays open
            _opened.remove(sweep)
            print(f"dlkit: sweep {sweep.parent_run_id} could not be closed: {one_line(exc)}", file=sys.stderr)
