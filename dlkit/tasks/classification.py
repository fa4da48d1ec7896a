"""Classification: a model, a loss on its logits, an optimizer; loss and accuracy per epoch.

Metrics are summed on the device during the epoch and logged once at its end: no host sync and no
Lightning logging call per step, which would cost as much as a small model's step itself.
"""
from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from dlkit.registry import register

STAGES = ("train", "val", "test")


@register("task", "classification")
class Classification(pl.LightningModule):
    def __init__(self, model: nn.Module, loss: nn.Module, optimizer: Callable[..., torch.optim.Optimizer]):
        super().__init__()
        self.model, self.loss = model, loss
        self.make_optimizer = optimizer
        # Per stage: [sum of loss × batch size, correct predictions, samples].
        self.sums = {stage: torch.zeros(3) for stage in STAGES}

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        logits = self.model(x)
        loss = self.loss(logits, y)
        with torch.no_grad():
            sums = self.sums[stage]
            if sums.device != logits.device:
                sums = self.sums[stage] = sums.to(logits.device)
            sums[0] += loss.detach() * len(y)
            sums[1] += (logits.argmax(dim=1) == y).sum()
            sums[2] += len(y)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def _log_epoch(self, stage: str) -> None:
        loss_sum, correct, n = self.sums[stage].tolist()  # the one host sync of the epoch
        self.sums[stage].zero_()
        if n:
            self.log_dict({f"{stage}/loss": loss_sum / n, f"{stage}/acc": correct / n})

    def on_train_epoch_end(self):
        self._log_epoch("train")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")

    def configure_optimizers(self):
        return self.make_optimizer(self.parameters())
