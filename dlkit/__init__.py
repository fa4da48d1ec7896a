"""dlkit: deep-learning experiments from configuration.

import dlkit
result = dlkit.run(["model=lenet5", "seed=1"])   # same config and overrides as the command line
result.metrics["test/acc"], result.run_id
"""

from __future__ import annotations

from collections.abc import Sequence


def __getattr__(name: str):
    if name == "__version__":  # one place, pyproject.toml; read when asked (importlib.metadata costs 25 ms to import)
        from importlib.metadata import version

        return version("dlkit")
    raise AttributeError(f"module 'dlkit' has no attribute '{name}'")


def plan_for(overrides: Sequence[str] = (), plugins: bool = True):
    """The checked Plan of the job `dlkit <overrides>` would run (a ConfigError names what is wrong)."""
    from dlkit import config
    from dlkit import plugins as plugin_loader
    from dlkit.plan import Plan

    plugin_loader.reset(None if plugins else False)
    plugin_loader.load_all()
    if config.needs_registered_options(overrides):  # activation=softplus: a plugin's component without a YAML option
        config.store_registered_options()
    return Plan.from_config(config.compose(overrides))


def run(overrides: Sequence[str] = (), plugins: bool = True):
    """Plan the job for `overrides` exactly as `dlkit <overrides>` would, check its folder and store as the command
    does before training, train it, and return a Result."""
    from dlkit import folders
    from dlkit.tracking import store
    from dlkit.train import train

    plan = plan_for(overrides, plugins)
    if plan.tracking.enabled:
        store.check_reachable(plan.tracking.uri)
    folders.check_writable(plan.output_dir)
    return train(plan, overrides=list(overrides))
