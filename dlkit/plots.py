"""Matplotlib for files, not windows: the one place that picks the non-interactive backend."""

from __future__ import annotations


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and clusters; must come before pyplot is imported
    import matplotlib.pyplot as plt

    return plt
