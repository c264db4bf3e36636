"""HPO protocols compared (issue #13): for each search whose selected configuration was re-run on
fresh seeds (``--final-seeds``), what it selected, on which validation score, what the selection
gives on test over the final seeds, and the compute the search spent; as in Lee, Hellan, Ericsson,
Crowley and Storkey, "Hyperparameter Selection in Continual Learning" (arXiv 2404.06466)."""

from __future__ import annotations

from .sensitivity import search_keys
from .store import Experiment, RunRecord, children
from .tables import DASH, Cell, Column, Table, provenance, stat


def _config_text(search: RunRecord | None, trial: RunRecord | None, keys: list[str]) -> str:
    """The selected settings: every searched key the search's parent run records (``best.*``
    tags), else ``keys`` from the selected trial's params."""
    if search is not None and any(k.startswith("best.") for k in search.tags):
        chosen = {k[5:]: v for k, v in sorted(search.tags.items()) if k.startswith("best.")}
    elif trial is not None:
        chosen = {k: trial.params[k] for k in keys if k in trial.params}
    else:
        return DASH
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in chosen.items()) or DASH


def protocol_table(exp: Experiment) -> Table | None:
    """One row per search with final runs; None when the experiment has none."""
    # A method comparison's final runs have their own tables (analysis/comparison.py).
    finals = {
        pid: p
        for pid, p in exp.sweeps.items()
        if p.tags.get("sweep_kind") == "final" and "comparison" not in p.tags
    }
    if not finals:
        return None
    t = Table(
        "hpo_protocols",
        "HPO protocols: the configuration each selected on validation data, and its test numbers "
        "over fresh seeds (%)",
        [
            Column("protocol", "Protocol"),
            Column("search", "Search"),
            Column("selected", "Selected configuration"),
            # Not ranked: protocols validate and test on different tasks (first_task on task 1,
            # first_k's final runs on the tasks after k), so a bold "best" would compare unlike.
            Column("val", "Val acc"),
            Column("acc", "Test acc"),
            Column("forgetting", "Test forg"),
            Column("n", "n"),
            Column("tasks", "Trial-tasks ↓", "min"),
            Column("seconds", "Trial time (s) ↓", "min"),
        ],
    )
    used: list[RunRecord] = []
    by_name = {p.sweep or p.name: pid for pid, p in exp.sweeps.items()}
    for fid, final in finals.items():
        runs = children(exp, [fid])
        used += runs
        t.add(_protocol_row(t, exp, final, runs, by_name))
    t.mark_best()
    t.provenance = provenance(exp, used)
    return t


def _protocol_row(
    t: Table,
    exp: Experiment,
    final: RunRecord,
    runs: list[RunRecord],
    by_name: dict[str, str],
) -> dict[str, Cell | str]:
    """One search's row: what it selected, on which validation score, its final runs' test
    numbers, and the compute the search spent."""
    search_name = final.tags.get("selected_from", "?")
    search = exp.sweeps.get(by_name.get(search_name, ""))
    trials = children(exp, [by_name[search_name]]) if search_name in by_name else []
    chosen = next(
        (r for r in trials if r.tags.get("ray_trial_id") == final.tags.get("selected_trial")),
        None,
    )
    val = final.tags.get("selected_val_avg_acc")
    acc = stat(t, runs, "final_avg_acc")
    acc.notes.append(
        t.note(
            f"{final.sweep or final.name}: trial {final.tags.get('selected_trial', '?')} of "
            f"{search_name}, selected on its {final.tags.get('selected_on', 'validation')} "
            "splits, re-run on fresh seeds"
        )
    )
    metric = (lambda k: None) if search is None else search.metric
    return {
        "protocol": final.tags.get("hpo_protocol", "?"),
        "search": search_name,
        "selected": _config_text(search, chosen, search_keys(search, trials)),
        "val": Cell(mean=100 * float(val)) if val else Cell(text=DASH),
        "acc": acc,
        "forgetting": stat(t, runs, "final_forgetting"),
        "n": Cell(text=str(len(runs)), run_ids=[r.run_id for r in runs]),
        "tasks": _number(metric("compute/trial_tasks"), "{:.0f}"),  # ranked: cost
        "seconds": _number(metric("compute/trial_seconds"), "{:.0f}"),
    }


def _number(v: float | None, fmt: str) -> Cell:
    return Cell(text=DASH) if v is None else Cell(mean=float(v), text=fmt.format(v))
