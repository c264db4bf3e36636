"""Reporters receive the engine's events; a new destination is a new class, never a branch in the engine.

Events: run_start(config, param_counts, first_task), task_start(t, task), epoch_start(t, epoch,
n_batches), batch_end(t, epoch, stats), epoch_end(t, epoch, stats), task_end(event: ``TaskEnd``, the
one object a task boundary hands every reporter), run_end(results), run_failed(partial_results, error);
task_diagnostics(t, history, pictures) comes just before task_end (history: the diagnostics of
tasks 0..t; pictures: the method's tensors to show).
``batch_end``'s stats are empty except at the end of a logging interval (every ``LOG_EVERY``
batches), where they hold the interval's mean losses as floats.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TaskEnd:
    """A task boundary, as every reporter receives it: what the run measured after task ``t``."""

    t: int
    matrix: np.ndarray  # the test accuracy matrix, rows 0..t (NaN where not evaluated)
    metrics: dict[str, float]  # the engine's task metrics (avg_acc, forgetting, val_*, seconds...)
    checkpoint_dir: Path | None  # this boundary's checkpoint, when written
    correct: list[list[int]]  # the exact counts behind ``matrix``
    total: list[list[int]]
    n_run: int  # the tasks this run trains
    class_il_matrix: np.ndarray  # under the headline task-inference rule
    task_inference: str  # that rule
    untrained_accuracy: list[float] | None  # eval_future's reference of forward transfer
    val_matrix: list[list[float | None]] | None  # on the validation splits, where the run has them
    val_class_il_matrix: list[list[float | None]] | None

    @property
    def accuracy_row(self) -> list[float]:
        """Task t's row: every seen task's test accuracy after it."""
        return self.matrix[self.t, : self.t + 1].tolist()

    @property
    def last(self) -> bool:
        return self.t + 1 >= self.n_run


class RunStopped(BaseException):
    """A reporter's way to end a run that was stopped from outside (a scheduler such as ASHA): not
    a failure, so no reporter hears ``run_failed``; whoever stopped the run records why."""


class Reporter:
    """No-op base: subclasses override the events they care about."""

    def run_start(self, config: Any, param_counts: dict[str, int], first_task: int) -> None: ...
    def task_start(self, t: int, task: Any) -> None: ...
    def epoch_start(self, t: int, epoch: int, n_batches: int) -> None: ...
    def batch_end(self, t: int, epoch: int, stats: dict[str, float]) -> None: ...
    def epoch_end(self, t: int, epoch: int, stats: dict[str, float]) -> None: ...
    def task_diagnostics(
        self, t: int, history: list[dict[str, Any]], pictures: dict[str, Any]
    ) -> None: ...
    def task_end(self, e: TaskEnd) -> None: ...
    def run_end(self, results: dict[str, Any]) -> None: ...
    def run_failed(self, results: dict[str, Any], error: BaseException) -> None: ...


def _pct(v: float) -> str:
    return "  -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:5.1f}"


def format_matrix(matrix: np.ndarray) -> str:
    rows = ["after\\on " + " ".join(f"{j:>5d}" for j in range(matrix.shape[1]))]
    for i, row in enumerate(matrix):
        rows.append(f"task {i:>3d} " + " ".join(_pct(float(v)) for v in row[: matrix.shape[0]]))
    return "\n".join(rows)


class ConsoleReporter(Reporter):
    """A progress bar per task epoch, a line per task, and the accuracy matrix at the end."""

    def __init__(self, progress: bool = True, stream=sys.stderr):
        self.progress = progress and stream.isatty() if hasattr(stream, "isatty") else progress
        self.stream = stream
        self.bar = None
        self.n_tasks = 0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def run_start(self, config, param_counts, first_task):
        self.n_tasks = config.tasks_to_run
        pc = ", ".join(f"{k} {v:,}" for k, v in param_counts.items())
        start = f", resuming at task {first_task}" if first_task else ""
        self._print(
            f"[pah] {config.method.name} on {config.data.dataset}: {self.n_tasks} tasks{start}; params: {pc}"
        )

    def epoch_start(self, t, epoch, n_batches):
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=n_batches,
                desc=f"task {t + 1}/{self.n_tasks} epoch {epoch + 1}",
                leave=False,
                file=self.stream,
                dynamic_ncols=True,
            )

    def batch_end(self, t, epoch, stats):
        if self.bar is not None:
            self.bar.update(1)
            if "loss" in stats:  # a logging interval ended: the interval's mean loss
                self.bar.set_postfix(loss=f"{stats['loss']:.3f}", refresh=False)

    def epoch_end(self, t, epoch, stats):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        losses = " ".join(f"{k}={v:.4f}" for k, v in stats.items() if k.startswith("loss"))
        self._print(
            f"[pah] task {t + 1} epoch {epoch + 1}: {losses} ({stats['images_per_second']:.0f} img/s)"
        )

    def task_end(self, e: TaskEnd) -> None:
        row = " ".join(_pct(v) for v in e.accuracy_row)
        m = e.metrics
        self._print(
            f"[pah] after task {e.t + 1}: avg acc {_pct(m['avg_acc'])}%  forgetting "
            f"{_pct(m['forgetting'])}%  class-IL {_pct(m['cil_avg_acc'])}% "
            f"(task picked {_pct(m['task_inference_acc'])}%)  ({m['seconds']:.1f} s)  row: {row}"
        )

    def run_end(self, results):
        self._print(
            format_matrix(
                np.array(
                    [[np.nan if v is None else v for v in r] for r in results["accuracy_matrix"]]
                )
            )
        )
        self._print(
            f"[pah] done: avg acc {_pct(results['avg_acc'])}%, forgetting {_pct(results['forgetting'])}%, "
            f"BWT {_pct(results['bwt'])}%, {results['wall_seconds']:.1f} s"
        )
        rules = [k.split("/", 1)[1] for k in results if k.startswith("cil_avg_acc/")]
        if rules:  # without the task id: class among all seen classes, per task-inference rule
            per_rule = ", ".join(
                f"{r} {_pct(results[f'cil_avg_acc/{r}']).strip()}% "
                f"(task {_pct(results[f'task_inference_acc/{r}']).strip()}%)"
                for r in rules
            )
            self._print(f"[pah] class-IL (task-agnostic) avg acc: {per_rule}")
        if "forward_transfer" in results:
            self._print(f"[pah] forward transfer (GEM FWT): {_pct(results['forward_transfer'])}%")

    def run_failed(self, results, error):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._print(
            f"[pah] run failed after {results['tasks_completed']} task(s): {type(error).__name__}: {error}"
        )


class JSONReporter(Reporter):
    """Writes ``results.json`` after every task (status "running") and at the end, atomically."""

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir).resolve() / "results.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []

    def task_diagnostics(self, t, history, pictures):
        self.history = list(history)

    def _write(self, payload: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        os.replace(tmp, self.path)

    def task_end(self, e: TaskEnd) -> None:
        self._write(
            {
                "status": "running",
                "tasks_completed": e.t + 1,
                "accuracy_matrix": [
                    [None if math.isnan(v) else float(v) for v in r] for r in e.matrix
                ],
                **e.metrics,
                "diagnostics": self.history,
            }
        )

    def run_end(self, results):
        self._write(results)

    def run_failed(self, results, error):
        self._write({**results, "error": f"{type(error).__name__}: {error}"})
