"""hydra/launcher=slurm: Hydra's submitit SLURM launcher, its jobs submitted and watched by dlkit/slurm.py.
Hydra imports this module whenever it scans for plugins: it imports nothing more than Hydra's own plugin does."""

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


class DlkitSlurmLauncher(SlurmLauncher):
    def launch(self, job_overrides, initial_job_idx):
        from dlkit.slurm import launch

        return launch(self, job_overrides, initial_job_idx)
