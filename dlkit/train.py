"""The whole story of one run: plan → components → Lightning → MLflow.

train(plan) decides what the job is (a fresh run, a resumed one, a relaunched sweep's finished job, a DDP process
beside rank 0: `Job`), builds the experiment from the plan (what only the data can reveal fails here, before any
run exists), opens the MLflow run, logs the config, fits, tests, and closes the run with its status:
FINISHED; FAILED, tagged with the reason (a diverged loss, an error); or KILLED on Ctrl-C/SIGTERM,
leaving a checkpoint that `train(plan, resume=run_id)` continues.
"""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.utilities.exceptions import SIGTERMException

from dlkit import ddp, plugins
from dlkit.build import Experiment, build
from dlkit.callbacks import (
    CHECKPOINT_ARTIFACT,
    BestWeights,
    EpochLogger,
    EpochProgress,
    MemoryCheckpointIO,
    Snapshot,
    StepBar,
    StopTogether,
    confusion,
    files_skipped,
    stop_reason,
)
from dlkit.data.tensors import Chunks
from dlkit.errors import ConfigError, Diverged, Interrupted, RecorderGone, StoreLost, did_you_mean
from dlkit.metrics import BEST, EPOCH_STAGES, run_outcome
from dlkit.plan import Plan
from dlkit.tracking import tags as tag
from dlkit.tracking.provenance import device_tags, run_tags
from dlkit.tracking.run import NoRun, Run, RunIds, open_run
from dlkit.tracking.sweeps import Attempt, Sweep

log = logging.getLogger("dlkit")

for noisy in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
    logging.getLogger(noisy).setLevel(logging.WARNING)  # "GPU available: False ..." banners
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*treespec.*")  # Lightning 2.6 on torch 2.13, not actionable
# dlkit reduces its epoch sums across DDP processes itself.
warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
# On a SLURM login node Lightning tells every local run to prepend `srun python <script>`: not dlkit's way (a sweep's
# jobs go to SLURM with hydra/launcher=slurm), and noise on every run.
warnings.filterwarnings("ignore", message=".*The `srun` command is available on your system.*")
# trainer.limit_val_batches=0: no validation, as asked.
warnings.filterwarnings("ignore", message=".*length of `Chunks` across ranks is zero.*")


@dataclass
class Result:
    metrics: dict[str, float]
    run: Run | RunIds = field(default_factory=NoRun, repr=False)
    warning: str = ""  # the test metrics are no better than a predictor that ignores its input
    rank: int = 0  # > 0: a DDP process beside rank 0 (which reports and records)
    epochs: int | None = None  # the epochs it trained (None: a relaunched sweep's job that had finished)
    stopped: str = ""  # why a callback stopped it before trainer.max_epochs (early stopping, a search's pruner)

    # Asked of the run when read: a sweep's job, whose run the recorder creates while it trains, never waits for them.
    @property
    def run_id(self) -> str | None:
        return self.run.run_id

    @property
    def experiment_id(self) -> str | None:
        return self.run.experiment_id

    @property
    def tracking_uri(self) -> str | None:
        return self.run.uri


