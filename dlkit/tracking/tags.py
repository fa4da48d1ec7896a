"""The names of the tags dlkit writes on MLflow runs: one place, so that writers and readers agree."""

from __future__ import annotations

MAX_REASON = 5000  # characters of an error message kept in a tag (MLflow allows 8,000 per value)

# Why a run did not finish.
FAILURE = "dlkit.failure"  # diverged, recording, or the exception's type
FAILURE_REASON = "dlkit.failure_reason"
KILLED_REASON = "dlkit.killed_reason"
WARNING = "dlkit.warning"  # chance_level: a finished run whose test metrics are no better than ignoring the input
WARNING_REASON = "dlkit.warning_reason"

# Sweeps: the parent run and its children.
PARENT = "mlflow.parentRunId"
SWEEP = "dlkit.sweep"  # "parent" on a sweep's parent run
SWEEP_PARENT = "parent"
SWEEP_ID = "dlkit.sweep_id"
SWEEP_KEY = (
    "dlkit.sweep_key"  # the hash of a sweep's experiment and overrides: the same sweep launched again has the same key
)
ATTEMPT = "dlkit.attempt"  # a run's opening, named by the process that asked for it: found again if its recorder dies
CONFIG_HASH = "dlkit.config_hash"  # a job's resolved config, hashed: how a relaunched sweep knows a job it already ran
FACTORS = "dlkit.factors"
JOBS = "dlkit.jobs"
FACTOR_PREFIX = "factor."
REPLICATES = {"seed"}  # swept keys that are a sweep's replicates (factor.seed): never a factor to compare
EARLY_FAILURE_PREFIX = "dlkit.failed_job."  # on the parent: a job that failed before its run existed
BEST_RUN_ID = "dlkit.best_run_id"
BEST_RUN_NAME = "dlkit.best_run_name"
SWEEPER = "dlkit.sweeper"  # the Hydra sweeper's class: BasicSweeper, OptunaSweeper
OBJECTIVE = "dlkit.objective"  # the metric an optimizing sweeper optimizes, and the parent's "best"
MAXIMIZE = "dlkit.maximize"  # "true" when the objective is maximized
STUDY = "dlkit.study"  # a study's name; its claim and how to decide it under dlkit.study.<key>

# A search (hydra/sweeper=optuna): each trial's run, and the study on the parent.
TRIAL_STATE = "dlkit.trial.state"  # COMPLETE, PRUNED or FAIL, as Optuna records the trial
TRIAL_NUMBER = "dlkit.trial.number"  # Optuna's number of the trial (from 0)
PRUNED_EPOCH = "dlkit.trial.pruned_epoch"  # the epoch (from 0) at which a pruned trial stopped
SEARCH_STUDY = "dlkit.search.study"  # on the parent: the study's name
SEARCH_STORAGE = "dlkit.search.storage"  # on the parent: where the study is stored

# Provenance.
VERSION = "dlkit.version"
GIT_COMMIT = "dlkit.git_commit"
GIT_DIRTY = "dlkit.git_dirty"
SWEEP_DIR = "dlkit.sweep_dir"
LAUNCHER = "dlkit.launcher"
COMMAND = "dlkit.command"
PLUGINS = "dlkit.plugins"
BEST_EPOCH = "dlkit.best_epoch"
MODEL_ID = "dlkit.model_id"  # the run's logged MLflow model: models:/<model_id>
MODEL_SKIPPED = "dlkit.model_skipped"  # why the run has no logged model, when it could not be logged
BEST_VAL_LOSS = "dlkit.best_val_loss"
STOPPED_EPOCH = "dlkit.stopped_epoch"  # a run a callback stopped before trainer.max_epochs: its last epoch (from 0)
STOPPED_REASON = "dlkit.stopped_reason"  # and why, as 'how: why' ('early stopping: val/loss did not ...')


def failure(kind: str, reason: str) -> dict[str, str]:
    """The tags of a run that failed: what kind of failure, and the message (cut to what a tag holds)."""
    return {FAILURE: kind, FAILURE_REASON: reason[:MAX_REASON]}


def trained(epochs: int, max_epochs: object, stopped: str) -> str:
    """How far a run trained, as tables show it (stopped: its STOPPED_REASON, or just how): '30 of 30 epochs',
    'early stopping at epoch 8', 'pruned at epoch 4'."""
    return f"{stopped.partition(':')[0]} at epoch {epochs}" if stopped else f"{epochs} of {max_epochs} epochs"


def plugin_label(name: str, origin: str) -> str:
    """How a plugin is named in the dlkit.plugins tag: 'swish (plugins/swish)'."""
    return f"{name} ({origin})"
