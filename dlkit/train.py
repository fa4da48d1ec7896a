"""The whole story of one run: config → components → Lightning → MLflow.

    train(cfg) builds the experiment from the registries (a bad name fails here, before any run
    exists), opens the MLflow run, logs the config, fits, tests, and closes the run with its status.
"""
from __future__ import annotations

import logging
import signal
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from dlkit import plugins, sweep, tracking
from dlkit.build import build
from dlkit.config import flatten
from dlkit.progress import EpochProgress
from dlkit.tracking.artifacts import BestWeights, log_run_artifacts
from dlkit.tracking.logger import EpochLogger
from dlkit.tracking.provenance import device_tags, run_tags

log = logging.getLogger("dlkit")

for noisy in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
    logging.getLogger(noisy).setLevel(logging.WARNING)  # "GPU available: False ..." banners
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*treespec.*")  # Lightning 2.6 on torch 2.13, not actionable


@dataclass
class Result:
    metrics: dict[str, float]
    run_id: str | None = None
    experiment_id: str | None = None
    tracking_uri: str | None = None


def train(cfg: DictConfig, overrides: Sequence[str] = (), progress_prefix: str = "") -> Result:
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    pl.seed_everything(int(cfg.seed), verbose=False)
    loaded = [p.name + f" ({p.origin})" for p in plugins.load_all()]
    experiment = build(cfg)

    name = cfg.tracking.get("run_name") or ",".join(overrides) or "defaults"
    tags = run_tags(loaded) if cfg.tracking.enabled else {}
    if sweep.current is not None:  # a job of a sweep: a child of the sweep's parent run
        name = sweep.current.child_name(overrides) or name
        tags.update(sweep.current.child_tags(overrides))
    run = tracking.open_run(cfg.tracking, run_name=name, tags=tags)
    status = "FAILED"
    try:
        run.log_params({**flatten(cfg), "optimizer.batch_size": experiment.batch_size})  # null (full batch) as a number
        run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        run.log_text(yaml.safe_dump(list(overrides)), "overrides.yaml")
        best = BestWeights()
        trainer = _trainer(cfg, run, progress_prefix, best)
        run.set_tags(device_tags(trainer))
        trainer.fit(experiment.task, experiment.loaders["train"], experiment.loaders["val"])
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        for results in trainer.test(experiment.task, [experiment.loaders["test"], experiment.loaders["train_eval"]], verbose=False):
            metrics.update({k: float(v) for k, v in results.items()})
        if cfg.tracking.get("artifacts", False):
            log_run_artifacts(run, trainer.logger.history, best, experiment.task, experiment.loaders["test"])
        status = "FINISHED"
    except (KeyboardInterrupt, SystemExit) as exc:  # Lightning turns Ctrl-C into SystemExit(1)
        status = "KILLED"
        if isinstance(exc, SIGTERMException):  # Lightning exits 0 on SIGTERM; a killed run is no success
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    finally:
        run.finish(status)
    return Result(metrics, run.run_id, run.experiment_id, run.uri)


def _trainer(cfg: DictConfig, run: tracking.NullRun, progress_prefix: str, best: BestWeights) -> pl.Trainer:
    options = {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if v is not None}
    return pl.Trainer(
        **options,
        logger=EpochLogger(run),
        callbacks=[EpochProgress(progress_prefix), best],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,  # only epoch-level metrics are logged; this just silences a warning
        default_root_dir=cfg.paths.output_dir,
    )
