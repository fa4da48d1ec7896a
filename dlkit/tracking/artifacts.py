"""What each run leaves for review beside its metrics: learning curves, a confusion matrix for class
tasks (drawn by dlkit/tracking/figures.py), and the weights of its best epoch (by validation loss),
kept in memory until the run ends."""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
from pytorch_lightning import Callback

from dlkit.tracking.run import NullRun


class BestWeights(Callback):
    """Remembers the model's weights at its lowest validation loss (a copy in memory: no file per epoch)."""

    def __init__(self, monitor: str = "val/loss"):
        self.monitor = monitor
        self.best: float | None = None
        self.epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        value = pl_module.metrics.get(self.monitor)
        if value is None or trainer.sanity_checking:
            return
        value = float(value)
        if self.best is None or value < self.best:
            self.best, self.epoch = value, trainer.current_epoch
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in pl_module.model.state_dict().items()})

    def state_dict(self) -> dict:  # kept in the checkpoint, so a resumed run knows its best epoch so far
        return {"best": self.best, "epoch": self.epoch, "state": self.state}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.epoch, self.state = state["best"], state["epoch"], state["state"]


def log_run_artifacts(run: NullRun, history: dict[str, list[tuple[int, float]]], best: BestWeights, task, test_loader) -> None:
    """The best weights are saved here; the figures are drawn by the recorder process, from numbers."""
    if run.run_id is None:  # (asked before the figures are queued: the recorder answers it without drawing them first)
        return
    if best.state is not None:
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(best.state, Path(tmp) / "best.pt")  # a plain state dict: loads with torch.load(weights_only=True)
            run.log_artifact(Path(tmp) / "best.pt")
        run.set_tags({"dlkit.best_epoch": str(best.epoch), "dlkit.best_val_loss": f"{best.best:.6g}"})
    confusion = _confusion(task, test_loader) if getattr(task, "output", None) in ("softmax", "sigmoid") else None
    run.log_figures({k: list(v) for k, v in history.items()}, confusion)


@torch.no_grad()
def _confusion(task, loader) -> list[list[int]]:
    """Counts of (true, predicted) class pairs on the test split: rows true, columns predicted."""
    task.eval()
    predicted, true = [], []
    for x, y in loader:
        outputs = task(x.to(task.device))
        predicted.append(outputs.argmax(dim=1) if task.output == "softmax" else (outputs > 0).long())
        true.append(y.to(outputs.device).long())
    classes = outputs.shape[1] if task.output == "softmax" else 2
    pairs = torch.cat(true) * classes + torch.cat(predicted)
    return pairs.bincount(minlength=classes * classes).view(classes, classes).tolist()
