"""From a composed config to the things Lightning trains: data, model, loss, optimizer, task.

Everything here goes through the registries, so an unknown name fails before any run is created.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from dlkit import components, data, models, tasks  # noqa: F401  (importing registers the built-ins)
from dlkit.data import Dataset, TensorBatches
from dlkit.errors import ConfigError
from dlkit.models.parts import LayerParts
from dlkit.registry import registry


@dataclass
class Experiment:
    dataset: Dataset
    task: pl.LightningModule
    loaders: dict[str, TensorBatches]


def _section(cfg: DictConfig, key: str) -> dict[str, Any]:
    section = OmegaConf.to_container(cfg[key], resolve=True)
    if not isinstance(section, dict):
        raise ConfigError(f"'{key}' must be a mapping with a 'name' key, got {section!r}.")
    return section


def build(cfg: DictConfig) -> Experiment:
    parts = LayerParts(*(_section(cfg, k) for k in ("activation", "norm", "dropout", "residual")))
    parts.check()
    loss = registry("loss").build(_section(cfg, "loss"))
    optimizer = registry("optimizer").partial(_section(cfg, "optimizer"))
    task_cfg = _section(cfg, "task")
    registry("task").get(task_cfg.get("name"))

    data_cfg = _section(cfg, "data")
    batch_size = int(data_cfg.pop("batch_size"))
    dataset = registry("data").build(data_cfg)
    model = registry("model").build(
        _section(cfg, "model"), input_shape=dataset.input_shape, num_outputs=dataset.num_classes, parts=parts
    )
    task = registry("task").build(task_cfg, model=model, loss=loss, optimizer=optimizer)
    loaders = {
        "train": TensorBatches(dataset.train, batch_size, shuffle=True, seed=int(cfg.seed)),
        "val": TensorBatches(dataset.val, batch_size),
        "test": TensorBatches(dataset.test, batch_size),
    }
    return Experiment(dataset, task, loaders)
