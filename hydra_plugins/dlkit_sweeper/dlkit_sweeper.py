"""hydra/sweeper=dlkit, dlkit's default: Hydra's basic sweeper, composing the jobs once per choice of config group
options instead of twice per job (dlkit.internals.ComposedOnce). Every launcher runs the configs it composes.
Hydra imports this module whenever it scans for plugins: it imports nothing Hydra has not imported already."""

from hydra.types import HydraContext

from dlkit.internals import ComposedOnce, basic_sweeper


class DlkitSweeper(basic_sweeper()):
    def setup(self, *, hydra_context, task_function, config):
        # The launcher is set up here too, with the same context: the sweeper's check of each batch and the
        # launcher's jobs share the compositions.
        composing_once = HydraContext(
            config_loader=ComposedOnce(hydra_context.config_loader), callbacks=hydra_context.callbacks
        )
        super().setup(hydra_context=composing_once, task_function=task_function, config=config)
