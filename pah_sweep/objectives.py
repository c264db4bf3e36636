"""What a sweep optimises: each objective's names (Tune, MLflow, Optuna) and direction, and its
value at a task boundary, computed so that trials stopped early rank fairly."""

from __future__ import annotations

from dataclasses import dataclass

from pah_core.reporters import TaskEnd


@dataclass(frozen=True)
class Objective:
    metric: str  # the name reported to Tune
    mode: str  # "max" or "min"
    summary_key: str  # the trial's final value on the validation splits, in the sweep summary
    test_key: str  # the same on the test splits (shown, never selected on)
    mlflow_key: str  # the name on every trial's MLflow run, at each task boundary
    label: str  # the name Optuna (set_metric_names), the pictures and the leaderboard show


# What a search can optimise (--objectives): task-IL accuracy, forgetting, class-IL accuracy (the
# task id taken away; schedule.task_inference's rule); always on the validation splits.
OBJECTIVES = {
    "acc": Objective(
        "objective_acc",
        "max",
        "val_avg_acc",
        "avg_acc",
        "objective/val_acc",
        "val. accuracy (unrun tasks = 0)",
    ),
    "forgetting": Objective(
        "objective_forgetting",
        "min",
        "val_forgetting",
        "forgetting",
        "objective/val_forgetting",
        "val. forgetting (1 until the end)",
    ),
    "cil_acc": Objective(
        "objective_cil_acc",
        "max",
        "val_cil_avg_acc",
        "cil_avg_acc",
        "objective/val_cil_acc",
        "val. class-IL accuracy (unrun tasks = 0)",
    ),
}
OBJECTIVE_CHOICES = ("acc", "acc,forgetting", "cil_acc", "acc,cil_acc")


def objective_metrics(
    accuracy_row: list[float],
    forgetting: float,
    cil_row: list[float],
    tasks_done: int,
    n_run: int,
) -> dict[str, float]:
    """Objectives that rank trials fairly whether or not ASHA stopped them.

    ``objective_acc`` averages accuracy over all ``n_run`` tasks, counting tasks not trained yet as 0:
    it equals the final average accuracy at the end, and a trial stopped early can never look better
    than one that finished; ``objective_cil_acc`` is the same for the class-IL row.
    ``objective_forgetting`` is the forgetting at the end and 1.0 (the worst) before it, for the
    same reason.
    """
    return {
        "objective_acc": float(sum(accuracy_row)) / n_run,
        "objective_forgetting": float(forgetting) if tasks_done >= n_run else 1.0,
        "objective_cil_acc": float(sum(cil_row)) / n_run,
    }


def selection_numbers(e: TaskEnd) -> tuple[list[float], float, list[float]]:
    """The task-IL accuracy row, the forgetting and the class-IL row that objectives are computed
    from: the validation splits' when the run has them, else the test splits'."""
    t = e.t
    if e.val_matrix is not None:
        return (
            e.val_matrix[t][: t + 1],
            e.metrics["val_forgetting"],
            e.val_class_il_matrix[t][: t + 1],
        )
    return e.accuracy_row, e.metrics["forgetting"], e.class_il_matrix[t, : t + 1].tolist()


def trial_objectives(e: TaskEnd) -> dict[str, float]:
    """``objective_metrics`` after task ``e.t``, from the numbers a sweep selects on
    (``selection_numbers``)."""
    return objective_metrics(*selection_numbers(e), e.t + 1, e.n_run)


def mlflow_objectives(e: TaskEnd) -> dict[str, float]:
    """The objectives under their MLflow names, for a trial's run: the number the search ranks
    trials on, so that sorting the runs table by it is the search's own ranking. Only for runs
    with validation splits: a grid without them selects nothing."""
    if e.val_matrix is None:
        return {}
    values = trial_objectives(e)
    return {o.mlflow_key: values[o.metric] for o in OBJECTIVES.values()}
