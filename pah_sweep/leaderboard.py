"""A finished sweep's parent run as a page a researcher reads first: its MLflow description
(``mlflow.note.content``, which the UI renders as markdown) holds the leaderboard of its trials,
ranked as the search ranked them, with links; the best trial's accuracy matrix; a legend; and the
search space, which is also logged as ``search_space.json``.

Everything is read back from MLflow (and the Optuna study), so the page says what the store says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pah_core.tracking import load_run_json, quote, ui_commands, ui_page

from .names import (
    OPTUNA_NUMBER_TAG,
    PAPER_DEFAULTS_TAG,
    STOPPED_WHY_TAG,
    TRIAL_NUMBER_TAG,
)
from .objectives import OBJECTIVES, Objective
from .record import mlflow_client
from .space import method_class

DESCRIPTION_TAG = "mlflow.note.content"
# MLflow cuts a tag's value at 8000 characters (mlflow.utils.validation.MAX_TAG_VAL_LENGTH): the
# leaderboard drops its lowest rows until the page fits, and says how many it left out.
MAX_DESCRIPTION = 8000
SPACE_FILE = "search_space.json"
LEADERBOARD_FILE = "leaderboard.json"


@dataclass
class Row:
    """One trial as its MLflow run holds it."""

    run_id: str
    name: str
    number: int | None
    trial_id: str
    score: float | None  # the sweep's first objective, as the search ranked on it
    acc: float | None  # test numbers, shown, never selected on
    forgetting: float | None
    cil_acc: float | None
    tasks: int
    status: str
    paper_defaults: bool
    best: bool = False
    pareto: bool = False


def status_of(run, n_run: int) -> str:
    """What became of a trial, in the words the leaderboard uses."""
    if run.info.status == "FAILED":
        return "failed"
    why = run.data.tags.get(STOPPED_WHY_TAG)
    if why:
        return why
    if run.info.status == "FINISHED" and int(run.data.metrics.get("tasks_done", 0)) >= n_run:
        return "finished"
    if run.data.tags.get("pah.interrupted"):
        return "interrupted"
    return run.info.status.lower()


def trial_rows(client, parent, objective: Objective, n_run: int, summary: dict) -> list[Row]:
    """The parent run's child runs as rows, best and Pareto set marked from ``summary``."""
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = {quote(parent.info.run_id)}",
        max_results=5000,
    )
    best = (summary.get("best") or {}).get("trial")
    pareto = {p["trial"] for p in summary.get("pareto") or []}
    rows = []
    for run in runs:
        m, tags = run.data.metrics, run.data.tags
        number = tags.get(TRIAL_NUMBER_TAG)
        trial_id = tags.get("ray_trial_id", "")
        rows.append(
            Row(
                run_id=run.info.run_id,
                name=run.info.run_name or run.info.run_id[:8],
                number=None if number is None else int(number),
                trial_id=trial_id,
                score=m.get(objective.mlflow_key),
                acc=m.get("avg_acc"),
                forgetting=m.get("forgetting"),
                cil_acc=m.get("cil_avg_acc"),
                tasks=int(m.get("tasks_done", 0)),
                status=status_of(run, n_run),
                paper_defaults=tags.get(PAPER_DEFAULTS_TAG) == "true",
                best=bool(best) and trial_id == best,
                pareto=trial_id in pareto,
            )
        )
    return rows


def ranked(rows: list[Row], mode: str) -> list[Row]:
    """Best score first (``mode``: the objective's direction); trials without one last, in
    start order."""
    sign = -1.0 if mode == "max" else 1.0

    def key(r: Row) -> tuple:
        missing = r.score is None or math.isnan(r.score)
        return (missing, 0.0 if missing else sign * r.score, r.number or 0, r.name)

    return sorted(rows, key=key)


def _pct(v: float | None) -> str:
    return "–" if v is None or math.isnan(v) else f"{100 * v:.1f}%"


