"""What each run leaves for review beside its metrics: learning curves, a confusion matrix for class
tasks, and the weights of its best epoch (by validation loss), kept in memory until the run ends."""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
from pytorch_lightning import Callback

from dlkit.plots import pyplot
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
    if run.run_id is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = [_curves(history, folder / "learning_curves.png")]
        if getattr(task, "output", None) in ("softmax", "sigmoid"):
            files += _confusion(task, test_loader, folder)
        if best.state is not None:
            torch.save(best.state, folder / "best.pt")  # a plain state dict: loads with torch.load(weights_only=True)
            files.append(folder / "best.pt")
            run.set_tags({"dlkit.best_epoch": str(best.epoch), "dlkit.best_val_loss": f"{best.best:.6g}"})
        for path in files:
            run.log_artifact(path)


def _curves(history: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    plt = pyplot()

    names = sorted({k.split("/", 1)[1] for k in history if k.startswith(("train/", "val/"))} - {"lr", "epoch_seconds"})
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for stage in ("train", "val"):
            points = history.get(f"{stage}/{name}", [])
            if points:
                ax.plot([s + 1 for s, _ in points], [v for _, v in points], label=stage)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    fig.subplots_adjust(left=0.3 / len(names), right=0.98, bottom=0.17, top=0.88, wspace=0.3)  # tight_layout costs 0.1 s a figure
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


@torch.no_grad()
def _confusion(task, loader, folder: Path) -> list[Path]:
    task.eval()
    predicted, true = [], []
    for x, y in loader:
        outputs = task(x.to(task.device))
        predicted.append(outputs.argmax(dim=1) if task.output == "softmax" else (outputs > 0).long())
        true.append(y.to(outputs.device).long())
    classes = outputs.shape[1] if task.output == "softmax" else 2
    pairs = torch.cat(true) * classes + torch.cat(predicted)
    matrix = pairs.bincount(minlength=classes * classes).view(classes, classes).tolist()  # rows: true, columns: predicted
    csv = folder / "confusion_matrix.csv"
    csv.write_text("true\\predicted," + ",".join(map(str, range(classes))) + "\n"
                   + "".join(f"{t}," + ",".join(map(str, row)) + "\n" for t, row in enumerate(matrix)))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    for t in range(classes):
        for p in range(classes):
            ax.text(p, t, matrix[t][p], ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("test confusion matrix")
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.13, top=0.9)
    png = folder / "confusion_matrix.png"
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return [csv, png]
