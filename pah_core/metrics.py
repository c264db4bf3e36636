"""Continual-learning metrics: the one definition of each, as pure functions of an accuracy matrix.

``A[i][j]`` is the test accuracy on task j after training task i (a fraction in [0, 1]); entries with
j > i are unknown (NaN). Every other module calls these functions; none re-implements them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

Matrix = Sequence[Sequence[float]] | np.ndarray


class MetricError(ValueError):
    """An input no metric can be computed from; the message says what is wrong with it."""


def as_matrix(a: Matrix) -> np.ndarray:
    """A validated accuracy matrix: 2-D, at least one row, rows <= columns, every known cell a
    finite fraction in [0, 1] (NaN marks an unknown cell)."""
    m = np.asarray(a, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] > m.shape[1]:
        raise MetricError(
            f"an accuracy matrix is (tasks trained) x (tasks) with rows <= columns, got {m.shape}"
        )
    if m.shape[0] == 0:
        raise MetricError("the accuracy matrix has no rows: no task was trained yet")
    if np.isinf(m).any():
        raise MetricError(
            f"the accuracy matrix has infinite cells at {np.argwhere(np.isinf(m)).tolist()}"
        )
    known = m[~np.isnan(m)]
    if known.size and (known.min() < 0 or known.max() > 1):
        raise MetricError(
            f"accuracies are fractions in [0, 1], got values from {known.min()} to {known.max()} "
            "(percentages? divide by 100)"
        )
    return m


def _row(m: np.ndarray, after: int | None) -> int:
    """The row ``after`` names (default: the last), refusing what Python indexing would wrap."""
    if after is None:
        return m.shape[0] - 1
    if not 0 <= after < m.shape[0]:
        raise MetricError(
            f"after = {after} is out of range: the matrix has rows 0..{m.shape[0] - 1}"
        )
    return after


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
    i = _row(m, after)
    return float(np.mean(m[i, : i + 1]))


def forgetting(a: Matrix, after: int | None = None) -> float:
    """Chaudhry et al. forgetting after task i: mean over j < i of max_{l in j..i-1} A[l][j] - A[i][j].

    The task just trained (j = i) is excluded; 0.0 after the first task.
    """
    m = as_matrix(a)
    i = _row(m, after)
    if i == 0:
        return 0.0
    drops = [np.max(m[j:i, j]) - m[i, j] for j in range(i)]
    return float(np.mean(drops))


def bwt(a: Matrix, after: int | None = None) -> float:
    """Backward transfer (Lopez-Paz & Ranzato): mean over j < i of A[i][j] - A[j][j]; 0.0 after task 0."""
    m = as_matrix(a)
    i = _row(m, after)
    if i == 0:
        return 0.0
    return float(np.mean([m[i, j] - m[j, j] for j in range(i)]))


def official_code_bwt(a: Matrix, after: int | None = None) -> float:
    """The official PAH code's "BWT": mean over j < i of A[i][j] - A[i-1][j] (only the last step's change)."""
    m = as_matrix(a)
    i = _row(m, after)
    if i == 0:
        return 0.0
    return float(np.mean([m[i, j] - m[i - 1, j] for j in range(i)]))


def forward_transfer(full: Matrix, random_init: Sequence[float]) -> float:
    """Forward transfer (Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory", section 4):
    FWT = 1/(T-1) * sum_{i=1}^{T-1} (R[i-1][i] - b[i]), with R the T x T matrix (row i: after
    training task i; its superdiagonal R[i-1][i] is task i's accuracy before it was trained,
    ``schedule.eval_future``) and b[i] the accuracy on task i of the model at its random
    initialisation. How much learning the earlier tasks helps a task before it is trained; 0.0 for
    a single task."""
    r = as_matrix(full)
    b = np.asarray(random_init, dtype=np.float64)
    t = r.shape[1]
    if r.shape[0] != t:
        raise MetricError(f"forward transfer needs the full T x T matrix, got {r.shape}")
    if b.shape != (t,) or not np.isfinite(b).all() or b.min() < 0 or b.max() > 1:
        raise MetricError(f"random_init must be {t} accuracies in [0, 1], got {b.tolist()}")
    above = [r[i - 1, i] for i in range(1, t)]
    if any(np.isnan(v) for v in above):
        raise MetricError("the matrix has no entries above the diagonal: run with eval_future")
    return float(np.mean([r[i - 1, i] - b[i] for i in range(1, t)])) if t > 1 else 0.0


def intransigence(a: Matrix, reference: Sequence[float], after: int | None = None) -> float:
    """Intransigence (Chaudhry et al. 2018, "Riemannian Walk", section 4): the mean over tasks
    k <= i of I_k = a*_k - A[k][k], with a*_k the accuracy on task k of a reference model trained
    on tasks 0..k jointly (its A[k][k], e.g. the ``joint`` method's matrix diagonal). How much the
    method's way of protecting old tasks keeps it from learning new ones."""
    m = as_matrix(a)
    i = _row(m, after)
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 1 or ref.shape[0] < i + 1:
        raise MetricError(f"reference must hold at least {i + 1} accuracies, got {ref.tolist()}")
    if not np.isfinite(ref[: i + 1]).all() or ref.min() < 0 or ref.max() > 1:
        raise MetricError(f"reference accuracies must be fractions in [0, 1], got {ref.tolist()}")
    return float(np.mean([ref[k] - m[k, k] for k in range(i + 1)]))


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


def forward_transfer_if_measured(a: Matrix, untrained: Sequence[float] | None) -> float | None:
    """Forward transfer where the run measured it: it trained the whole stream (a square matrix,
    complete on and below the diagonal), evaluated each task before training it (the
    superdiagonal, ``schedule.eval_future`` with either ``eval_future_tasks``) and its untrained
    model."""
    m = as_matrix(a)
    if not untrained or m.shape[0] != m.shape[1]:
        return None
    if np.isnan(m[np.tril_indices_from(m)]).any() or np.isnan(np.diag(m, 1)).any():
        return None
    return forward_transfer(m, untrained)


def final_metrics(
    a: Matrix, run_metrics: Mapping[str, float], untrained: Sequence[float] | None = None
) -> dict[str, float]:
    """A finished run's final numbers under the names MLflow logs and the tables read: the one
    producer of every ``final_*`` metric. The matrix's summary, the task-agnostic numbers in
    ``run_metrics`` (the engine's task metrics: the headline rule's and every rule's), and
    forward transfer where the run has it (``forward_transfer_if_measured``)."""
    s = summary(a)
    out = {
        "final_avg_acc": s["avg_acc"],
        "final_forgetting": s["forgetting"],
        "final_bwt": s["bwt"],
        "final_official_code_bwt": s["official_code_bwt"],
        "final_cil_avg_acc": run_metrics.get("cil_avg_acc"),
        "final_cil_forgetting": run_metrics.get("cil_forgetting"),
        "final_task_inference_acc": run_metrics.get("task_inference_acc"),
        "final_forward_transfer": forward_transfer_if_measured(a, untrained),
    }
    for k, v in run_metrics.items():  # per rule: final_cil_avg_acc/min_entropy, ...
        if k.startswith(("cil_avg_acc/", "task_inference_acc/")):
            out[f"final_{k}"] = v
    return {k: float(v) for k, v in out.items() if v is not None}


# The validation splits' final numbers (what a search selected on), as MLflow logs them.
VAL_FINAL = {
    "val_avg_acc": "val/final_avg_acc",
    "val_forgetting": "val/final_forgetting",
    "val_cil_avg_acc": "val/final_cil_avg_acc",
}


# The fewest finished (COMPLETE) trials of a search whose parameter importances are drawn or
# reported. PED-ANOVA (Optuna's default evaluator and optuna-dashboard's) compares the top 10% of
# trials with the rest, and Optuna's docs want several trials in that top group: below 20 trials
# it is one trial, and the importances of 10 searched settings are noise that reads as a finding.
MIN_TRIALS_FOR_IMPORTANCE = 20
# The fewest finished trials whose rank correlation with a setting a report shows: below 10, a
# Spearman rho's 95% interval spans most of [-1, 1] (at n = 5, a rho of 0.9 is not significant).
MIN_TRIALS_FOR_SENSITIVITY = 10


def pareto_front(points: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """The non-dominated points of (id, average accuracy up, forgetting down), best accuracy first:
    no other point is at least as good in both and better in one."""
    front = [
        p
        for p in points
        if not any(q[1] >= p[1] and q[2] <= p[2] and (q[1] > p[1] or q[2] < p[2]) for q in points)
    ]
    return sorted(front, key=lambda p: -p[1])
