"""What Lightning calls back while a run trains: the console line, the metrics handed to the run,
the best epoch's weights, and the in-memory snapshot an interrupted run resumes from.

The snapshot: at the end of an epoch (the first, then at most every SNAPSHOT_EVERY_S seconds) the whole
training state (Lightning's checkpoint: weights, optimizer, scheduler, loop counters, callback states, plus
the random-number states that decide dropout masks and batch order) is copied in memory, not written. On
Ctrl-C or SIGTERM that copy is written as the run's artifact `checkpoints/last.ckpt`; the epochs after it are
dropped, so a resumed run replays them with the same random numbers and ends with the same metrics as a run
never interrupted. It goes through Lightning's public `trainer.save_checkpoint` into `MemoryCheckpointIO`.
"""

from __future__ import annotations

import copy
import io
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning import Callback
from pytorch_lightning.callbacks import Checkpoint, EarlyStopping
from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.plugins import TorchCheckpointIO
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from torch import nn

from dlkit.data.tensors import TensorBatches
from dlkit.tracking import tags
from dlkit.tracking.run import NoRun, Run

log = logging.getLogger("dlkit")
HIDDEN = {"train/lr", "train/epoch_seconds"}  # logged to MLflow, too much for the console line
CHECKPOINT_ARTIFACT = "checkpoints/last.ckpt"
SNAPSHOT_EVERY_S = 2.0  # the snapshot is refreshed at the first epoch end at least this long after the last one
IN_MEMORY = "memory://last"  # the path trainer.save_checkpoint is given for the snapshot


class EpochProgress(Callback):
    """One line per epoch (rate-limited), instead of a progress bar redrawn at every tiny step."""

    def __init__(self, prefix: str = "", min_interval_s: float = 2.0):
        self.prefix, self.min_interval_s = prefix, min_interval_s
        self._last_print = 0.0
        self._epoch_start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # The previous epoch's metrics are complete only now: the task publishes them after this callback's epoch end.
        if trainer.current_epoch > 0:
            self._report(trainer, trainer.current_epoch - 1, last=False)
        self._epoch_start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._report(trainer, trainer.current_epoch - 1, last=True)

    def _report(self, trainer, epoch: int, last: bool) -> None:
        if not trainer.is_global_zero:  # every process has the same (reduced) numbers: one prints them
            return
        now = time.perf_counter()
        if not (last or epoch == 0 or now - self._last_print >= self.min_interval_s):
            return
        self._last_print = now
        metrics = trainer.lightning_module.metrics
        shown = {k: v for k, v in metrics.items() if k.startswith(("train/", "val/")) and k not in HIDDEN}
        line = "  ".join(f"{k} {float(v):.4f}" for k, v in sorted(shown.items()))
        log.info(
            "%sepoch %d/%d  %s  (%.2fs/epoch)",
            self.prefix,
            epoch + 1,
            trainer.max_epochs,
            line,
            now - self._epoch_start,
        )


