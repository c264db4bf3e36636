"""What a run has measured so far: the counts behind every accuracy matrix (task-IL, class-IL and
task inference per rule, the untrained model's), timings and diagnostics; carried between tasks,
saved in checkpoints, and turned into the metrics of results.json."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from pah_core import metrics


def listed(m: np.ndarray) -> list[list[float | None]]:
    """A matrix for JSON: floats, None where unknown."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in m]


# Fields added after checkpoint format 3 first shipped; older checkpoints resume with the default.
OPTIONAL_FIELDS = frozenset({"wall_seconds", "eval_seconds_per_task", "untrained_eval_seconds"})


@dataclass
class RunState:
    """What the engine carries between tasks (and saves in checkpoints)."""

    n_tasks: int
    next_task: int = 0
    correct: np.ndarray = field(default=None)  # type: ignore[assignment]
    total: np.ndarray = field(default=None)  # type: ignore[assignment]
    seconds_per_task: list[float] = field(default_factory=list)
    # Of each task's seconds, its boundary's evaluation (test and validation passes), and the
    # untrained model's evaluation before task 1 (eval_future): evaluation's share of a run.
    eval_seconds_per_task: list[float] = field(default_factory=list)
    untrained_eval_seconds: float = 0.0
    # Wall-clock seconds of the run up to its last task boundary, over every resumed segment: a
    # resumed run's wall_seconds is its total, not its last segment's.
    wall_seconds: float = 0.0
    train_images: int = 0
    train_seconds: float = 0.0
    # Per task: the method's diagnostics after it and its last epoch's mean losses.
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    # Task-agnostic counts per rule (rules x after x task): correct class among all seen classes,
    # and correct task picked. Totals are ``total``'s.
    rules: tuple[str, ...] = ()
    cil_correct: np.ndarray = field(default=None)  # type: ignore[assignment]
    task_correct: np.ndarray = field(default=None)  # type: ignore[assignment]
    # eval_future: the untrained model's counts on every task (the reference of forward transfer).
    init_correct: list[int] = field(default_factory=list)
    init_total: list[int] = field(default_factory=list)
    # Counts on the validation splits (all zero without data.val_fraction): task-IL, and class-IL
    # under schedule.task_inference's rule.
    val_correct: np.ndarray = field(default=None)  # type: ignore[assignment]
    val_total: np.ndarray = field(default=None)  # type: ignore[assignment]
    val_cil_correct: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.correct is None:
            self.correct = np.zeros((self.n_tasks, self.n_tasks), dtype=np.int64)
            self.total = np.zeros((self.n_tasks, self.n_tasks), dtype=np.int64)
        if self.val_correct is None:
            self.val_correct = np.zeros((self.n_tasks, self.n_tasks), dtype=np.int64)
            self.val_total = np.zeros((self.n_tasks, self.n_tasks), dtype=np.int64)
            self.val_cil_correct = np.zeros((self.n_tasks, self.n_tasks), dtype=np.int64)
        if self.cil_correct is None:
            shape = (len(self.rules), self.n_tasks, self.n_tasks)
            self.cil_correct = np.zeros(shape, dtype=np.int64)
            self.task_correct = np.zeros(shape, dtype=np.int64)

    def payload(self) -> dict[str, Any]:
        """Every field for a checkpoint: arrays as tensors, the rest as plain data (what a
        weights-only load accepts)."""
        import torch

        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = torch.from_numpy(v) if isinstance(v, np.ndarray) else v
        out["rules"] = list(self.rules)
        return out

    def restore(self, payload: dict[str, Any]) -> None:
        """The fields of ``payload`` (a checkpoint's), arrays back to numpy on the host."""
        for f in fields(self):
            if f.name in ("n_tasks", "rules"):
                continue  # the run's own: the stream and the evaluation rules in use
            if f.name not in payload and f.name in OPTIONAL_FIELDS:
                continue  # a checkpoint written before the field existed: its default
            v = payload[f.name]
            setattr(self, f.name, v.cpu().numpy() if hasattr(v, "cpu") else v)

    def class_il_matrix(self, rule: str) -> np.ndarray:
        """The class-incremental accuracy matrix under ``rule``: rows 0..next_task-1, seen tasks."""
        k, r = self.next_task, self.rules.index(rule)
        seen = np.tril(self.total[:k])  # tasks not yet seen have no class-IL entry
        return metrics.accuracy_matrix(self.cil_correct[r, :k], seen)

    def task_inference_matrix(self, rule: str) -> np.ndarray:
        k, r = self.next_task, self.rules.index(rule)
        return metrics.accuracy_matrix(self.task_correct[r, :k], np.tril(self.total[:k]))

    def matrix(self) -> np.ndarray:
        """Rows 0..next_task-1 of the accuracy matrix (fractions; NaN above the diagonal unless
        eval_future filled it)."""
        k = self.next_task
        return metrics.accuracy_matrix(self.correct[:k], self.total[:k])

    def val_matrix(self) -> np.ndarray:
        """The task-IL accuracy matrix on the validation splits, rows 0..next_task-1."""
        k = self.next_task
        return metrics.accuracy_matrix(self.val_correct[:k], self.val_total[:k])

    def val_class_il_matrix(self) -> np.ndarray:
        k = self.next_task
        return metrics.accuracy_matrix(self.val_cil_correct[:k], np.tril(self.val_total[:k]))

    def val_metrics(self) -> dict[str, float]:
        """Average accuracy and forgetting on the validation splits (what sweeps select on);
        empty without validation splits."""
        if not self.val_total[: self.next_task].any():
            return {}
        m = self.val_matrix()
        return {
            "val_avg_acc": metrics.average_accuracy(m),
            "val_forgetting": metrics.forgetting(m),
            "val_cil_avg_acc": metrics.average_accuracy(self.val_class_il_matrix()),
        }

    def untrained_accuracy(self) -> list[float]:
        """eval_future: each task's accuracy under the untrained model ([] without eval_future)."""
        return [c / n for c, n in zip(self.init_correct, self.init_total, strict=True)]

    def class_il_results(self) -> dict[str, dict[str, list]]:
        """Per rule: the class-IL and task-inference matrices and their counts, for results.json."""
        k = self.next_task
        return {
            rule: {
                "accuracy_matrix": listed(self.class_il_matrix(rule)),
                "task_inference_matrix": listed(self.task_inference_matrix(rule)),
                "cil_correct": self.cil_correct[r, :k].tolist(),
                "task_correct": self.task_correct[r, :k].tolist(),
            }
            for r, rule in enumerate(self.rules)
        }

    def task_agnostic_metrics(self, headline: str) -> dict[str, float]:
        """After the last trained task: class-IL average accuracy and forgetting under the
        ``headline`` rule, and per rule the class-IL average accuracy and the task-inference accuracy
        (mean over seen tasks of how often the right task was picked)."""
        s = self
        out: dict[str, float] = {}
        for rule in s.rules:
            cil = s.class_il_matrix(rule)
            out[f"cil_avg_acc/{rule}"] = metrics.average_accuracy(cil)
            out[f"task_inference_acc/{rule}"] = metrics.average_accuracy(
                s.task_inference_matrix(rule)
            )
            if rule == headline:
                out["cil_avg_acc"] = out[f"cil_avg_acc/{rule}"]
                out["cil_forgetting"] = metrics.forgetting(cil)
                out["task_inference_acc"] = out[f"task_inference_acc/{rule}"]
        return out
