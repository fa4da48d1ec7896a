"""A Lightning logger that hands epoch metrics to the dlkit run, with step = epoch."""
from __future__ import annotations

from collections import defaultdict

from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from dlkit.tracking.run import NullRun


class EpochLogger(Logger):
    def __init__(self, run: NullRun | None = None):
        super().__init__()
        self.run = run or NullRun()  # set to the real run once it is opened
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)  # for the run's own plots

    @property
    def name(self) -> str:
        return "dlkit"

    @property
    def version(self) -> str:
        return self.run.run_id or "none"

    @property
    def experiment(self) -> NullRun:
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
