"""From a composed config to the things Lightning trains: data, model, loss, optimizer, task.

Everything here goes through the registries, and every mismatch between them (a loss that does not
fit the task, a task that does not fit the data, a model that cannot read the inputs) fails here,
before any run is created.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from dlkit import components, data, models, tasks  # noqa: F401  (importing registers the built-ins)
from dlkit.data import Dataset, TensorBatches
from dlkit.data.tensors import resize_images
from dlkit.errors import ConfigError
from dlkit.models.parts import LayerParts
from dlkit.registry import registry
from dlkit.schema import PositiveInt, check_value


@dataclass
class Experiment:
    dataset: Dataset
    task: pl.LightningModule
    loaders: dict[str, TensorBatches]
    batch_size: int  # the training batch size in effect (the whole training set for full-batch gd)


def section(cfg: DictConfig, key: str) -> dict[str, Any]:
    value = OmegaConf.to_container(cfg[key], resolve=True)
    if not isinstance(value, dict):
        raise ConfigError(f"'{key}' must be a mapping with a 'name' key, got {value!r}.")
    return value


@dataclass
class Plan:
    """Every component a config names, checked (names, parameters, ranges, fit), before any data is loaded."""

    parts: LayerParts
    optimizer: functools.partial
    scheduler: functools.partial
    task: functools.partial
    loss: Any
    data: functools.partial
    resize: int | None
    model: functools.partial
    batch_size: int | None


def plan(cfg: DictConfig) -> Plan:
    parts = LayerParts(*(section(cfg, k) for k in ("activation", "norm", "dropout", "residual")))
    parts.check()
    optimizer_cfg = section(cfg, "optimizer")
    batch_size = _batch_size(optimizer_cfg.pop("batch_size", None))
    optimizer = registry("optimizer").partial(optimizer_cfg)
    scheduler = functools.partial(registry("scheduler").partial(section(cfg, "scheduler")), max_epochs=int(cfg.trainer.max_epochs))
    task = registry("task").partial(section(cfg, "task"))
    loss = registry("loss").build(section(cfg, "loss"), output=getattr(task.func, "output", "softmax"))
    data_cfg = section(cfg, "data")
    resize = data_cfg.pop("resize", None)  # for any image data set: a transform, not a data set's parameter
    model = registry("model").partial(section(cfg, "model"))
    return Plan(parts, optimizer, scheduler, task, loss, registry("data").partial(data_cfg), resize, model, batch_size)


def build(cfg: DictConfig) -> Experiment:
    p = plan(cfg)
    dataset = _resized(p.data(), p.resize)
    task_cls = p.task.func
    if hasattr(task_cls, "check_data"):
        task_cls.check_data(dataset)
    batch_size = min(p.batch_size or len(dataset.train), len(dataset.train))  # None: the full batch
    shape = task_cls.output_shape(dataset)
    model = _model(p.model, dataset, shape, p.parts)
    task = p.task(model=model, loss=p.loss, optimizer=p.optimizer, scheduler=p.scheduler, shape=shape)
    if cfg.get("compile"):
        task.compile_model("default" if cfg.compile is True else cfg.compile)
    loaders = {
        "train": TensorBatches(dataset.train, batch_size, shuffle=True, seed=int(cfg.seed)),
        "val": TensorBatches(dataset.val, max(batch_size, 256)),  # evaluation batches need no gradient: larger is faster
        "test": TensorBatches(dataset.test, max(batch_size, 256)),
        "train_eval": TensorBatches(dataset.train, max(batch_size, 256)),  # training accuracy without dropout
    }
    return Experiment(dataset, task, loaders, batch_size)


def _resized(dataset: Dataset, size: int | None) -> Dataset:
    if not size:
        return dataset
    if len(dataset.input_shape) != 3 or dataset.input_vocab:
        raise ConfigError(
            f"data.resize={size} applies to images; {dataset.describe()} has no height and width"
            f" (model=lenet5 sets data.resize: LeNet-5 needs images)."
        )
    return resize_images(dataset, size)


def _batch_size(value: Any) -> int | None:
    check_value("optimizer.batch_size", value, PositiveInt | None)  # null: the full batch (gradient descent)
    return value


def _model(make: functools.partial, dataset: Dataset, output_shape: tuple[int, ...], parts: LayerParts):
    factory = make.func
    context = {"input_shape": dataset.input_shape, "output_shape": output_shape, "parts": parts}
    if dataset.input_vocab:
        if "input_vocab" not in inspect.signature(factory).parameters:
            able = [e.name for e in registry("model").entries() if "input_vocab" in inspect.signature(e.obj).parameters]
            raise ConfigError(
                f"model '{_name(factory)}' cannot read token inputs ({dataset.describe()}); models that can: {', '.join(able)}."
            )
        context["input_vocab"] = dataset.input_vocab
    return make(**context)


def _name(factory) -> str:
    return next(e.name for e in registry("model").entries() if e.obj is factory)
