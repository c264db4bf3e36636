"""Pictures of a run, as pure functions of its numbers: the accuracy heatmap, the forgetting
curves, the prototype grid (an image array, and the same pixels with labels around them) and the
drift figure. Reporters log them; the analysis draws the same heatmap and drift figure from a
run's records.

Tasks are numbered from 1 in every picture, as the paper and the text write them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SCALE = 4  # screen pixels per prototype pixel (nearest neighbour: the learned pixels as they are)
GAP = 2  # background pixels between prototypes


def to_display(p: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A prototype (ch, s, s) in the normalised input space -> RGB uint8 (s, s, 3).

    RGB prototypes undo each channel's normalisation. Grayscale ones are the mean of the normalised
    channels (the official init), so they undo the mean normalisation: exact when every channel has
    the same mean and std (CIFAR's official 0.5/0.5), an approximation otherwise."""
    p = np.asarray(p, dtype=np.float64)
    m, s = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if p.shape[0] == 3:
        rgb = p * s[:, None, None] + m[:, None, None]
    else:
        rgb = np.repeat(p[:1] * s.mean() + m.mean(), 3, axis=0)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8).transpose(1, 2, 0)


def prototype_grid(
    initial: np.ndarray,
    learned: np.ndarray,
    tasks: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> np.ndarray:
    """RGB uint8 image: one row per task 0..tasks-1, its C prototypes as initialised (left panel)
    and as learned (right panel), each prototype pixel SCALE x SCALE, on a white background."""
    initial, learned = np.asarray(initial)[:tasks], np.asarray(learned)[:tasks]
    _, c, _, s, _ = initial.shape
    cell = s * SCALE + GAP
    panel_w = c * cell + GAP
    height, width = tasks * cell + GAP, 2 * panel_w + 4 * GAP
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    for panel, protos in enumerate((initial, learned)):
        x0 = panel * (panel_w + 4 * GAP)
        for t in range(tasks):
            for k in range(c):
                tile = to_display(protos[t, k], mean, std).repeat(SCALE, 0).repeat(SCALE, 1)
                y, x = GAP + t * cell, x0 + GAP + k * cell
                img[y : y + s * SCALE, x : x + s * SCALE] = tile
    return img


def cell_origin(t: int, k: int, panel: int, classes: int, size: int) -> tuple[int, int]:
    """Top-left pixel of prototype (task t, class k) in ``prototype_grid``'s image."""
    cell = size * SCALE + GAP
    panel_w = classes * cell + GAP
    return GAP + t * cell, panel * (panel_w + 4 * GAP) + GAP + k * cell


def drift_figure(history: Sequence[dict[str, Any]], key: str = "head_drift", title: str = ""):
    """One line per task j: ``key``'s value for task j after each later task (x: tasks trained).
    ``history`` is a run's diagnostics, one entry per trained task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    n = len(history)
    for j in range(n):
        xs = [i + 1 for i in range(j, n) if j < len(history[i].get(key, []))]
        ys = [history[i][key][j] for i in range(j, n) if j < len(history[i].get(key, []))]
        if xs:
            ax.plot(xs, ys, marker="o", markersize=3, label=f"task {j + 1}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("tasks trained")
    ax.set_ylabel(key.replace("_", " ") + " (relative)")
    ax.set_title(title or f"{key.replace('_', ' ')} per task")
    ax.grid(alpha=0.3)
    if n:
        ax.legend(fontsize=7, ncol=2 if n > 5 else 1)
    fig.tight_layout()
    return fig


def pyplot():
    """matplotlib's pyplot on the file-only backend (no display on a cluster node or in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _task_ticks(axis, n: int) -> None:
    """Ticks 1..n at positions 0..n-1 (an image's columns or rows are tasks 1..n)."""
    axis.set_ticks(range(n))
    axis.set_ticklabels([str(i + 1) for i in range(n)])


def accuracy_heatmap(matrix: np.ndarray, tasks: int | None = None, title: str = "accuracy (%)"):
    """The accuracy matrix (row i: after training task i; column j: evaluated on task j) as a
    heatmap of the ``tasks`` tasks the run trains (its rows so far x ``tasks`` columns; all
    columns when None), each known cell's percentage written in it."""
    plt = pyplot()
    m = np.asarray(matrix, dtype=np.float64)
    tasks = m.shape[1] if tasks is None else tasks
    m = m[:tasks, :tasks]
    rows, cols = m.shape
    fig, ax = plt.subplots(figsize=(max(3.6, 1.4 + 0.55 * cols), max(2.4, 1.2 + 0.5 * rows)))
    im = ax.imshow(np.ma.masked_invalid(100 * m), vmin=0, vmax=100, cmap="viridis")
    for i in range(rows):
        for j in range(cols):
            if not np.isnan(m[i, j]):
                # Dark text on viridis' light (high) end, light text on its dark end.
                color = "black" if m[i, j] > 0.6 else "white"
                ax.text(
                    j, i, f"{100 * m[i, j]:.0f}", ha="center", va="center", fontsize=7, color=color
                )
    _task_ticks(ax.xaxis, cols)
    _task_ticks(ax.yaxis, rows)
    ax.set_xlabel("evaluated on task")
    ax.set_ylabel("after training task")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def forgetting_curves(
    matrix: np.ndarray, tasks: int, title: str = "forgetting: each task's accuracy (%)"
):
    """One line per task j: its accuracy after each task trained from j on (x: tasks trained,
    1..``tasks``): a line that falls is that task being forgotten."""
    plt = pyplot()
    m = np.asarray(matrix, dtype=np.float64)
    done = min(m.shape[0], tasks)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for j in range(done):
        xs = [i + 1 for i in range(j, done) if not np.isnan(m[i, j])]
        ys = [100 * m[i, j] for i in range(j, done) if not np.isnan(m[i, j])]
        ax.plot(xs, ys, marker="o", markersize=3, label=f"task {j + 1}")
    ax.set_xticks(range(1, tasks + 1))
    ax.set_xlim(0.7, tasks + 0.3)
    ax.set_ylim(0, 100)
    ax.set_xlabel("tasks trained")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if done > 5 else 1, loc="lower left")
    fig.tight_layout()
    return fig


