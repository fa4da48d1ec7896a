"""dlkit: deep-learning experiments from configuration.

    import dlkit
    result = dlkit.run(["model=lenet5", "seed=1"])   # same config and overrides as the command line
    result.metrics["test/acc"], result.run_id
"""
from __future__ import annotations

from collections.abc import Sequence

__version__ = "0.1.0"


def run(overrides: Sequence[str] = (), plugins: bool = True):
    """Compose the config for `overrides` exactly as `dlkit <overrides>` would, train, and return a Result."""
    from dlkit import config
    from dlkit import plugins as plugin_loader

    plugin_loader.reset(None if plugins else False)
    cfg = config.compose(overrides)
    from dlkit.train import train

    return train(cfg, overrides=list(overrides))
