"""From a Plan to the things Lightning trains: data, model, loss, optimizer, task, batches.

The plan has checked every name and parameter; what only the data can reveal (a task that does not
fit the data, a model that cannot read the inputs, an image size for non-images, a callback that monitors a metric
the run never logs) fails here, still before any run is created.
"""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass, field

import pytorch_lightning as pl
from torch import nn

from dlkit.data import Dataset, TensorBatches
from dlkit.data.tensors import resize_images
from dlkit.errors import ConfigError, did_you_mean
from dlkit.models.parts import LayerParts
from dlkit.plan import Plan
from dlkit.registry import Spec, registry

log = logging.getLogger("dlkit")
EVAL_BATCH = 256  # evaluation batches need no gradient: larger is faster


@dataclass
class Experiment:
    dataset: Dataset
    task: pl.LightningModule
    loaders: dict[str, TensorBatches]
    batch_size: int  # the training batch size in effect (the whole training set for full-batch gd)
    callbacks: list[pl.Callback] = field(default_factory=list)  # the config's (callbacks=...), made for this run


def build(plan: Plan) -> Experiment:
    dataset = _resized(plan.data(), plan.resize)
    task_cls = plan.task.factory
    if hasattr(task_cls, "check_data"):
        task_cls.check_data(dataset)
    batch_size = min(plan.batch_size or len(dataset.train), len(dataset.train))  # None: the full batch
    shape = task_cls.output_shape(dataset)
    model = _model(plan.model, dataset, shape, plan.parts)
    loss = plan.loss(output=getattr(task_cls, "output", "softmax"))
    scheduler = functools.partial(plan.scheduler, max_epochs=plan.trainer.max_epochs)
    task = plan.task(
        model=model,
        loss=loss,
        optimizer=plan.optimizer,
        scheduler=scheduler,
        shape=shape,
        clip_val=plan.trainer.clip_val,
        clip_algorithm=plan.trainer.clip_algorithm,
        accumulate=plan.trainer.accumulate,
    )
    if plan.compile:
        task.compile_model(plan.compile)
    eval_batch = max(batch_size, EVAL_BATCH)
    smallest = _smallest_batch(model, batch_size, len(dataset.train))
    loaders = {
        "train": TensorBatches(
            dataset.train, batch_size, shuffle=plan.trainer.shuffle, seed=plan.seed, smallest=smallest
        ),
        "val": TensorBatches(dataset.val, eval_batch),
        "test": TensorBatches(dataset.test, eval_batch),
        "train_eval": TensorBatches(dataset.train, eval_batch),  # training accuracy without dropout
    }
    callbacks = [spec() for _, spec in plan.callbacks]
    if any(isinstance(getattr(c, "monitor", None), str) for c in callbacks):
        _check_monitors(plan, callbacks, epoch_metrics(task, dataset, plan))
    return Experiment(dataset, task, loaders, batch_size, callbacks)


def epoch_metrics(task, dataset: Dataset, plan: Plan) -> list[str]:
    """The metrics a run of this task logs every epoch: the task's own on two samples (the model in eval mode, which
    changes nothing), per stage that runs (no validation with trainer.limit_val_batches=0), and the learning rate,
    the epoch's seconds and (task.grad_norms) each weight's gradient norm."""
    model, training = task.model, task.model.training
    model.eval()
    try:
        names = list(task.evaluate(model, dataset.train.x[:2], dataset.train.y[:2]))
    finally:
        model.train(training)
    stages = ["train"] + (["val"] if plan.trainer.limit_val_batches != 0 else [])
    logged = [f"{stage}/{name}" for stage in stages for name in names] + ["train/lr", "train/epoch_seconds"]
    if task.grad_norms:
        logged += [f"grad_norm/{name}" for name, _ in task.watched]
    return logged


def _check_monitors(plan: Plan, callbacks: list[pl.Callback], logged: list[str]) -> None:
    for (key, _), callback in zip(plan.callbacks, callbacks):
        monitor = getattr(callback, "monitor", None)
        if isinstance(monitor, str) and monitor not in logged:
            raise ConfigError(
                f"callbacks.{key} monitors '{monitor}', which this run never logs;{did_you_mean(monitor, logged)}"
                f" it logs every epoch: {', '.join(logged)}."
            )


def _smallest_batch(model: nn.Module, batch_size: int, n: int) -> int:
    """The fewest samples a training batch may hold: 2 under batch norm, which normalizes by the batch's spread.
    A batch size of 1 is then rejected; a last batch of one (n = k · batch size + 1) is left out of each epoch."""
    if not any(
        isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)) for m in model.modules()
    ):
        return 1
    if batch_size == 1:
        raise ConfigError(
            "batch norm needs at least 2 samples per training batch (it normalizes by the batch's mean and"
            " spread); this run's hold 1 (optimizer.batch_size=1, as optimizer=sgd sets it): use norm=layer, or"
            " optimizer=minibatch."
        )
    if n % batch_size == 1:
        log.info(
            "the last training batch would hold 1 sample (%d = %d × %d + 1), which batch norm cannot normalize:"
            " each epoch leaves it out",
            n,
            n // batch_size,
            batch_size,
        )
    return 2


def _resized(dataset: Dataset, size: int | None) -> Dataset:
    if not size:
        return dataset
    if len(dataset.input_shape) != 3 or dataset.input_vocab:
        raise ConfigError(
            f"data.resize={size} applies to images; {dataset.describe()} has no height and width"
            f" (model=lenet5 sets data.resize: LeNet-5 needs images)."
        )
    return resize_images(dataset, size)


def _model(make: Spec, dataset: Dataset, output_shape: tuple[int, ...], parts: LayerParts):
    context = {"input_shape": dataset.input_shape, "output_shape": output_shape, "parts": parts}
    if dataset.input_vocab:
        if "input_vocab" not in inspect.signature(make.factory).parameters:
            able = [e.name for e in registry("model").entries() if "input_vocab" in inspect.signature(e.obj).parameters]
            raise ConfigError(
                f"model '{make.name}' cannot read token inputs ({dataset.describe()}); models that can: "
                f"{', '.join(able)}."
            )
        context["input_vocab"] = dataset.input_vocab
    _check_fits(make, context)
    return make(**context)


def _check_fits(make: Spec, context: dict) -> None:
    """A model whose weights and their gradients alone cannot fit in this machine's free memory is named before any
    of it is allocated (the allocator's own error is a traceback): it is built first on PyTorch's meta device, which
    gives its parameters shapes and no storage."""
    import psutil
    import torch

    try:
        with torch.device("meta"):
            parameters = list(make(**context).parameters())
    except Exception:  # a model that cannot be built without real tensors (a plugin's): built for real, unchecked
        return
    count = sum(p.numel() for p in parameters)
    needed, free = 2 * sum(p.numel() * p.element_size() for p in parameters), psutil.virtual_memory().available
    if needed > free:
        raise ConfigError(
            f"model '{make.name}' has {count:,} parameters: its weights and their gradients alone need"
            f" {needed / 2**30:.1f} GiB, and this machine has {free / 2**30:.1f} GiB free; choose a smaller model"
            " (e.g. fewer model.hidden units)."
        )