def train(
    plan: Plan,
    overrides: Sequence[str] = (),
    *,
    sweep: Sweep | None = None,
    progress_prefix: str = "",
    resume: str | None = None,
    callbacks: Sequence[pl.Callback] = (),
) -> Result:
    """sweep: the sweep this job belongs to (its run is a child of the sweep's parent); resume: the id of an
    interrupted run to continue from its last checkpoint; callbacks: more Lightning callbacks for the trainer (one
    with a `files_skipped(outcome)` that names a reason once it has trained keeps the run's files, its figures, best
    weights and model, from being written: a search's trial that nobody will read)."""
    job = Job.of(plan, sweep, resume)
    if job.finished is not None:
        done = job.finished
        log.info("%salready finished in run %s: skipped", progress_prefix, done.run_id)
        return Result(run_outcome(done.metrics), RunIds(done.run_id, done.experiment_id, sweep.uri))
    if plan.threads:
        torch.set_num_threads(plan.threads)
    pl.seed_everything(plan.seed, verbose=False)
    experiment = build(plan)
    stopper = next((c for c in experiment.callbacks if isinstance(c, EarlyStopping)), None)
    best = BestWeights(stopper.monitor, stopper.mode == "max") if stopper else BestWeights()  # its best epoch
    logger, checkpoint_io = EpochLogger(), MemoryCheckpointIO()
    snapshot = Snapshot(experiment.loaders["train"], logger, checkpoint_io)
    may_stop = [*callbacks, *experiment.callbacks]  # the caller's first: a search's pruning says why, not the config's
    callbacks = [
        EpochProgress(progress_prefix),
        *_bar(plan, sweep),
        best,
        *experiment.callbacks,
        snapshot,
        *callbacks,
        StopTogether(),
    ]
    trainer = _trainer(plan, logger, callbacks, checkpoint_io)
    if trainer.strategy.root_device.type != "cpu":  # in-memory data lives on the GPU: no copy per batch
        for loader in experiment.loaders.values():
            loader.to(trainer.strategy.root_device)

    def log_config(run: Run) -> None:
        _log_config(run, plan, overrides, experiment, trainer.world_size)

    config = log_config if job.fresh else None
    with ddp.job_scope(), _ends_with_status(job.open_run(plan, overrides, sweep), snapshot, config) as run:
        logger.run = run
        with tempfile.TemporaryDirectory() as tmp:
            last = job.checkpoint(run, plan, trainer.world_size, Path(tmp))
            if config:
                config(run)
            elif job.resume:
                how = "from its checkpoint" if last else "from the start (no epoch had ended)"
                log.info("%sresuming run %s %s", progress_prefix, job.resume, how)
            run.set_tags({**device_tags(trainer), tag.CONFIG_HASH: plan.fingerprint})
            _fit(trainer, experiment, plan, last)
        stopped = _record_stop(run, trainer, may_stop, progress_prefix)
        best_epoch = _restore_best(run, best, logger, experiment, progress_prefix) if stopper else {}
        trainer.test(experiment.task, [experiment.loaders["test"], experiment.loaders["train_eval"]], verbose=False)
        _log_profile(run, trainer, progress_prefix)
        # The task's own metrics, and any a plugin task logged through Lightning's self.log.
        metrics = {**{k: float(v) for k, v in trainer.callback_metrics.items()}, **experiment.task.metrics}
        warning = experiment.task.chance_level(metrics, experiment.loaders["test"].split.y)
        if warning:
            run.set_tags({tag.WARNING: "chance_level", tag.WARNING_REASON: warning})
        outcome = run_outcome({**metrics, **best_epoch})
        skipped = files_skipped(callbacks, outcome)
        if plan.tracking.artifacts and run.records and not skipped:
            _log_artifacts(run, logger, best, experiment)
        if plan.tracking.log_model and run.records and skipped:  # a callback's say: a search's trial
            run.set_tags({tag.MODEL_SKIPPED: skipped})
        elif plan.tracking.log_model and run.records:
            _log_model(run, best, experiment)
    return Result(
        outcome,
        run,
        warning=warning,
        rank=job.rank,
        epochs=trainer.current_epoch,
        stopped=stopped,
    )


@dataclass(frozen=True)
class Job:
    """What a job is, decided before anything is built or recorded: a fresh run; a run resumed (`dlkit resume`, or a
    relaunched sweep's job that was cut short); a relaunched sweep's job that finished (skipped); or a DDP process
    beside rank 0."""

    rank: int = 0  # > 0: a DDP process beside rank 0: it trains its shard in lockstep and records nothing
    resume: str | None = None  # the id of the run it continues from its last checkpoint
    finished: Attempt | None = None  # its earlier attempt in this sweep, which finished: nothing to run

    @classmethod
    def of(cls, plan: Plan, sweep: Sweep | None, resume: str | None) -> Job:
        rank = ddp.rank()
        if rank > 0:
            return cls(rank)
        earlier = sweep.earlier_attempt(plan.fingerprint) if sweep is not None and resume is None else None
        if earlier is not None and earlier.status == "FINISHED":
            return cls(finished=earlier)
        if earlier is not None and earlier.status in ("KILLED", "RUNNING"):  # RUNNING: its process died
            resume = earlier.run_id
        return cls(resume=resume)

    @property
    def fresh(self) -> bool:
        """A new run: its config is recorded."""
        return self.rank == 0 and self.resume is None

    def open_run(self, plan: Plan, overrides: Sequence[str], sweep: Sweep | None) -> Run:
        """The job's run: created, or reopened to resume it. A sweep's job in the sweep's own process does not wait for
        it (see RecordedRun)."""
        if self.rank > 0:
            return NoRun()
        name = plan.tracking.run_name or ",".join(overrides) or "defaults"
        tags = run_tags(plugins.labels()) if plan.tracking.enabled and self.resume is None else {}
        if tags:  # at creation: an attempt whose recorder died before its other tags is still known as this job's
            tags[tag.CONFIG_HASH] = plan.fingerprint
        if sweep is not None:  # a job of a sweep: a child of the sweep's parent run
            name = sweep.child_name(overrides) or name
            tags.update(sweep.child_tags(overrides))
        detached = sweep is not None and sweep.runs_here
        return open_run(plan.tracking, run_name=name, tags=tags, run_id=self.resume, detached=detached)

    def checkpoint(self, run: Run, plan: Plan, world_size: int, folder: Path) -> str | Path | None:
        """What training starts from (None: the start): the resumed run's last checkpoint, or beside rank 0, the one
        rank 0 handed over. Under DDP rank 0 hands it, with its config, to the processes beside it."""
        if self.rank > 0:
            return ddp.handed_checkpoint()
        last = run.download(CHECKPOINT_ARTIFACT, folder) if self.resume else None
        if world_size > 1:
            ddp.hand_over(plan.config_yaml, last, folder)
        return last


