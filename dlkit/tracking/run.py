"""One MLflow run's life: created with its tags and params, fed metrics per epoch, always closed.

dlkit talks to MLflow through MlflowClient, not the fluent API or Lightning's MLFlowLogger: no
global active run to leak between jobs, no 250-character cut of param values, and the run's
status is ours to set (FINISHED, FAILED, or KILLED on Ctrl-C), never left RUNNING.

A training process holds a RecordedRun (dlkit/tracking/recorder.py), which hands each call to a
recorder process; the recorder writes through a StoreRun, below.
"""
from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dlkit.tracking import store

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
BATCH = 100  # MLflow's limit on params per log_batch call
MAX_METRICS = 1000  # and on metrics


class NullRun:
    """tracking=none: the same interface, recording nothing."""

    run_id = None
    experiment_id = None
    uri = None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def log_text(self, text: str, path: str) -> None: ...
    def log_artifact(self, path, artifact_path: str | None = None) -> None: ...
    def log_figures(self, history: Mapping[str, list[tuple[int, float]]], confusion: list[list[int]] | None) -> None: ...
    def download(self, artifact: str, into: Path) -> Path | None: ...
    def finish(self, status: str, wait: bool = True) -> None: ...


class StoreRun(NullRun):
    """Synchronous writes to the store, in the recorder process."""

    def __init__(self, uri: str, experiment: str, artifact_root: str | None, run_name: str, tags: Mapping[str, str], run_id: str | None = None):
        """run_id: reopen that run (to resume it) instead of creating one."""
        self.uri = uri
        self.client = store.client(uri)
        if run_id is None:
            self.experiment_id = store.experiment_id(self.client, experiment, artifact_root)
            self.run_id = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags)).info.run_id
        else:
            self.experiment_id, self.run_id = self.client.get_run(run_id).info.experiment_id, run_id
            self.client.update_run(run_id, status="RUNNING")

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in params.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + BATCH])

    def write_metrics(self, points: Sequence[tuple[str, float, int, int]]) -> None:
        """points: (key, value, timestamp in ms, step)."""
        from mlflow.entities import Metric

        metrics = [Metric(*point) for point in points]
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + MAX_METRICS])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def log_artifact(self, path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_figures(self, history: Mapping[str, list[tuple[int, float]]], confusion: list[list[int]] | None) -> None:
        from dlkit.tracking import figures

        with tempfile.TemporaryDirectory() as tmp:
            for path in figures.draw(dict(history), confusion, Path(tmp)):
                self.log_artifact(path)

    def download(self, artifact: str, into: Path) -> Path | None:
        folder = str(Path(artifact).parent) if Path(artifact).parent != Path(".") else None
        if artifact not in [f.path for f in self.client.list_artifacts(self.run_id, folder)]:
            return None
        return Path(self.client.download_artifacts(self.run_id, artifact, str(into)))

    def finish(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


def open_run(tracking_cfg: Mapping[str, Any], run_name: str, tags: Mapping[str, str], run_id: str | None = None,
             wait: bool = True) -> NullRun:
    """wait: see RecordedRun."""
    if not tracking_cfg.get("enabled", True):
        return NullRun()
    from dlkit.tracking import recorder

    settings = {key: tracking_cfg.get(key) for key in ("uri", "experiment", "artifact_root")}
    return recorder.RecordedRun(settings, run_name=run_name, tags=dict(tags), run_id=run_id, wait=wait)
