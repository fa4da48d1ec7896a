"""hydra/sweeper=optuna: dlkit's hyperparameter search (dlkit/search.py). The sweeper creates the study and launches its
workers through the configured launcher; each worker (the job function, dlkit/cli.py) asks the study for trials until
n_trials are done. Hydra imports this module whenever it scans for plugins: Optuna is imported only in sweep()."""

from __future__ import annotations

import os
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper

WORKER_KEYS = ("study_name", "storage")  # what each worker is told of the study: its name and where it lives


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from omegaconf import OmegaConf

        from dlkit import config, environment, progress, search, sweep

        settings = search.Settings.read(OmegaConf.to_container(self.config.hydra.sweeper, resolve=True))
        space = config.search_space(arguments, self.settings.get("params"))
        experiment = OmegaConf.select(self.config, "tracking.experiment", default="dlkit")  # tracking=none has none
        name = settings.study_name or f"{experiment}-{sweep.sweep_key(experiment, arguments)}"
        url = search.storage_url(settings.storage, self.config.paths.output_dir)
        study = search.create(settings, space, name, url)
        trials = space.trials(settings)
        sweep.note_search(name, url, trials)
        workers = min(settings.n_workers or self._launcher_workers(), trials)
        done = search.progress(study)
        print(
            f"Study '{name}' in {url}: {done.done} of {trials} trials done;"
            f" {workers} worker{'s' if workers > 1 else ''}"
        )
        searched = [d.name for d in space.dimensions]
        progress.start(self.config.hydra.sweep.dir, trials - done.done, searched, str(self.config.objective), "trials")
        told = [f"hydra.sweeper.study_name={name}", f"hydra.sweeper.storage='{url}'"]
        os.environ[environment.SWEEP_SIZE] = str(workers)  # the jobs launched are the workers: "[job 1/2]"
        returns = self.launcher.launch([[*space.fixed, *told]] * workers, initial_job_idx=0)
        for worker in returns:
            worker.return_value  # noqa: B018  (a worker that raised raises here, as Hydra's basic sweeper does)
        search.print_best(study)
        return [returns]

    def _launcher_workers(self) -> int:
        """How many jobs the launcher runs at once: the parallel launcher's n_jobs (-1: every core), else 1
        (the basic launcher runs its jobs one after another, in this process)."""
        launcher = self.config.hydra.launcher
        target = str(launcher.get("_target_", ""))
        if "joblib" in target.lower():
            n_jobs = int(launcher.get("n_jobs") or -1)
            return n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)
        if "slurm" in target.lower():
            return 4
        return 1
