"""One line per epoch (rate-limited), instead of a progress bar redrawn at every tiny step."""
from __future__ import annotations

import logging
import time

from pytorch_lightning import Callback

log = logging.getLogger("dlkit")
HIDDEN = {"train/lr", "train/epoch_seconds"}  # logged to MLflow, too much for the console line


class EpochProgress(Callback):
    def __init__(self, prefix: str = "", min_interval_s: float = 2.0):
        self.prefix, self.min_interval_s = prefix, min_interval_s
        self._last_print = 0.0
        self._epoch_start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # The previous epoch's metrics are complete only now: the task publishes them after this callback's epoch-end hook.
        if trainer.current_epoch > 0:
            self._report(trainer, trainer.current_epoch - 1, last=False)
        self._epoch_start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._report(trainer, trainer.current_epoch - 1, last=True)

    def _report(self, trainer, epoch: int, last: bool) -> None:
        now = time.perf_counter()
        if not (last or epoch == 0 or now - self._last_print >= self.min_interval_s):
            return
        self._last_print = now
        shown = {k: v for k, v in trainer.lightning_module.metrics.items() if k.startswith(("train/", "val/")) and k not in HIDDEN}
        metrics = "  ".join(f"{k} {float(v):.4f}" for k, v in sorted(shown.items()))
        log.info("%sepoch %d/%d  %s  (%.2fs/epoch)", self.prefix, epoch + 1, trainer.max_epochs, metrics, now - self._epoch_start)
