"""Every use of a Hydra or Lightning API that is not public, in one place.

Each is used because the public way costs what dlkit exists to avoid (named below), and each is pinned by a
test in tests/test_internals.py: a Hydra or Lightning release that changes one fails that test by name,
instead of breaking a run somewhere else without a clear error.
"""

from __future__ import annotations

import copy
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


def split_overrides(overrides: list[str], parsed: list[Any], groups: set[str]) -> tuple[tuple[str, ...], list[Any]]:
    """A job's overrides in Hydra's two stages of composition: the ones that choose config group options
    (`model=lenet5`, `+study=x`, `hydra/launcher=...`) or change Hydra's own settings, as text (what picks the YAML
    files), and the parsed ones that set values (`seed=1`, `+a.b=2`, `~c`), applied after composing.
    parsed: Hydra's parse of overrides; groups: the names of the top-level config groups."""
    values = [
        p
        for p in parsed
        if p.package is None
        and not p.is_hydra_override()
        and "/" not in p.key_or_group
        and p.key_or_group not in groups
    ]
    choices = tuple(o for o, p in zip(overrides, parsed) if all(p is not v for v in values))
    return choices, values


def basic_sweeper() -> type:
    """Hydra's basic sweeper class (the cartesian product of the swept values, run in batches); dlkit's sweeper is
    that sweeper with a config loader that composes less. Hydra exports it from no public module."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper


class ComposeOnce:
    """A sweep's jobs composed once per choice of config group options: the one compose cache of dlkit (the check
    before launch, dlkit's sweeper and a search's workers).

    Hydra composes in two stages: group choices pick the YAML files, then the other overrides are applied to the
    result. Jobs of a sweep often differ in the second stage only (seed=0,1,2,...): each composition costs about
    0.1-0.14 s, each application of values a few milliseconds. compose_choices(choices) composes the first stage
    (Hydra's compose API, or its config loader); a job is a copy of it with its own values applied."""

    def __init__(self, compose_choices: Any, groups: set[str]):
        self.compose_choices, self.groups = compose_choices, groups
        self.composed: dict[tuple[str, ...], Any] = {}

    def __call__(self, overrides: list[str], parsed: list[Any]) -> tuple[Any, list[Any]]:
        """The job's config and its value overrides (parsed: Hydra's parse of overrides)."""
        choices, values = split_overrides(list(overrides), parsed, self.groups)
        if choices not in self.composed:
            self.composed[choices] = self.compose_choices(list(choices))
        cfg = copy.deepcopy(self.composed[choices])
        if values:
            apply_value_overrides(values, cfg)
        return cfg, values


class ComposedOnce:
    """A Hydra config loader that composes a sweep's jobs through ComposeOnce.

    Hydra composes every job twice, from its YAML files (the sweeper checks the whole batch first, then the
    launcher composes each job again to run it), about 0.14 s each time; the jobs of a sweep over seeds or values
    all pick the same files. Here the first job of each choice is composed by Hydra, and the others are copies of
    it with their own values applied, their task overrides and override_dirname set as Hydra sets them.
    tests/test_internals.py compares every job of a mixed sweep with Hydra's own composition."""

    def __init__(self, loader: Any):
        self.loader = loader
        self.master: Any = None
        self.once = ComposeOnce(
            lambda choices: self.loader.load_sweep_config(self.master, choices), set(loader.list_groups(""))
        )

    def __getattr__(self, name: str) -> Any:  # the rest of the ConfigLoader interface is Hydra's
        if name.startswith("__") or name in ("loader", "once", "master"):  # pickling looks these up before init
            raise AttributeError(name)
        return getattr(self.loader, name)

    def load_sweep_config(self, master_config: Any, sweep_overrides: list[str]) -> Any:
        from hydra._internal.config_loader_impl import get_overrides_dirname
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import open_dict

        self.master = master_config
        parsed = OverridesParser.create().parse_overrides(list(sweep_overrides))
        cfg, values = self.once(list(sweep_overrides), parsed)
        if not values:
            return cfg
        task = [p for p in parsed if not p.is_hydra_override()]
        job = cfg.hydra.job.config.override_dirname
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.task = [p.input_line for p in task]
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=task, kv_sep=job.kv_sep, item_sep=job.item_sep, exclude_keys=job.exclude_keys
            )
        return cfg
