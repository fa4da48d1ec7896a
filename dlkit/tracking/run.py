"""One MLflow run's life: created with its tags and params, fed metrics per epoch, always closed.

dlkit talks to MLflow through MlflowClient, not the fluent API or Lightning's MLFlowLogger: no
global active run to leak between jobs, no 250-character cut of param values, and the run's
status is ours to set (FINISHED, FAILED, or KILLED on Ctrl-C), never left RUNNING.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping
from typing import Any

from dlkit.tracking import store

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
BATCH = 100  # MLflow's limit on params per log_batch call
MAX_METRICS = 1000  # and on metrics
WRITE_EVERY_S = 1.0  # how late a metric may reach the store (the MLflow UI) while a run trains


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
    def finish(self, status: str) -> None: ...


class TrackedRun(NullRun):
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
        # Metrics are gathered and written at most once a second, by one background thread, in order, all of
        # them before the run is closed. A write per epoch (sqlite, ~10 ms of Python holding the GIL) would slow
        # short epochs by a tenth; MLflow's own asynchronous logging would do, but closing it waits a second.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dlkit-metrics")
        self._pending: list = []
        self._buffer: list = []
        self._last_write = time.monotonic()

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in params.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer += [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if time.monotonic() - self._last_write >= WRITE_EVERY_S:
            self._write()

    def _write(self) -> None:
        batch, self._buffer, self._last_write = self._buffer, [], time.monotonic()
        for i in range(0, len(batch), MAX_METRICS):
            self._pending.append(self._writer.submit(self.client.log_batch, self.run_id, metrics=batch[i : i + MAX_METRICS]))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def log_artifact(self, path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def flush(self) -> None:
        self._write()
        pending, self._pending = self._pending, []
        for write in pending:
            write.result()  # raises what the write raised

    def finish(self, status: str) -> None:
        try:
            self.flush()
        finally:
            self._writer.shutdown(wait=True)
            self.client.set_terminated(self.run_id, status=status)


def open_run(tracking_cfg: Mapping[str, Any], run_name: str, tags: Mapping[str, str], run_id: str | None = None) -> NullRun:
    if not tracking_cfg.get("enabled", True):
        return NullRun()
    return TrackedRun(
        uri=tracking_cfg["uri"],
        experiment=tracking_cfg["experiment"],
        artifact_root=tracking_cfg.get("artifact_root"),
        run_name=run_name,
        tags=tags,
        run_id=run_id,
    )