def _marks(r: Row) -> str:
    marks = ["**best**"] if r.best else []
    marks += ["paper defaults"] if r.paper_defaults else []
    marks += ["Pareto"] if r.pareto and not r.best else []
    return ", ".join(marks)


def leaderboard_table(rows: list[Row], n_run: int, experiment_id: str) -> list[str]:
    """The leaderboard's markdown lines, in the order of ``rows``."""
    lines = [
        "| | trial | validation score | test acc. | forgetting | class-IL acc. | tasks | "
        "end | run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = f"**{r.name}**" if r.best else r.name
        link = f"[open]({ui_page(experiment_id, r.run_id)})"
        lines.append(
            f"| {_marks(r)} | {name} | {_pct(r.score)} | {_pct(r.acc)} | {_pct(r.forgetting)} | "
            f"{_pct(r.cil_acc)} | {r.tasks}/{n_run} | {r.status} | {link} |"
        )
    return lines


def matrix_table(matrix: list[list[float | None]], tasks: int) -> list[str]:
    """An accuracy matrix (row i: after training task i; column j: evaluated on task j) as
    markdown, cropped to the ``tasks`` tasks run, numbered from 1 as the paper does."""
    cols = range(tasks)
    lines = [
        "| after task \u2193 / on task \u2192 | " + " | ".join(str(j + 1) for j in cols) + " |",
        "|---|" + "---|" * tasks,
    ]
    for i, row in enumerate(matrix[:tasks]):
        cells = [
            "" if j >= len(row) or row[j] is None or math.isnan(row[j]) else f"{100 * row[j]:.0f}"
            for j in cols
        ]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return lines


def legend(objective: Objective, n_run: int, stopped: bool, name_keys: dict[str, str]) -> list[str]:
    keys = ", ".join(f"{label} = `{k}`" for k, label in name_keys.items())
    lines = [
        f"- **validation score**: `{objective.mlflow_key}` on each trial's run, the number the "
        f"search ranked trials on ({objective.label}): a trial's validation accuracy averaged "
        f"over all {n_run} tasks, counting the tasks it did not run as 0, so that a trial "
        "stopped early never ranks above one that finished. Test numbers are shown beside it, "
        "never selected on; a stopped trial's test numbers cover only the tasks it ran.",
        "- **trial names**: `#n` is the trial's number in start order (Optuna's trial number is "
        f"n - 1, tag `{OPTUNA_NUMBER_TAG}`), then Ray Tune's trial id (its folder is "
        "`trial_<id>`), then what differs from the paper's defaults: " + keys + "; `+k more`: k "
        "more searched settings differ (see the run's parameters).",
    ]
    if stopped:
        lines.append(
            "- **stopped by ASHA after task k**: the scheduler stopped a trial whose score at a task "
            "boundary was below its peers'; it is PRUNED in the Optuna study."
        )
    return lines


def space_table(space: dict[str, str], defaults: dict[str, str]) -> list[str]:
    lines = ["| setting | searched over | paper default |", "|---|---|---|"]
    lines += [f"| `{k}` | {v} | {defaults.get(k, '')} |" for k, v in sorted(space.items())]
    return lines


def describe_distribution(d) -> str:
    """An Optuna distribution in a few words: ``log-uniform 0.01 – 10``, ``one of 5, 10, 16``."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(d, CategoricalDistribution):
        return "one of " + ", ".join(str(c) for c in d.choices)
    kind = "integer" if isinstance(d, IntDistribution) else "real"
    scale = ", log scale" if getattr(d, "log", False) else ""
    return f"{kind} {d.low:g} – {d.high:g}{scale}"


def study_space(storage_url: str | None, study_name: str) -> dict[str, Any]:
    """The search space as the Optuna study sampled it: name -> distribution (empty without a
    study)."""
    if storage_url is None:
        return {}
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
    except KeyError:
        return {}
    space: dict[str, Any] = {}
    for t in study.trials:
        space.update(t.distributions)
    return space


def page(
    sweep: str,
    rows: list[Row],
    n_run: int,
    objective: Objective,
    experiment_id: str,
    matrix: list[list[float | None]] | None,
    space: dict[str, str],
    defaults: dict[str, str],
    name_keys: dict[str, str] | None = None,
) -> str:
    """The parent run's description, its leaderboard cut to the rows that fit MLflow's limit;
    ``name_keys``: the searched method's (PAH's by default)."""
    name_keys = method_class("pah").name_keys if name_keys is None else name_keys
    best = next((r for r in rows if r.best), None)
    for shown in range(len(rows), 0, -1):
        lines = [
            f"### {sweep}: {len(rows)} trials, ranked by validation score",
            "",
            *leaderboard_table(rows[:shown], n_run, experiment_id),
        ]
        if shown < len(rows):
            lines += ["", f"{len(rows) - shown} more in `{LEADERBOARD_FILE}` and the runs table."]
        if best is not None and matrix:
            lines += [
                "",
                f"#### Best trial {best.name}: test accuracy (%) per task",
                "",
                *matrix_table(matrix, best.tasks),
            ]
        stopped = any(r.status.startswith("stopped by ASHA") for r in rows)
        lines += ["", "#### Legend", "", *legend(objective, n_run, stopped, name_keys)]
        if space:
            lines += ["", f"#### Search space (`{SPACE_FILE}`)", "", *space_table(space, defaults)]
        text = "\n".join(lines) + "\n"
        if len(text) <= MAX_DESCRIPTION:
            return text
    return text[:MAX_DESCRIPTION]


def describe_sweep(
    mlflow_uri: str,
    parent_run_id: str,
    summary: dict[str, Any],
    optuna_url: str | None,
) -> dict[str, str]:
    """The parent run's description, leaderboard and search space; the UI links of the parent
    and of the best trial (``{"parent": url, "best": url}``, best only when there is one)."""
    client = mlflow_client(mlflow_uri)
    parent = client.get_run(parent_run_id)
    sweep = parent.data.tags.get("sweep", parent.info.run_name)
    objective = OBJECTIVES[summary["objectives"][0]]
    n_run = int(summary["n_run"])
    rows = ranked(trial_rows(client, parent, objective, n_run, summary), objective.mode)
    best = next((r for r in rows if r.best), None)
    matrix = None
    if best is not None:
        matrix = load_run_json(mlflow_uri, best.run_id, "acc_matrix.json")["acc_matrix"]
    distributions = study_space(optuna_url, sweep)
    space = {k: describe_distribution(d) for k, d in distributions.items()}
    if distributions:
        from optuna.distributions import distribution_to_json

        client.log_dict(
            parent_run_id,
            {k: distribution_to_json(d) for k, d in distributions.items()},
            SPACE_FILE,
        )
    defaults_run = next((r for r in rows if r.paper_defaults), None)
    defaults = {} if defaults_run is None else client.get_run(defaults_run.run_id).data.params
    exp_id = parent.info.experiment_id
    client.log_dict(parent_run_id, [vars(r) for r in rows], LEADERBOARD_FILE)
    name_keys = method_class(parent.data.tags.get("method", "pah")).name_keys
    text = page(sweep, rows, n_run, objective, exp_id, matrix, space, defaults, name_keys)
    client.set_tag(parent_run_id, DESCRIPTION_TAG, text)
    return sweep_links(mlflow_uri, exp_id, parent_run_id, None if best is None else best.run_id)


def sweep_links(
    mlflow_uri: str, experiment_id: str, parent_run_id: str, best_run_id: str | None
) -> dict[str, str]:
    """The UI links printed at a sweep's end: its parent run (the leaderboard) and its best
    trial's run (when there is one)."""
    links = {"parent": ui_commands(mlflow_uri, experiment_id, parent_run_id)[-1]}
    if best_run_id is not None:
        links["best"] = ui_commands(mlflow_uri, experiment_id, best_run_id)[-1]
    return links
