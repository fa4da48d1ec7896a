"""Every use of a Hydra or Lightning API that is not public, in one place.

Each is used because the public way costs what dlkit exists to avoid (named below), and each is pinned by a
test in tests/test_internals.py: a Hydra or Lightning release that changes one fails that test by name,
instead of breaking a run somewhere else without a clear error.
"""

from __future__ import annotations

from typing import Any


def count_optimizer_step(trainer: Any) -> None:
    """Count an optimizer step that the task made by calling PyTorch's optimizer directly, as Lightning counts
    its own (trainer.global_step, max_steps). The public way, LightningOptimizer.step, adds hooks dlkit does
    not use: about 0.1 ms a step, as much as a small model's step itself."""
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    progress.increment_ready()
    progress.increment_completed()


def hydra_args_parser():
    """Hydra's own command-line parser (-m, --cfg, --help, ...): dlkit reads the flags as Hydra will, before
    Hydra runs, to check every job of a sweep first and to print its own --help. No public API exposes it."""
    from hydra._internal.utils import get_args_parser

    return get_args_parser()


def apply_value_overrides(overrides: list[Any], cfg: Any) -> None:
    """Apply parsed overrides that set values (not group choices) to a composed config, in place, exactly as
    Hydra's second stage of composition does. The public way, composing each job of a sweep anew, costs about
    0.1 s a job; jobs that pick the same group options share one composition and differ by these overrides."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    ConfigLoaderImpl._apply_overrides_to_config(overrides, cfg)
