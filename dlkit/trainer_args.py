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
    "enable_model_summary",
    "enable_checkpointing",
    "default_root_dir",
)

# Applied by dlkit instead of Lightning, with Lightning's meaning: the task clips and accumulates gradients (it steps
# the optimizer), dlkit's bar counts optimizer steps (callbacks.StepBar), data.Chunks limits the batches (counted in
# batches, whatever steps_per_call is). (max_steps and min_steps go to Lightning, and the task stops stepping at them
# within a call: exact too.)
APPLIED = (
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "limit_train_batches",
    "limit_val_batches",
    "accumulate_grad_batches",
    "overfit_batches",
    "fast_dev_run",
    "enable_progress_bar",
)

# Lightning's debugging arguments, as the arguments dlkit applies exactly (translate).
TRANSLATED = {
    "fast_dev_run": "N (true: 1) batches of training, validation and test in one epoch, with nothing recorded",
    "overfit_batches": "the first N (or a fraction of) training batches, unshuffled, and as many validation batches",
}

# Refused, each with why and what to use instead.
REFUSED = {
    "val_check_interval": "dlkit validates at each epoch's end (a run's metrics are per epoch); use"
    " trainer.check_val_every_n_epoch=N",
    "num_sanity_val_steps": "dlkit runs no sanity check: dlkit check runs the model forward and backward before any"
    " training",
    "log_every_n_steps": "dlkit logs every epoch (an MLflow step is an epoch)",
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


def translate(options: dict) -> dict:
    """Lightning's debugging arguments as the ones they stand for, in batches and optimizer steps as dlkit counts
    them (Lightning would count its own steps, of steps_per_call batches each): what Lightning's own setup does."""
    options = dict(options)
    overfit = options.pop("overfit_batches", 0) or 0
    runs = int(options.pop("fast_dev_run", 0) or 0)  # true: 1
    if overfit:
        options |= {"limit_train_batches": overfit, "limit_val_batches": overfit, "shuffle": False}
    if runs:
        options |= {"max_epochs": 1, "max_steps": runs, "limit_test_batches": runs, "check_val_every_n_epoch": 1}
        if not overfit:
            options |= {"limit_train_batches": runs, "limit_val_batches": runs}
    return options
