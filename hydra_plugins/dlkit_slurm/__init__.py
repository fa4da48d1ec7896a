"""Hydra launcher plugin of dlkit: hydra/launcher=slurm (Hydra accepts launchers from hydra_plugins only)."""
