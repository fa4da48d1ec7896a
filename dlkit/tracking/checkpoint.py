"""The checkpoint an interrupted run leaves, so that `dlkit resume` continues it exactly.

At the end of an epoch (the first, then at most every EVERY_S seconds) the whole training state
(Lightning's checkpoint: weights, optimizer, scheduler, loop counters, callback states, plus the
random-number states that decide dropout masks and batch order) is copied in memory, not written.
On Ctrl-C or SIGTERM that copy is written as the run's artifact `checkpoints/last.ckpt`; the epochs
after it are dropped, so a resumed run replays them with the same random numbers and ends with the
same metrics as a run never interrupted.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.callbacks import Checkpoint

from dlkit.data.tensors import TensorBatches
from dlkit.tracking.logger import EpochLogger
from dlkit.tracking.run import NullRun

ARTIFACT = "checkpoints/last.ckpt"
EVERY_S = 2.0  # the copy is refreshed at the first epoch end at least this long after the last one


class Snapshot(Checkpoint):  # a Checkpoint runs after the module's epoch-end hook, like Lightning's own
    def __init__(self, train_loader: TensorBatches, logger: EpochLogger):
        self.loader, self.logger = train_loader, logger
        self.last: dict | None = None
        self.epoch = -1  # the last complete epoch in `last`
        self._taken = 0.0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:  # under DDP every process holds the same state; rank 0 keeps it
            return
        if self.last is not None and time.monotonic() - self._taken < EVERY_S:
            return  # short epochs: a copy every few seconds is enough, an interrupt loses at most that much
        self._taken = time.monotonic()
        self.epoch = trainer.current_epoch
        # A copy of every tensor (they change in place as training goes on); containers are rebuilt, plain values shared.
        state = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        self.last = apply_to_collection(state, torch.Tensor, lambda t: t.detach().clone())

    def state_dict(self) -> dict:
        return {"torch_rng": torch.get_rng_state(), "loader_rng": self.loader.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch_rng"])
        self.loader.generator.set_state(state["loader_rng"])
        self.logger.history.update({k: [tuple(p) for p in v] for k, v in state.get("history", {}).items()})

    def save(self, run: NullRun) -> bool:
        """Write the last complete epoch as the run's checkpoint artifact; False when there is none."""
        if self.last is None or run.run_id is None:
            return False
        checkpoint = self.last
        # The curves so far, up to that epoch (the logger has the partial epoch too): the resumed run draws them whole.
        history = {k: [(s, v) for s, v in points if s <= self.epoch] for k, points in self.logger.history.items()}
        checkpoint["callbacks"][self.state_key]["history"] = history
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(ARTIFACT).name
            torch.save(checkpoint, path)
            run.log_artifact(path, str(Path(ARTIFACT).parent))
        return True


def download(run: NullRun, into: Path) -> Path | None:
    """The run's checkpoint as a local file, or None when it left none (stopped before an epoch ended)."""
    return run.download(ARTIFACT, into)