@contextlib.contextmanager
def _ends_with_status(run: Run, snapshot: Snapshot, log_config: Callable[[Run], None] | None) -> Iterator[Run]:
    """The run ends FINISHED; FAILED, tagged with the reason (a diverged loss, an error); KILLED on Ctrl-C/SIGTERM,
    its last snapshot written for `dlkit resume`; or, when the tracking server is lost, stays RUNNING there.
    log_config: a fresh run's config, written again from here when the recorder died with it unwritten."""
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    except (KeyboardInterrupt, SystemExit) as exc:  # Lightning: Ctrl-C -> SystemExit(1), SIGTERM -> SIGTERMException
        status = "KILLED"
        snapshot.save(run)
        signum = signal.SIGTERM if isinstance(exc, SIGTERMException) else signal.SIGINT
        raise Interrupted(run.run_id, 128 + signum) from None
    except StoreLost:
        status = "LOST"  # the server is gone: nothing more can be written, the run stays RUNNING there
        raise
    except RecorderGone as exc:  # the store is there, its writer is not: this process ends the run, resumable
        status = "GONE"
        direct = run.reopened()
        if log_config:  # what the recorder had not written when it died is lost: a resume needs config.yaml
            log_config(direct)
        snapshot.save(direct)
        direct.set_tags({tag.KILLED_REASON: str(exc)})
        direct.finish("KILLED")
        exc.run_id = direct.run_id
        raise
    except Exception as exc:
        exc.run_id = run.run_id  # for the one-line message that names the FAILED run
        run.set_tags(tag.failure("diverged" if isinstance(exc, Diverged) else type(exc).__name__, str(exc)))
        raise
    finally:
        if status not in ("LOST", "GONE"):
            run.finish(status)


def _record_stop(run: Run, trainer: pl.Trainer, callbacks: Sequence[pl.Callback], prefix: str) -> str:
    """Why a callback stopped the run before trainer.max_epochs (early stopping, a search's pruner), tagged with the
    last epoch it trained (from 0, as MLflow's steps); '' when it ran to the end."""
    reason = stop_reason(callbacks)
    if reason:
        run.set_tags({tag.STOPPED_EPOCH: str(trainer.current_epoch - 1), tag.STOPPED_REASON: reason[: tag.MAX_REASON]})
        log.info("%sstopped after epoch %d of %d: %s", prefix, trainer.current_epoch, trainer.max_epochs, reason)
    return reason


def _restore_best(run: Run, best: BestWeights, logger: EpochLogger, experiment: Experiment, prefix: str) -> dict:
    """A run with an early stopper ends as of its best epoch by the stopper's monitor: those weights back in the model
    (tested, saved as best.pt and logged as its model), and that epoch's train/* and val/* logged as best/*."""
    if best.epoch is None:
        return {}
    best.restore(experiment.task.model)
    values = {
        BEST + key: value
        for key, points in logger.history.items()
        if key.startswith(EPOCH_STAGES)
        for step, value in points
        if step == best.epoch
    }
    run.log_metrics(values, step=best.epoch)
    log.info("%sthe best epoch, %d (%s %.4f), is tested and logged", prefix, best.epoch + 1, best.monitor, best.best)
    return values


def _log_artifacts(run: Run, logger: EpochLogger, best: BestWeights, experiment: Experiment) -> None:
    """best.pt is written here; the figures are drawn by the run's backend (the recorder process), from numbers."""
    best.save_to(run)
    task = experiment.task
    matrix = (
        confusion(task, experiment.loaders["test"]) if getattr(task, "output", None) in ("softmax", "sigmoid") else None
    )
    run.log_figures({k: list(v) for k, v in logger.history.items()}, matrix)


