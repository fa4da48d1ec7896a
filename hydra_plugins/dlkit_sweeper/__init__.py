"""Hydra sweeper plugin of dlkit: hydra/sweeper=dlkit, the default (Hydra accepts sweepers from hydra_plugins only)."""
