"""Hydra search-path plugin of dlkit (Hydra imports every module under hydra_plugins)."""