# Margins (screen pixels) around the prototype grid's pixels in its labelled figure: task labels
# on the left, panel titles above.
LABEL_LEFT, LABEL_TOP, LABEL_RIGHT, LABEL_BOTTOM = 56, 26, 8, 8
LABEL_DPI = 100


def labelled_prototypes(grid: np.ndarray, tasks: int, classes: int, size: int):
    """``prototype_grid``'s image with its labels: each row's task, each panel's meaning. The
    grid's pixels are placed unresampled (``figimage``) at ``(LABEL_LEFT, LABEL_TOP)`` from the top
    left, so the saved picture holds the prototypes exactly as learned."""
    plt = pyplot()
    h, w = grid.shape[:2]
    width, height = LABEL_LEFT + w + LABEL_RIGHT, LABEL_TOP + h + LABEL_BOTTOM
    fig = plt.figure(figsize=(width / LABEL_DPI, height / LABEL_DPI), dpi=LABEL_DPI)
    fig.figimage(grid, xo=LABEL_LEFT, yo=LABEL_BOTTOM, origin="upper")
    cell = size * SCALE + GAP
    panel_w = classes * cell + GAP
    for panel, words in enumerate(("as initialised", f"as learned (after task {tasks})")):
        x = LABEL_LEFT + panel * (panel_w + 4 * GAP) + panel_w / 2
        fig.text(
            x / width, 1 - (LABEL_TOP / 2) / height, words, ha="center", va="center", fontsize=9
        )
    for t in range(tasks):
        y = LABEL_TOP + GAP + t * cell + size * SCALE / 2
        fig.text(
            (LABEL_LEFT - 6) / width,
            1 - y / height,
            f"task {t + 1}",
            ha="right",
            va="center",
            fontsize=8,
        )
    return fig
