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

    def sweep(self, arguments):
        try:
            return super().sweep(arguments)
        except OSError as exc:  # Hydra makes each job's folder before it runs: one that cannot be made stops it
            import sys
            from pathlib import Path

            folder = Path(self.config.hydra.sweep.dir).absolute()
            if not exc.filename or not Path(exc.filename).absolute().is_relative_to(folder):
                raise  # not the sweep's folders: another fault, reported as it is
            print(
                f"dlkit: a job's folder {exc.filename} cannot be made ({exc.strerror}): the sweep stops; once it can"
                " be written, launch the same command again to run the jobs left",
                file=sys.stderr,
            )
            sys.exit(1)