class StepBar(Callback):
    """A progress bar of the epoch's optimizer steps, with the time left, redrawn on one terminal line (stderr) at
    most every `every_s` seconds and cleared before the epoch's line: for runs whose epochs are long. It moves once
    a Lightning step (steps_per_call batches)."""

    def __init__(self, stream: Any, every_s: float = 0.2, width: int = 24):
        self.stream, self.every_s, self.width = stream, every_s, width
        self._start = self._drawn = 0.0
        self._batches = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start, self._drawn, self._batches = time.perf_counter(), 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._batches += len(batch)
        now = time.perf_counter()
        if not trainer.is_global_zero or now - self._drawn < self.every_s:
            return
        self._drawn = now
        per_step = pl_module.accumulate
        done, total = -(-self._batches // per_step), -(-trainer.train_dataloader.batches() // per_step)
        filled = self.width * done // max(total, 1)
        left = (now - self._start) / max(done, 1) * (total - done)
        self.stream.write(
            f"\repoch {trainer.current_epoch + 1}/{trainer.max_epochs} {'█' * filled}{'░' * (self.width - filled)}"
            f" {done}/{total} steps  {_clock(now - self._start)} elapsed, {_clock(left)} left\x1b[K"
        )
        self.stream.flush()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self._drawn:
            self.stream.write("\r\x1b[K")  # the epoch's line takes its place
            self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"


class StopTogether(Callback):
    """Under DDP, a run stops at the end of an epoch where rank 0 says so (a search's pruner decides there, from
    numbers only rank 0 has): each process takes rank 0's decision. Placed after every callback that may decide."""

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.world_size > 1 and not trainer.sanity_checking:
            trainer.should_stop = bool(trainer.strategy.broadcast(trainer.should_stop, src=0))


class EpochLogger(Logger):
    """Hands epoch metrics to the run, with step = epoch, and keeps them for the run's own plots."""

    def __init__(self, run: Run | None = None):
        super().__init__()
        self.run: Run = run or NoRun()  # set to the real run once it is opened
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)

    @property
    def name(self) -> str:
        return "dlkit"

    @property
    def version(self) -> str:
        return self.run.run_id or "none"

    @property
    def experiment(self) -> Run:
        return self.run

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass  # dlkit logs the whole resolved config itself, uncut

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        # Lightning adds the epoch to every epoch-level log call; the chapter's curves are per epoch.
        epoch = metrics.pop("epoch", None)
        if metrics:
            step = int(epoch) if epoch is not None else int(step or 0)
            self.run.log_metrics(metrics, step=step)
            for key, value in metrics.items():
                self.history[key].append((step, float(value)))


class BestWeights(Checkpoint):  # a Checkpoint runs after the module's epoch-end hook: this epoch's train/* are there
    """Remembers the model's weights at its best epoch (a copy in memory: no file per epoch): its lowest val/loss, or
    by an early stopper's monitor and direction (train() says which)."""

    def __init__(self, monitor: str = "val/loss", higher: bool = False):
        self.monitor, self.higher = monitor, higher
        self.best: float | None = None
        self.epoch: int | None = None
        self.val_loss: float | None = None  # the best epoch's, whatever the monitor
        self.state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        value = pl_module.metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        if self.best is None or (value > self.best if self.higher else value < self.best):
            self.best, self.epoch, self.val_loss = value, trainer.current_epoch, pl_module.metrics.get("val/loss")
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in pl_module.model.state_dict().items()})

    def state_dict(self) -> dict:  # kept in the checkpoint, so a resumed run knows its best epoch so far
        return {"best": self.best, "epoch": self.epoch, "state": self.state, "val_loss": self.val_loss}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.epoch, self.state = state["best"], state["epoch"], state["state"]
        self.val_loss = state.get("val_loss", self.best if self.monitor == "val/loss" else None)

    def restore(self, model: nn.Module) -> None:
        """Put the best epoch's weights back into `model` (what an early-stopped run is tested and logged with)."""
        if self.state is not None:
            model.load_state_dict(self.state)

    def model(self, like: nn.Module) -> nn.Module | None:
        """A copy of `like` holding the best epoch's weights, on the CPU, in eval mode (None before any epoch)."""
        if self.state is None:
            return None
        model = copy.deepcopy(like).cpu()
        model.load_state_dict(self.state)
        return model.eval()

    def save_to(self, run: Run) -> None:
        """best.pt, a plain state dict (loads with torch.load(weights_only=True)), and its epoch as tags."""
        if self.state is None:
            return
        buffer = io.BytesIO()
        torch.save(self.state, buffer)
        run.log_bytes(buffer.getvalue(), "best.pt")  # the recorder writes it while this process goes on
        loss = {tags.BEST_VAL_LOSS: f"{self.val_loss:.6g}"} if self.val_loss is not None else {}
        run.set_tags({tags.BEST_EPOCH: str(self.epoch), **loss})


def stop_reason(callbacks) -> str:
    """Why a callback stopped the run before its max_epochs, as 'how: why' ('early stopping: val/loss did not ...',
    'pruned: ...'); '' when none did. A callback says so in its own `stop_reason` (dlkit's early stopping, a search's
    pruning); a Lightning EarlyStopping (a plugin's) in its message."""
    for callback in callbacks:
        reason = getattr(callback, "stop_reason", "")
        if not reason and isinstance(callback, EarlyStopping) and callback.stopping_reason_message:
            reason = f"early stopping: {callback.stopping_reason_message}"
        if reason:
            return reason
    return ""


