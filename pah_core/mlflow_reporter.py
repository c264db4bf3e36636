"""MLflow reporter: one run per training run, found again by its key when a run resumes.

MLflow is imported only when this reporter is built, so the core stays importable without it. It
uses ``MlflowClient`` with explicit run ids (no global active run), which keeps concurrent trials in
one process from writing into each other's runs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pah_core import metrics
from pah_core.reporters import Reporter, TaskEnd
from pah_core.tracking import (
    EXPERIMENT_KIND_TAG,
    check_tracking_uri,
    default_artifact_location,
    quote,
)

RUN_KEY_TAG = "pah.run_key"


def git_sha(path: str | os.PathLike | None = None) -> str:
    """The checkout's commit (with "-dirty" when its code has changes), or "unknown" outside git.
    A study writes its export and tables under docs/ while it runs: those are its outputs, not
    changes to the code that made them."""
    cwd = Path(path or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ":(top)",
                ":(top,exclude)docs",
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def get_or_create_experiment(client, name: str, artifact_location: str | None = None) -> str:
    """The experiment's id, created (tagged as a model-training experiment) if it does not exist."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = artifact_location or default_artifact_location(client.tracking_uri)
    try:
        exp_id = client.create_experiment(
            name, artifact_location=artifact_location, tags=dict([EXPERIMENT_KIND_TAG])
        )
    except Exception:  # noqa: BLE001 - another process created it first
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id
    return exp_id


def mlflow_name(key: str) -> str:
    """A task metric's MLflow name: validation numbers under ``val/`` (``val/avg_acc``), apart from
    the test numbers, which keep their plain names (``avg_acc``, ``forgetting``, ...)."""
    return f"val/{key[4:]}" if key.startswith("val_") else key


def find_run(client, experiment_id: str, key: str):
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = {quote(key)}", max_results=2
    )
    return runs[0] if runs else None


TABLE_FILE = "acc_matrix_table.json"


