"""Lightning's Trainer arguments as dlkit treats them: each keeps Lightning's documented meaning, counted in optimizer
steps and batches as a user counts them, or is refused before training with why and what to use instead.

dlkit trains several batches per Lightning step (`steps_per_call`) and steps the optimizer itself, so an argument
that counts Lightning's steps or batches would silently mean something else; dlkit sets some arguments itself (its
logger, callbacks, checkpoints); and some have nothing to act on (its data is held in memory, it runs no predict loop).
The documentation's table of Trainer arguments (docs/options/trainer.md) is this module's, and
tests/test_trainer_args.py holds both to it.
"""

from __future__ import annotations

# Set by dlkit itself; a config that set them would silently fight dlkit.
OWN = (
    "logger",
    "callbacks",
    "enable_progress_bar",
    "enable_model_summary",
    "enable_checkpointing",
    "default_root_dir",
)

# Applied by dlkit instead of Lightning, with Lightning's meaning: the task clips (it steps the optimizer), data.Chunks
# limits the batches (counted in batches, whatever steps_per_call is). (max_steps goes to Lightning, and the task stops
# stepping at it within a call: exact too.)
APPLIED = ("gradient_clip_val", "gradient_clip_algorithm", "limit_train_batches", "limit_val_batches")

# Refused, each with why and what to use instead.
REFUSED = {
    "fast_dev_run": "it counts Lightning's steps, of steps_per_call batches each, and turns the logger off; use"
    " dlkit check (one batch forward and backward), or trainer.max_epochs=1 trainer.limit_train_batches=N"
    " trainer.limit_val_batches=N trainer.limit_test_batches=N",
    "min_steps": "Lightning checks it between its steps, of steps_per_call optimizer steps each, so it would not be"
    " met exactly; use trainer.min_epochs",
    "overfit_batches": "it counts Lightning's batches, of steps_per_call batches each; to overfit a few batches use"
    " data.limit=N (N samples a split) or trainer.limit_train_batches=N",
    "val_check_interval": "dlkit validates at each epoch's end (a run's metrics are per epoch); use"
    " trainer.check_val_every_n_epoch=N",
    "num_sanity_val_steps": "dlkit runs no sanity check: dlkit check runs the model forward and backward before any"
    " training",
    "log_every_n_steps": "dlkit logs every epoch (an MLflow step is an epoch)",
    "accumulate_grad_batches": "dlkit steps the optimizer itself, once per batch; use a larger optimizer.batch_size",
    "limit_predict_batches": "dlkit runs no predict loop",
    "use_distributed_sampler": "dlkit shards its in-memory data itself under DDP",
    "reload_dataloaders_every_n_epochs": "dlkit's data is held in memory: there is nothing to reload",
    "barebones": "it turns off the logger and callbacks dlkit records a run with; use tracking=none",
    "enable_autolog_hparams": "dlkit logs the whole resolved config itself (MLflow params and config.yaml)",
    "model_registry": "dlkit logs each run's model to MLflow (register it from there)",
}


def refusal(key: str, value: object, default: object) -> str | None:
    """Why trainer.<key>=value is refused, with what to use instead; None when dlkit accepts it (a refused argument
    at Lightning's default, or null, changes nothing and is accepted)."""
    if key in OWN:
        return f"trainer.{key} is set by dlkit itself and cannot be configured."
    if key in REFUSED and value is not None and value != default:
        return f"trainer.{key} is not supported: {REFUSED[key]}."
    return None
