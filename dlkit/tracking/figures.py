"""A run's figures, drawn from plain numbers by the recorder process (no torch here): the learning
curves, and for class tasks the test confusion matrix as CSV and as a picture."""

from __future__ import annotations

from pathlib import Path

from dlkit.plots import pyplot


def draw(history: dict[str, list[tuple[int, float]]], confusion: list[list[int]] | None, folder: Path) -> list[Path]:
    files = [curves(history, folder / "learning_curves.png")]
    if confusion is not None:
        files += confusion_matrix(confusion, folder)
    return files


def curves(history: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    plt = pyplot()

    names = sorted({k.split("/", 1)[1] for k in history if k.startswith(("train/", "val/"))} - {"lr", "epoch_seconds"})
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for stage in ("train", "val"):
            points = history.get(f"{stage}/{name}", [])
            if points:
                ax.plot([s + 1 for s, _ in points], [v for _, v in points], label=stage)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    # tight_layout costs 0.1 s a figure.
    fig.subplots_adjust(left=0.3 / len(names), right=0.98, bottom=0.17, top=0.88, wspace=0.3)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


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
    fig = confusion_figure(matrix)
    png = folder / "confusion_matrix.png"
    fig.savefig(png, dpi=80)
    pyplot().close(fig)
    return [csv, png]


def confusion_figure(matrix: list[list[int]]):
    """matrix[true][predicted] as a heat map with every class labelled and every count readable."""
    classes = len(matrix)
    fig, ax = pyplot().subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    darkest = max((v for row in matrix for v in row), default=0)
    for t in range(classes):
        for p in range(classes):  # white on dark cells, black on light ones
            color = "white" if matrix[t][p] > darkest / 2 else "black"
            ax.text(p, t, matrix[t][p], ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(classes))  # every class (matplotlib would label every other one)
    ax.set_yticks(range(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("test confusion matrix")
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.13, top=0.9)
    return fig
