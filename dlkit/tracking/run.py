"""One MLflow run's life, as training sees it: created with its tags and params, fed metrics per epoch,
always closed with a status (FINISHED, FAILED, or KILLED on Ctrl-C), never left RUNNING.

`Run` is the one interface; `open_run` picks its backend from the tracking plan:
- `NoRun`: tracking=none, or a DDP process beside rank 0: records nothing;
- `StoreRun` (dlkit/tracking/store.py): written from this process (tracking.recorder=false);
- `RecordedRun` (dlkit/tracking/recorder.py): StoreRun run in a recorder process, each call a message to it.

How a call reaches a recorder is declared once, on StoreRun's methods (dlkit/tracking/delivery.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class Run(Protocol):
    run_id: str | None
    experiment_id: str | None
    uri: str | None
    records: bool  # whether anything is recorded (a backend may learn run_id only when asked: ask only when needed)

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def log_text(self, text: str, path: str) -> None: ...
    def log_inputs(self, datasets: list[Mapping[str, str]]) -> None:
        """Data sets as MLflow inputs: each {name, digest, source, context, rows} (see Dataset.inputs)."""

    def log_artifact(self, path, artifact_path: str | None = None) -> None: ...
    def log_bytes(self, content: bytes, path: str) -> None:
        """content as the artifact `path` (a file name, or folder/name), as log_text does for text."""

    def log_figures(self, history: Mapping[str, list[tuple[int, float]]], confusion: list[list[int]] | None) -> None:
        """The learning curves and, for class tasks, the confusion matrix, drawn from these numbers."""

    def log_model(
        self, model: bytes, example: Any, step: int, metrics: Mapping[str, float], dataset: Mapping[str, str]
    ) -> None:
        """A torch.save'd nn.Module as the run's MLflow model, `example` (a few inputs, numpy) its input example;
        linked to the run's metrics at `step` (its epoch), with its own `metrics` on `dataset` ({name, digest})."""

    def download(self, artifact: str, into: Path) -> Path | None: ...
    def finish(self, status: str) -> None: ...


CALLS = frozenset(name for name in vars(Run) if not name.startswith("_") and callable(vars(Run)[name]))


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


class NoRun:
    """Records nothing: each call of the interface does nothing."""

    run_id = None
    experiment_id = None
    uri = None
    records = False

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name in CALLS:
            return _nothing
        raise AttributeError(name)


@dataclass(frozen=True)
class RunIds:
    """Where a run that exists already is: what a relaunched sweep's finished job reports."""

    run_id: str
    experiment_id: str
    uri: str


def open_run(
    tracking: Any, run_name: str, tags: Mapping[str, str], run_id: str | None = None, detached: bool = False
) -> Run:
    """tracking: the plan's TrackingPlan (enabled, uri, experiment, artifact_root, recorder).
    run_id: reopen that run to resume it; detached: see RecordedRun."""
    if not tracking.enabled:
        return NoRun()
    if not tracking.recorder:
        from dlkit.tracking.store import StoreRun

        return StoreRun(
            tracking.uri, tracking.experiment, tracking.artifact_root, run_name, tags, run_id, tracking.system_metrics
        )
    from dlkit.tracking import recorder

    settings = {
        "uri": tracking.uri,
        "experiment": tracking.experiment,
        "artifact_root": tracking.artifact_root,
        "system_metrics": tracking.system_metrics,
        "log_model": tracking.log_model,
    }
    return recorder.RecordedRun(settings, run_name=run_name, tags=dict(tags), run_id=run_id, detached=detached)
