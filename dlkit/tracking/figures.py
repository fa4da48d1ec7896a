"""A run's figures, drawn from plain numbers by the recorder process (no torch here): the learning
curves, and for class tasks the test confusion matrix as CSV and as a picture.

A sweep's runs draw the same figures again and again: each figure's layout (its axes, lines, labels, the matrix's
cells) is made once per process and its data replaced for the next run, which costs a third of drawing it anew
(about 0.1 s a figure here, most of a sweep job's recording)."""

from __future__ import annotations

import functools
from pathlib import Path

from dlkit.plots import pyplot

HIDDEN = {"lr", "epoch_seconds"}  # logged each epoch, not learning curves
STAGES = ("train", "val")


def draw(history: dict[str, list[tuple[int, float]]], confusion: list[list[int]] | None, folder: Path) -> list[Path]:
    files = [curves(history, folder / "learning_curves.png")]
    if confusion is not None:
        files += confusion_matrix(confusion, folder)
    return files


def curves(history: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    names = sorted({k.split("/", 1)[1] for k in history if k.startswith(tuple(f"{s}/" for s in STAGES))} - HIDDEN)
    fig, lines = _curves_layout(tuple(names))
    for (name, stage), line in lines.items():
        points = history.get(f"{stage}/{name}", [])
        line.set_data([s + 1 for s, _ in points], [v for _, v in points])
    for ax in fig.axes:
        ax.relim()
        ax.autoscale_view()
        shown = [line for line in ax.get_lines() if len(line.get_xdata())]
        ax.legend(shown, [line.get_label() for line in shown])
    fig.savefig(path, dpi=80)
    return path


@functools.cache
def _curves_layout(names: tuple[str, ...]):
    """One panel per metric, a line per stage; its data set by curves()."""
    fig = _figure(figsize=(4 * len(names), 3.2))
    lines = {}
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for stage in STAGES:
            (lines[name, stage],) = ax.plot([], [], label=stage)
        ax.set_xlabel("epoch")
        ax.set_title(name)
    # tight_layout costs 0.1 s a figure.
    fig.subplots_adjust(left=0.3 / max(1, len(names)), right=0.98, bottom=0.17, top=0.88, wspace=0.3)
    return fig, lines


def confusion_matrix(matrix: list[list[int]], folder: Path) -> list[Path]:
    """matrix[true][predicted]."""
    classes = len(matrix)
    csv = folder / "confusion_matrix.csv"
    csv.write_text(
        "true\\predicted,"
        + ",".join(map(str, range(classes)))
        + "\n"
        + "".join(f"{t}," + ",".join(map(str, row)) + "\n" for t, row in enumerate(matrix))
    )
    png = folder / "confusion_matrix.png"
    confusion_figure(matrix).savefig(png, dpi=80)
    return [csv, png]


def confusion_figure(matrix: list[list[int]]):
    """matrix[true][predicted] as a heat map with every class labelled and every count readable."""
    fig, image, cells = _confusion_layout(len(matrix))
    darkest = max((v for row in matrix for v in row), default=0)
    image.set_data(matrix)
    image.set_clim(0, max(darkest, 1))
    for (t, p), text in cells.items():  # white on dark cells, black on light ones
        text.set_text(str(matrix[t][p]))
        text.set_color("white" if matrix[t][p] > darkest / 2 else "black")
    return fig


@functools.cache
def _confusion_layout(classes: int):
    fig = _figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    image = ax.imshow([[0] * classes for _ in range(classes)], cmap="Blues")
    cells = {
        (t, p): ax.text(p, t, "", ha="center", va="center", fontsize=7) for t in range(classes) for p in range(classes)
    }
    ax.set_xticks(range(classes))  # every class (matplotlib would label every other one)
    ax.set_yticks(range(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("test confusion matrix")
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.13, top=0.9)
    return fig, image, cells


def _figure(figsize: tuple[float, float]):
    """A figure outside pyplot's registry of open figures (it is kept, not closed), drawn by Agg."""
    pyplot()  # the non-interactive backend
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig
