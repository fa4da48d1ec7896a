"""What every supervised task shares: a model, a loss on its raw outputs, an optimizer (and an
optional learning-rate scheduler), and metrics computed on the device once per epoch.

Each step keeps its loss and its predictions (one operation: e.g. the argmax) on the device; the
epoch's metrics are computed from all of them at once when the epoch ends. Computing and summing
metrics per step, or logging them through Lightning per step, would cost as much as a small model's
step itself. A task names the output function its loss applies (`output`) and the kind of target it
trains on (`target`), so mismatches fail before training.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from dlkit.data.tensors import Dataset
from dlkit.errors import ConfigError, Diverged
from dlkit.internals import count_optimizer_step

TEST_STAGES = ("test", "train_eval")  # the test split, then the training split in eval mode (no dropout)


class Supervised(pl.LightningModule):
    output = "identity"  # the output function the loss applies: softmax, sigmoid, identity, sequence
    target = "value"  # the data's target kind: class, value, sequence

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., object] | None = None,
        grad_norms: bool = False,
        shape: tuple[int, ...] = (),
        clip_val: float | None = None,
        clip_algorithm: str = "norm",
        accumulate: int = 1,
    ):
        """grad_norms: log each weight's gradient norm per epoch (grad_norm/<layer>), to watch gradients vanish.
        shape: the model's output shape for one sample (the task's output_shape of the data; build passes it).
        clip_val, clip_algorithm: trainer.gradient_clip_val and _algorithm (build passes them), applied here:
        Lightning clips only automatic optimization's steps.
        accumulate: trainer.accumulate_grad_batches, applied here for the same reason: an optimizer step of the
        gradients of `accumulate` batches, each batch's loss divided by it, and one at the epoch's end for the rest."""
        super().__init__()
        self.model, self.loss = model, loss
        self.make_optimizer, self.make_scheduler = optimizer, scheduler
        self.shape = tuple(shape)
        self.compiled: Callable[[Tensor], Tensor] | None = None  # set by compile_model
        self.kept: dict[
            str, list[tuple[Tensor, Tensor, Tensor]]
        ] = {}  # per stage: each batch's (loss, predictions, targets)
        self.grad_sums: Tensor | None = None
        self.test_predictions: tuple[Tensor, Tensor] | None = None  # the test split's, kept by the last test pass
        self.metrics: dict[str, float] = {}  # the latest value of every metric, e.g. {"val/loss": 0.31}
        self.watched = [
            (n.removesuffix(".weight"), p) for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1
        ]
        self.grad_norms, self._grad_steps = grad_norms, 0
        self.automatic_optimization = False  # dlkit steps the optimizer itself, several steps per call (training_step)
        self.clip_val, self.clip_algorithm = clip_val, clip_algorithm
        self.accumulate, self._pending = accumulate, 0  # _pending: batches whose gradients await their step

    # --- what a task defines ------------------------------------------------------------------
    @classmethod
    def check_data(cls, data: Dataset) -> None:
        if data.target != cls.target:
            raise ConfigError(
                f"task '{cls.__name__.lower()}' trains on {cls.target} targets; {data.describe()} has {data.target} "
                "targets."
            )

    @classmethod
    def output_shape(cls, data: Dataset) -> tuple[int, ...]:
        return ()

    def predict(self, outputs: Tensor) -> Tensor:
        """What the metrics need of a batch's outputs (e.g. the predicted class), kept until the epoch ends. The outputs
        themselves are copied: under CUDA graphs (compile=reduce-overhead) the next replay reuses their memory."""
        return outputs.detach().clone()

    def sums(self, predicted: Tensor, y: Tensor) -> Tensor:
        """A vector of sums over predictions and their targets (an epoch's at once) that epoch_metrics turns
        into metrics (beyond the loss). Its length must not depend on the data: DDP adds the processes' sums."""
        return predicted.new_zeros(0)

    @classmethod
    def chance(cls, y: Tensor) -> dict[str, float]:
        """What a predictor that ignores its input scores on the targets y, by metric name: a model no better than
        this learned nothing (the most frequent class's share for an accuracy, the variance for the MSE)."""
        return {}

    guess = "always predicting the most frequent class"  # the predictor that `chance` scores

    @classmethod
    def at_chance(cls, value: float, level: float, n: int) -> bool:
        """Whether a test metric of `value` is no better than its chance `level` over n test samples: by default an
        accuracy, within two binomial standard errors of the level."""
        return value <= level + 2 * math.sqrt(level * (1 - level) / n)

    @classmethod
    def chance_level(cls, metrics: dict[str, float], y: Tensor) -> str:
        """Why the test metrics are no better than a predictor that ignores its input ('' when they are better)."""
        for name, level in cls.chance(y).items():
            value = metrics.get(f"test/{name}")
            if value is not None and cls.at_chance(value, level, len(y)):
                return (
                    f"test/{name} {value:.4f} is no better than {cls.guess} ({level:.4f}): the model learned nothing;"
                    " try a smaller optimizer.lr or more trainer.max_epochs"
                )
        return ""

    def epoch_metrics(self, stats: list[float], n: float) -> dict[str, float]:
        return {}

    # --- the shared loop ----------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def compile_model(self, mode: str) -> None:
        """Train and evaluate through torch.compile(model, mode); 'reduce-overhead' captures CUDA graphs on a GPU,
        for small models whose steps are bound by kernel launches. The compiled wrapper is kept outside the module
        tree (object.__setattr__), so state dicts, checkpoints and best.pt keep the model's own parameter names."""
        # The jobs of a sweep run one after another in one process, each compiling its own model: the code compiled
        # for earlier jobs would count against dynamo's recompile limit (8), past which it silently runs eager.
        torch._dynamo.reset()
        object.__setattr__(self, "compiled", torch.compile(self.model, mode=mode))

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        # In-memory data already lives on the training device (train.py moves it there once); Lightning's
        # walk over a chunk's tensors to move each would cost about 10 µs a batch for nothing.
        return batch

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        outputs = (self.model if self.compiled is None else self.compiled)(x)
        loss = self.loss(outputs, y)
        with torch.no_grad():
            self.kept.setdefault(stage, []).append((loss.detach(), self.predict(outputs), y))
        return loss

    def training_step(self, batches: list[tuple[Tensor, Tensor]], batch_idx: int) -> None:
        """One optimizer step per batch of `batches` (up to `steps_per_call` of them, see data.Chunks), or per
        `accumulate` batches.

        Lightning's machinery around a step costs about as much as a small model's step itself; taking
        several steps per Lightning step pays it once per call (Keras's steps_per_execution). The update is
        the one Lightning would make: zero the gradients, backward (of loss / accumulate), clip, step.
        """
        optimizer = self.optimizers()
        single = self.trainer.world_size == 1  # under DDP ranks must stop together: divergence is checked per epoch
        # With no loss scaler (16-mixed) and no DDP, Lightning's backward and step add only per-step hooks that
        # dlkit does not use (about 0.1 ms a step): call PyTorch's directly and count the step for Lightning.
        direct = single and getattr(self.trainer.precision_plugin, "scaler", None) is None
        backward, step = (
            (self._backward, functools.partial(self._direct_step, optimizer.optimizer))
            if direct
            else (self.manual_backward, optimizer.step)
        )
        left = self._batches_left()
        if left is not None:
            batches = batches[:left]
        epoch_ends = batch_idx + 1 >= self.trainer.num_training_batches
        for i, batch in enumerate(batches):
            if self._pending == 0:
                optimizer.zero_grad()
            loss = self._step(batch, "train")
            # Free on the CPU; a sync on a GPU.
            if single and loss.device.type == "cpu" and not math.isfinite(loss.item()):
                self._diverged("train", loss.item())
            backward(loss / self.accumulate if self.accumulate > 1 else loss)
            self._pending += 1
            if self._pending == self.accumulate or (epoch_ends and i == len(batches) - 1):
                if self.clip_val:
                    self.clip_gradients(
                        optimizer, gradient_clip_val=self.clip_val, gradient_clip_algorithm=self.clip_algorithm
                    )
                step()
                self._pending = 0

    def _batches_left(self) -> int | None:
        """How many more batches training may take, where trainer.max_steps (or trainer.min_steps, once the run is
        asked to stop) ends it: both count optimizer steps, which Lightning checks only between its own steps."""
        limits = [self.trainer.max_steps] if self.trainer.max_steps >= 0 else []
        if self.trainer.should_stop and self.trainer.fit_loop.min_steps:
            limits.append(self.trainer.fit_loop.min_steps)
        if not limits:
            return None
        return max(0, (min(limits) - self.global_step) * self.accumulate - self._pending)

    def _backward(self, loss: Tensor) -> None:
        loss.backward()
        self.on_after_backward()

    def _direct_step(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()
        count_optimizer_step(self.trainer)

    def _diverged(self, stage: str, value: float) -> None:
        raise Diverged(
            f"{stage}/loss became {value} in epoch {self.current_epoch + 1}, after {self.global_step} optimizer steps:"
            " training diverged; try a smaller optimizer.lr or trainer.gradient_clip_val=1.0"
        )

    def validation_step(self, batches: list[tuple[Tensor, Tensor]], batch_idx: int) -> None:
        for batch in batches:  # several per call, as in training: Lightning's per-batch cost paid once
            self._step(batch, "val")

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._step(batch, TEST_STAGES[dataloader_idx])

    def on_after_backward(self):
        if self.grad_norms:  # summed on the device: no host sync per step
            norms = torch.stack([p.grad.norm() if p.grad is not None else p.new_zeros(()) for _, p in self.watched])
            self.grad_sums = norms if self.grad_sums is None else self.grad_sums + norms
            self._grad_steps += 1

    def _epoch_sums(self, stage: str) -> tuple[Tensor, int] | None:
        """The stage's loss summed over its samples, then the task's sums, and the number of samples."""
        kept = self.kept.pop(stage, None)
        if not kept:
            return None
        if stage == "test":  # what the run's confusion matrix counts
            self.test_predictions = (torch.cat([p for _, p, _ in kept]), torch.cat([y for *_, y in kept]))
        return self._sums(kept)

    def _sums(self, kept: list[tuple[Tensor, Tensor, Tensor]]) -> tuple[Tensor, int]:
        losses, predicted, targets = zip(*kept)
        sizes = [len(y) for y in targets]
        with torch.no_grad():
            loss_sum = torch.stack(losses) @ losses[0].new_tensor(sizes)  # Σ batch mean × batch size
            predicted, targets = torch.cat(predicted), torch.cat(targets)
            sums = self.sums(predicted, targets).to(loss_sum.dtype)
        return torch.cat([loss_sum.view(1), sums]), sum(sizes)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> dict[str, float]:
        """The task's metrics of `model` (in eval mode) on the samples x, y, outside any trainer and logging nothing:
        what the logged MLflow model scores on the test split."""
        kept = []
        for i in range(0, len(y), batch_size):
            outputs = model(x[i : i + batch_size])
            kept.append((self.loss(outputs, y[i : i + batch_size]), self.predict(outputs), y[i : i + batch_size]))
        sums, n = self._sums(kept)
        loss_sum, *stats = sums.tolist()
        return {"loss": loss_sum / n, **self.epoch_metrics(stats, n)}

    def _log_epoch(self, stage: str) -> None:
        epoch = self._epoch_sums(stage)
        if epoch is None:
            return
        sums, n = epoch
        if self.trainer.world_size > 1:  # DDP: each process summed its shard; the epoch's metrics are over all of them
            sums = self.trainer.strategy.reduce(torch.cat([sums, sums.new_tensor([n])]), reduce_op="sum")
            sums, n = sums[:-1], int(sums[-1].item())
        loss_sum, *stats = sums.tolist()  # the one host sync of the epoch
        if stage in ("train", "val") and not math.isfinite(loss_sum):  # val: weights gone non-finite on the last step
            self._diverged(stage, loss_sum)
        metrics = {"loss": loss_sum / n, **self.epoch_metrics(stats, n)}
        if stage == "train":
            metrics["lr"] = self._epoch_lr
            # The epoch: training and its validation pass.
            metrics["epoch_seconds"] = time.perf_counter() - self._epoch_start
        self._publish({f"{stage}/{k}": v for k, v in metrics.items()})
        if stage == "train" and self.grad_sums is not None:
            steps, self._grad_steps = self._grad_steps, 0
            norms, self.grad_sums = self.grad_sums.tolist(), None
            self._publish({f"grad_norm/{name}": value / steps for (name, _), value in zip(self.watched, norms)})

    def _publish(self, values: dict[str, float]) -> None:
        """Keep the epoch's metrics in `self.metrics` (what the console, the callbacks and train() read) and in
        `trainer.callback_metrics` (what Lightning's callbacks read: EarlyStopping, a plugin's own), and hand them to
        the logger with step = epoch. Lightning's self.log costs about a millisecond per key, per epoch."""
        self.metrics.update(values)
        self.trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})
        if self.logger is not None:
            self.logger.log_metrics(values, step=self.current_epoch)

    def on_train_epoch_start(self):
        self._epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"]  # the scheduler steps before epoch end
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self):
        self._log_epoch("train")
        scheduler = self.lr_schedulers()  # stepped once per epoch, where Lightning steps it in automatic optimization
        if scheduler is not None:
            scheduler.step()

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        for stage in TEST_STAGES:
            self._log_epoch(stage)

    def configure_optimizers(self):
        optimizer = self.make_optimizer(self.parameters())
        scheduler = self.make_scheduler(optimizer) if self.make_scheduler else None
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def majority_share(y: Tensor) -> float:
    """The share of the most frequent class (or token): the accuracy of always predicting it."""
    counts = torch.bincount(y.flatten().long())
    return float(counts.max() / counts.sum())
