"""callbacks=early_stopping: Lightning's EarlyStopping on the metrics a run logs each epoch, its direction read from
the metric's name where `mode` is not given.

It reads the epoch metrics the task publishes into `trainer.callback_metrics` (as every Lightning callback may), and
counts `patience` in validations (one an epoch unless trainer.check_val_every_n_epoch says otherwise), as Lightning's.
A run with an early stopper keeps its best epoch by the same monitor and direction: dlkit/train.py restores it.
"""

from __future__ import annotations

from pytorch_lightning import callbacks
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason

from dlkit.errors import ConfigError, did_you_mean
from dlkit.metrics import EPOCH_STAGES, LOGGED, parse
from dlkit.registry import register
from dlkit.schema import NonEmptyStr, NonNegativeFloat, NonNegativeInt

MODES = {"lower": "min", "higher": "max"}  # a metric's direction (dlkit/metrics.py) as Lightning's mode


@register("callback", "early_stopping")
class EarlyStopping(callbacks.EarlyStopping):
    """Stop training once `monitor` has not improved by more than `min_delta` in `patience` validations."""

    def __init__(
        self,
        monitor: NonEmptyStr,
        patience: NonNegativeInt = 3,
        mode: str | None = None,
        min_delta: NonNegativeFloat = 0.0,
    ):
        super().__init__(monitor=monitor, patience=patience, mode=_mode(monitor, mode), min_delta=min_delta)

    @property
    def stop_reason(self) -> str:
        """Why it stopped the run, in words ('' while it has not)."""
        if self.stopping_reason is EarlyStoppingReason.NOT_STOPPED:
            return ""
        if self.stopping_reason is not EarlyStoppingReason.PATIENCE_EXHAUSTED:
            return f"early stopping: {self.stopping_reason_message}"
        by = f" by more than {abs(self.min_delta):g}" if self.min_delta else ""
        return (
            f"early stopping: {self.monitor} did not improve{by} in {self.wait_count} validations"
            f" (best {float(self.best_score):.6g})"
        )


def _mode(monitor: str, mode: str | None) -> str:
    """Lightning's mode: as given, or from the direction the monitored metric's name says."""
    metric = parse(monitor, "monitor")
    if metric.kind != LOGGED or not metric.text.startswith(EPOCH_STAGES):
        raise ConfigError(
            f"monitor is '{monitor}': early stopping watches a metric the run logs every epoch, e.g. val/loss or"
            " val/acc (test/* are measured once, after training); set callbacks.early_stopping.monitor (its default"
            " is the run's objective)."
        )
    if mode is None:
        if metric.direction is None:
            raise ConfigError(
                f"whether '{monitor}' is better lower or higher is not known from its name (val/loss: lower, val/acc:"
                " higher): check the name, or give mode=min or mode=max."
            )
        return MODES[metric.direction]
    if mode not in MODES.values():
        raise ConfigError(
            f"mode '{mode}' is unknown;{did_you_mean(mode, MODES.values())} give min or max (or null: from the"
            " metric's name)."
        )
    return mode
