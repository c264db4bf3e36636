"""Continual-learning metrics: the one definition of each, as pure functions of an accuracy matrix.

``A[i][j]`` is the test accuracy on task j after training task i (a fraction in [0, 1]); entries with
j > i are unknown (NaN). Every other module calls these functions; none re-implements them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Matrix = Sequence[Sequence[float]] | np.ndarray


def as_matrix(a: Matrix) -> np.ndarray:
    m = np.asarray(a, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] > m.shape[1]:
        raise ValueError(
            f"an accuracy matrix is (tasks trained) x (tasks) with rows <= columns, got {m.shape}"
        )
    return m


def accuracy_matrix(correct: Matrix, total: Matrix) -> np.ndarray:
    """A[i][j] = correct[i][j] / total[i][j] from exact counts; NaN where nothing was evaluated."""
    c = np.asarray(correct, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    out = np.full(c.shape, np.nan)
    np.divide(c, n, out=out, where=n > 0)
    return out


def average_accuracy(a: Matrix, after: int | None = None) -> float:
    """Mean accuracy over tasks 0..i after training task i (default: the last row)."""
    m = as_matrix(a)
    i = m.shape[0] - 1 if after is None else after
    return float(np.mean(m[i, : i + 1]))


def forgetting(a: Matrix, after: int | None = None) -> float:
    """Chaudhry et al. forgetting after task i: mean over j < i of max_{l in j..i-1} A[l][j] - A[i][j].

    The task just trained (j = i) is excluded; 0.0 after the first task.
    """
    m = as_matrix(a)
    i = m.shape[0] - 1 if after is None else after
    if i == 0:
        return 0.0
    drops = [np.max(m[j:i, j]) - m[i, j] for j in range(i)]
    return float(np.mean(drops))


def bwt(a: Matrix, after: int | None = None) -> float:
    """Backward transfer (Lopez-Paz & Ranzato): mean over j < i of A[i][j] - A[j][j]; 0.0 after task 0."""
    m = as_matrix(a)
    i = m.shape[0] - 1 if after is None else after
    if i == 0:
        return 0.0
    return float(np.mean([m[i, j] - m[j, j] for j in range(i)]))


def official_code_bwt(a: Matrix, after: int | None = None) -> float:
    """The official PAH code's "BWT": mean over j < i of A[i][j] - A[i-1][j] (only the last step's change)."""
    m = as_matrix(a)
    i = m.shape[0] - 1 if after is None else after
    if i == 0:
        return 0.0
    return float(np.mean([m[i, j] - m[i - 1, j] for j in range(i)]))


def running(metric, a: Matrix) -> list[float]:
    """``metric`` after each trained task: [metric(A, after=0), ..., metric(A, after=i)]."""
    m = as_matrix(a)
    return [metric(m, after=i) for i in range(m.shape[0])]


def summary(a: Matrix) -> dict[str, float | list[float]]:
    """Everything the reporters log about a matrix, computed from the functions above."""
    m = as_matrix(a)
    out: dict[str, float | list[float]] = {
        "avg_acc": average_accuracy(m),
        "forgetting": forgetting(m),
        "bwt": bwt(m),
        "official_code_bwt": official_code_bwt(m),
        "avg_acc_curve": running(average_accuracy, m),
        "forgetting_curve": running(forgetting, m),
    }
    for k, v in out.items():
        if isinstance(v, float) and math.isnan(v):
            raise ValueError(f"{k} is NaN: the matrix has a missing entry on or below the diagonal")
    return out
