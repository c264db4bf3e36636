"""Pictures of a run, as pure functions of its numbers: the prototype grid (an image array) and
the drift figure (a matplotlib figure). Reporters log them; the analysis draws the same drift
figure from a run's diagnostics."""

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