def files_skipped(callbacks, outcome: Mapping[str, float]) -> str:
    """Why the run writes no figures, best.pt or model, as the first callback with a say gives it (a search's trial
    that is not kept: dlkit/search.py); '' when it writes them. outcome: the run's metrics as its result has them."""
    for callback in callbacks:
        reason = callback.files_skipped(outcome) if hasattr(callback, "files_skipped") else ""
        if reason:
            return reason
    return ""


class MemoryCheckpointIO(TorchCheckpointIO):
    """Keeps the checkpoint saved to IN_MEMORY as a copy of its tensors instead of writing a file; any other
    path (a resumed run's last.ckpt) is read and written as Lightning's own TorchCheckpointIO does."""

    def __init__(self):
        super().__init__()
        self.kept: dict | None = None

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if str(path) != IN_MEMORY:
            return super().save_checkpoint(checkpoint, path, storage_options)
        # A copy of every tensor (they change in place as training goes on); containers are rebuilt, plain values
        # shared.
        self.kept = apply_to_collection(checkpoint, torch.Tensor, lambda t: t.detach().clone())

    def remove_checkpoint(self, path) -> None:
        if str(path) != IN_MEMORY:
            super().remove_checkpoint(path)


class Snapshot(Checkpoint):  # a Checkpoint runs after the module's epoch-end hook, like Lightning's own
    def __init__(self, train_loader: TensorBatches, logger: EpochLogger, io: MemoryCheckpointIO):
        self.loader, self.logger, self.io = train_loader, logger, io
        self.epoch = -1  # the last complete epoch in the snapshot
        self._taken = 0.0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        due = self.io.kept is None or time.monotonic() - self._taken >= SNAPSHOT_EVERY_S
        if not trainer.strategy.broadcast(due, src=0):  # under DDP every process saves together, as rank 0 decides
            return  # short epochs: a copy every few seconds is enough, an interrupt loses at most that much
        self._taken = time.monotonic()
        self.epoch = trainer.current_epoch
        trainer.save_checkpoint(IN_MEMORY, weights_only=False)

    def state_dict(self) -> dict:
        return {"torch_rng": torch.get_rng_state(), "loader_rng": self.loader.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch_rng"])
        self.loader.generator.set_state(state["loader_rng"])
        self.logger.history.update({k: [tuple(p) for p in v] for k, v in state.get("history", {}).items()})

    def save(self, run: Run) -> None:
        """Write the last complete epoch as the run's checkpoint artifact (when there is one)."""
        if self.io.kept is None or run.run_id is None:
            return
        checkpoint = self.io.kept
        # The curves so far, up to that epoch (the logger has the partial epoch too): the resumed run draws them whole.
        history = {k: [(s, v) for s, v in points if s <= self.epoch] for k, points in self.logger.history.items()}
        checkpoint["callbacks"][self.state_key]["history"] = history
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(CHECKPOINT_ARTIFACT).name
            torch.save(checkpoint, path)
            run.log_artifact(path, str(Path(CHECKPOINT_ARTIFACT).parent))


@torch.no_grad()
def confusion(task, loader) -> list[list[int]] | None:
    """Counts of (true, predicted) class pairs on the test split: rows true, columns predicted; None when the task's
    predictions are no class labels. Counted from the task's own predictions: those its test pass kept, else one more
    pass through its `predict`."""
    kept = task.test_predictions
    if kept is None:
        task.eval()
        pairs = [(task.predict(task(x.to(task.device))), y) for x, y in loader]
        kept = (torch.cat([p for p, _ in pairs]), torch.cat([y for _, y in pairs]).to(task.device))
    predicted, true = kept
    if not _are_labels(predicted, true):
        return None
    classes = task.shape[0] if task.output == "softmax" else 2
    pairs = true.long() * classes + predicted.long()
    return pairs.bincount(minlength=classes * classes).view(classes, classes).tolist()


def _are_labels(predicted: torch.Tensor, true: torch.Tensor) -> bool:
    """One whole-number (or boolean) prediction per sample: a class label, not a row of scores."""
    return predicted.shape == true.shape and predicted.dim() == 1 and not predicted.is_floating_point()