class MLflowReporter(Reporter):
    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_name: str,
        run_key: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        artifact_location: str | None = None,
        extra_metrics: Callable[[TaskEnd], dict[str, float]] | None = None,
    ):
        """``extra_metrics(event)``: more metrics to log at each task boundary with the task's own
        (a sweep's objectives, which the core does not know)."""
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=check_tracking_uri(tracking_uri))
        self.experiment_id = get_or_create_experiment(self.client, experiment, artifact_location)
        self.run_name = run_name
        self.run_key = run_key or run_name
        self.parent_run_id = parent_run_id
        self.tags = dict(tags or {})
        self.extra_metrics = extra_metrics
        self.run_id: str | None = None
        self.n_tasks = 0
        # Tasks whose metrics this MLflow run already holds. A run resumed from an older checkpoint
        # than its last logged task (killed between the MLflow logging and the checkpoint upload)
        # replays that task: its metrics are not logged a second time.
        self.logged_tasks: set[int] = set()

    def run_start(self, config, param_counts, first_task):
        existing = find_run(self.client, self.experiment_id, self.run_key)
        if existing is not None:
            self.run_id = existing.info.run_id  # a resumed run continues its own MLflow run
            self.client.update_run(self.run_id, status="RUNNING")
            history = self.client.get_metric_history(self.run_id, "tasks_done")
            self.logged_tasks = {int(m.step) for m in history}
        else:
            tags = {
                RUN_KEY_TAG: self.run_key,
                "mlflow.runName": self.run_name,
                "method": config.method.name,
                "dataset": config.data.dataset,
                **self.tags,
            }
            if self.parent_run_id:
                tags["mlflow.parentRunId"] = self.parent_run_id
            self.run_id = self.client.create_run(
                self.experiment_id, run_name=self.run_name, tags=tags
            ).info.run_id
            from mlflow.entities import Param

            params = [Param(k, str(v)[:6000]) for k, v in config.flat().items()]
            for i in range(0, len(params), 100):
                self.client.log_batch(self.run_id, params=params[i : i + 100])
            for k, v in param_counts.items():
                self.client.log_metric(self.run_id, f"params_{k}", float(v))
        self.n_tasks = config.tasks_to_run

    def task_diagnostics(self, t, history, pictures):
        from mlflow.entities import Metric

        from pah_core import figures

        if t not in self.logged_tasks:  # a replayed task's metrics are in already
            now = int(time.time() * 1000)
            latest = history[-1]
            batch = [
                Metric(f"diag/{k}/task_{j:02d}", float(v), now, t)
                for k, values in latest.items()
                if isinstance(values, list)
                for j, v in enumerate(values)
            ]
            batch += [Metric(f"diag/{k}", float(v), now, t) for k, v in latest["losses"].items()]
            for i in range(0, len(batch), 900):
                self.client.log_batch(self.run_id, metrics=batch[i : i + 900])
        self.client.log_dict(self.run_id, {"diagnostics": history}, "diagnostics.json")
        import matplotlib.pyplot as plt

        if "head_drift" in history[-1]:
            fig = figures.drift_figure(history, "head_drift")
            self.client.log_figure(self.run_id, fig, "head_drift.png")
            plt.close(fig)
        if "prototypes_learned" in pictures:
            initial = pictures["prototypes_initial"].numpy()
            grid = figures.prototype_grid(
                initial,
                pictures["prototypes_learned"].numpy(),
                t + 1,
                pictures["mean"],
                pictures["std"],
            )
            _, classes, _, size, _ = initial.shape
            fig = figures.labelled_prototypes(grid, t + 1, classes, size)
            self.client.log_figure(self.run_id, fig, "prototypes.png")
            plt.close(fig)

    def task_end(self, e: TaskEnd) -> None:
        # Everything is logged at the task boundary, before the Ray report that follows it: a
        # scheduler may stop the trial right after that report, and run_end would never come.
        from mlflow.entities import Metric

        t, now = e.t, int(time.time() * 1000)
        if t not in self.logged_tasks:
            batch = [
                Metric(f"acc/task_{j:02d}", float(a), now, t) for j, a in enumerate(e.accuracy_row)
            ]
            batch += [
                Metric(mlflow_name(k), float(v), now, t)
                for k, v in e.metrics.items()
                if k != "task"
            ]
            if self.extra_metrics is not None:
                batch += [Metric(k, float(v), now, t) for k, v in self.extra_metrics(e).items()]
            batch.append(Metric("tasks_done", float(t + 1), now, t))  # last: marks t as logged
            self.client.log_batch(self.run_id, metrics=batch)
            self.logged_tasks.add(t)
        self._log_matrix(e)
        if e.last:
            final = metrics.final_metrics(e.matrix, e.metrics, e.untrained_accuracy)
            for k, name in metrics.VAL_FINAL.items():  # the selection split's
                if k in e.metrics:
                    final[name] = e.metrics[k]
            now = int(time.time() * 1000)
            self.client.log_batch(
                self.run_id, metrics=[Metric(k, float(v), now, t) for k, v in final.items()]
            )
            self.client.set_terminated(self.run_id, status="FINISHED")

    def _log_matrix(self, e: TaskEnd) -> None:
        matrix, t = e.matrix, e.t
        listed = [[None if math.isnan(v) else float(v) for v in row] for row in matrix]
        self.client.log_dict(
            self.run_id,
            {
                "acc_matrix": listed,
                "correct": e.correct,
                "total": e.total,
                "tasks_done": t + 1,
                "n_tasks": e.n_run,
                # eval_future: the untrained model's accuracy per task (forward transfer's b).
                "untrained_accuracy": e.untrained_accuracy,
                # The validation splits' matrix (data.val_fraction > 0), what sweeps select on.
                "val_acc_matrix": e.val_matrix,
            },
            "acc_matrix.json",
        )
        # The long table, rewritten whole from the matrix each task: MLflow's log_table appends to
        # an existing artifact, so a replayed task would add its row twice. Same file format as
        # log_table (pandas "split" JSON), and the tag that makes the UI show it as a table.
        rows = [[i, j, float(matrix[i, j])] for i in range(t + 1) for j in range(i + 1)]
        self.client.log_dict(
            self.run_id,
            {"columns": ["train_task", "eval_task", "acc"], "data": rows},
            TABLE_FILE,
        )
        if t == 0:
            self.client.set_tag(
                self.run_id,
                "mlflow.loggedArtifacts",
                json.dumps([{"path": TABLE_FILE, "type": "table"}]),
            )
        import matplotlib.pyplot as plt

        from pah_core import figures

        n_run = e.n_run
        fig = figures.accuracy_heatmap(matrix, n_run, "task-IL accuracy (%), test")
        self.client.log_figure(self.run_id, fig, "acc_matrix.png")
        plt.close(fig)
        fig = figures.forgetting_curves(matrix, n_run)
        self.client.log_figure(self.run_id, fig, "forgetting_curves.png")
        plt.close(fig)
        # The task-agnostic (class-incremental) matrix beside it, under the headline rule.
        cil = e.class_il_matrix
        self.client.log_dict(
            self.run_id,
            {
                "acc_matrix": [[None if math.isnan(v) else float(v) for v in r] for r in cil],
                "task_inference": e.task_inference,
                "tasks_done": t + 1,
            },
            "cil_acc_matrix.json",
        )
        title = f"class-IL accuracy (%), test\ntask inferred by {e.task_inference}"
        fig = figures.accuracy_heatmap(cil, n_run, title)
        self.client.log_figure(self.run_id, fig, "cil_acc_matrix.png")
        plt.close(fig)

    def run_end(self, results):
        extra = {"wall_seconds": results["wall_seconds"]}
        if results.get("train_images_per_second"):
            extra["train_images_per_second"] = results["train_images_per_second"]
        if results.get("untrained_eval_seconds"):  # eval_future's pass before task 1
            extra["untrained_eval_seconds"] = results["untrained_eval_seconds"]
        for k, v in extra.items():
            self.client.log_metric(self.run_id, k, float(v))
        self.client.set_terminated(self.run_id, status="FINISHED")

    def run_failed(self, results, error):
        if self.run_id is None:
            return
        self.client.set_tag(self.run_id, "error", f"{type(error).__name__}: {error}"[:5000])
        self.client.log_text(
            self.run_id, json.dumps(results, indent=2, default=str), "results_partial.json"
        )
        self.client.set_terminated(self.run_id, status="FAILED")