def _log_model(run: Run, best: BestWeights, experiment: Experiment) -> None:
    """The best epoch's model as an MLflow model, with a few test inputs as its example and its own test metrics
    (model/test/*: test/* are the last epoch's). Sent pickled: the recorder writes it while this process goes on."""
    model = best.model(experiment.task.model)
    if model is None:
        return
    test = experiment.dataset.test
    metrics = experiment.task.evaluate(model, test.x, test.y)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    run.log_model(
        buffer.getvalue(),
        test.x[:5].numpy(),
        best.epoch,
        {f"model/test/{k}": v for k, v in metrics.items()},
        {"name": f"{experiment.dataset.name}/test", "digest": test.digest()},  # as in the run's inputs
    )


def _bar(plan: Plan, sweep: Sweep | None) -> list[pl.Callback]:
    """The step bar, as trainer.enable_progress_bar asks; by default on a terminal, outside a sweep (whose parallel
    jobs would draw over each other)."""
    shown = plan.trainer.progress_bar
    return [StepBar(sys.stderr)] if shown or (shown is None and sweep is None and sys.stderr.isatty()) else []


def _fit(trainer: pl.Trainer, experiment: Experiment, plan: Plan, last: str | Path | None) -> None:
    steps = 1 if trainer.world_size > 1 else plan.steps_per_call  # DDP syncs gradients once per Lightning step
    batches = Chunks(experiment.loaders["train"], steps, plan.trainer.limit_train_batches)
    val = Chunks(experiment.loaders["val"], steps, plan.trainer.limit_val_batches)
    trainer.fit(experiment.task, batches, val, ckpt_path=last, weights_only=True)


def _log_config(run: Run, plan: Plan, overrides: Sequence[str], experiment: Experiment, world_size: int) -> None:
    run.log_params(
        {
            **plan.params,
            "optimizer.batch_size": experiment.batch_size,  # null (full batch) as a number
            "optimizer.global_batch_size": experiment.batch_size * world_size,  # per process × DDP processes
        }
    )
    run.log_text(plan.config_yaml, "config.yaml")
    run.log_text(yaml.safe_dump(list(overrides)), "overrides.yaml")
    run.log_inputs(experiment.dataset.inputs(plan.data.params | {"name": plan.data.name}))


def _trainer(
    plan: Plan, logger: EpochLogger, callbacks: list[pl.Callback], checkpoint_io: MemoryCheckpointIO
) -> pl.Trainer:
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    options = plan.trainer.options
    plugins_given = options.pop("plugins", None) or []
    if isinstance(options.get("profiler"), str):
        options["profiler"] = _profiler(options["profiler"], plan.output_dir)
    try:
        return pl.Trainer(
            **options,
            plugins=[*(plugins_given if isinstance(plugins_given, list) else [plugins_given]), checkpoint_io],
            logger=logger,
            callbacks=callbacks,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=True,  # by dlkit's Snapshot alone: the last epoch in memory, no file per epoch
            num_sanity_val_steps=0,
            log_every_n_steps=1,  # only epoch-level metrics are logged; this just silences a warning
            default_root_dir=plan.output_dir,
        )
    except (
        MisconfigurationException,
        ValueError,
    ) as exc:  # a trainer value Lightning rejects: a user error, in one line
        raise ConfigError(f"trainer: {str(exc).strip().splitlines()[0]}") from None


PROFILERS = ("simple", "advanced", "pytorch")


def _profiler(name: str, output_dir: str) -> Any:
    """trainer.profiler=NAME as Lightning makes it, but writing its report to a file: Lightning would log it at
    INFO, which dlkit's console does not show. The files go to <output_dir>/profiles/<time>/ and into the run."""
    from pytorch_lightning import profilers

    if name not in PROFILERS:
        raise ConfigError(
            f"trainer.profiler={name!r} is not a Lightning profiler;{did_you_mean(name, PROFILERS)}"
            f" use one of {', '.join(PROFILERS)}."
        )
    folder = Path(output_dir) / "profiles" / time.strftime("%Y-%m-%d_%H-%M-%S")
    made = {"simple": profilers.SimpleProfiler, "advanced": profilers.AdvancedProfiler}.get(name)
    return (made or profilers.PyTorchProfiler)(dirpath=str(folder), filename="profile")


def _log_profile(run: Run, trainer: pl.Trainer, prefix: str) -> None:
    """A profiler's report files, into the run (artifacts profiler/) and named on the console."""
    folder = getattr(trainer.profiler, "dirpath", None)
    if not folder or not Path(folder).is_dir():
        return
    for path in sorted(Path(folder).iterdir()):
        run.log_artifact(path, "profiler")
    log.info("%sprofiler report: %s", prefix, folder)
