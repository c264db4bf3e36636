"""Search sweeps: per searched parameter its range, Spearman rho with the final metrics and Optuna's
fANOVA importance, and the table of trials behind it."""

from __future__ import annotations

import warnings

import pandas as pd

from pah_core.methods import param_label, searched_keys
from pah_core.metrics import MIN_TRIALS_FOR_IMPORTANCE, MIN_TRIALS_FOR_SENSITIVITY
from pah_core.tracking import sqlite_path

from .store import Experiment, RunRecord
from .tables import NA, Cell, Column, Table, provenance, stat

# A search trial's final numbers on the validation splits (pah_core.mlflow_reporter's names).
VAL_ACC, VAL_FORG = "val/final_avg_acc", "val/final_forgetting"


def search_keys(sweep: RunRecord | None, trials: list[RunRecord]) -> list[str]:
    """The keys a search sweep tuned, in its method's order: its method's search space (the
    parent's ``method`` tag; searches made before it existed tuned PAH), those its trials record."""
    method = sweep.tags.get("method", "pah") if sweep is not None else "pah"
    return [k for k in searched_keys(method) if any(k in r.params for r in trials)]


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rho (ties ranked by their average); None below 3 points or without variation."""
    if len(x) < 3:
        return None
    with warnings.catch_warnings():  # scipy warns about a constant input, which gives NaN
        warnings.simplefilter("ignore")
        rho = pd.Series(x, dtype=float).corr(pd.Series(y, dtype=float), method="spearman")
    return None if pd.isna(rho) else float(rho)


def _num(v: str | None) -> float | None:
    try:
        return None if v is None else float(v)
    except ValueError:
        return None


def selection_keys(trials: list[RunRecord]) -> tuple[str, str, str]:
    """The final-accuracy and final-forgetting metrics a search's trials are compared on: the
    validation splits' when they have them (what the search selected on), else the test
    numbers (searches made before validation existed); and the split's name."""
    if any(r.metric(VAL_ACC) is not None for r in trials):
        return VAL_ACC, VAL_FORG, "validation"
    return "final_avg_acc", "final_forgetting", "test"


def sensitivity_tables(
    exp: Experiment,
    sweep_label: str,
    trials: list[RunRecord],
    importances: dict[str, float] | None,
    importance_note: str,
    keys: list[str],
) -> tuple[Table, Table]:
    """Per-parameter summary (range, Spearman rho with the final metrics, Optuna importance) and the
    per-trial table behind it, on the validation splits' numbers (what the search selected on),
    or on the test numbers for searches made before validation existed (the title says which)."""
    summary = summary_table(exp, sweep_label, trials, importances, importance_note, keys)
    return summary, trials_table(exp, sweep_label, trials, keys)


def summary_table(
    exp: Experiment,
    sweep_label: str,
    trials: list[RunRecord],
    importances: dict[str, float] | None,
    importance_note: str,
    keys: list[str],
) -> Table:
    acc_key, forg_key, split = selection_keys(trials)
    done = [r for r in trials if r.metric(acc_key) is not None]
    summary = Table(
        f"sensitivity_{_slug(sweep_label)}",
        f"Sensitivity in search sweep {sweep_label}, on the {split} splits ({len(done)} of "
        f"{len(trials)} trials finished)",
        [
            Column("param", "Parameter"),
            Column("range", "Range tried"),
            Column("n", "n"),
            Column("rho_acc", "ρ(acc)"),
            Column("rho_forgetting", "ρ(forg)"),
            Column("best", "Best trial"),
            Column("importance", "Optuna importance"),
        ],
    )
    enough = len(done) >= MIN_TRIALS_FOR_SENSITIVITY
    rho_note = summary.note(
        f"ρ: Spearman rank correlation over the finished trials ({acc_key}, {forg_key}); n/a "
        "without variation"
        if enough
        else f"ρ n/a: {len(done)} finished trial(s); rank correlations are shown from "
        f"{MIN_TRIALS_FOR_SENSITIVITY} (below that their 95% interval spans most of [-1, 1])"
    )
    imp_marker = summary.note(_importance_note(len(done), importances, importance_note))
    best = max(done, key=lambda r: r.metric(acc_key), default=None)
    for k in keys:
        pts = [(_num(r.params.get(k)), r) for r in done]
        pts = [(x, r) for x, r in pts if x is not None]
        xs = [x for x, _ in pts]
        ra, rf = _rhos(pts, acc_key, forg_key) if enough else (None, None)
        imp = None if importances is None else importances.get(k)
        summary.add(
            {
                "param": param_label(k),
                "range": f"{_fmt(min(xs))} – {_fmt(max(xs))}" if xs else NA,
                "n": str(len(xs)),
                "rho_acc": Cell(text=NA if ra is None else f"{ra:+.2f}", mean=ra, notes=[rho_note]),
                "rho_forgetting": Cell(
                    text=NA if rf is None else f"{rf:+.2f}", mean=rf, notes=[rho_note]
                ),
                "best": _fmt(_num(best.params.get(k))) if best and best.params.get(k) else NA,
                "importance": Cell(
                    text=NA if imp is None else f"{imp:.3f}", mean=imp, notes=[imp_marker]
                ),
            }
        )
    summary.provenance = provenance(exp, trials, {"sweep": sweep_label})
    return summary


def _importance_note(done: int, importances: dict[str, float] | None, note: str) -> str:
    """Why importances are absent: first the count of finished trials when it is below the
    stated minimum, then what else holds (no Optuna storage, no study)."""
    if importances is not None or done >= MIN_TRIALS_FOR_IMPORTANCE:
        return note
    return (
        f"Optuna importance n/a: {done} finished trial(s); importances are shown from "
        f"{MIN_TRIALS_FOR_IMPORTANCE} (below that they are noise); also: {note}"
    )


def _rhos(pts: list, acc_key: str, forg_key: str) -> tuple[float | None, float | None]:
    """Spearman's rho of a setting's values with accuracy and with forgetting (x 100)."""
    ra = spearman([x for x, _ in pts], [100 * r.metric(acc_key) for _, r in pts])
    fpts = [(x, r) for x, r in pts if r.metric(forg_key) is not None]
    rf = spearman([x for x, _ in fpts], [100 * r.metric(forg_key) for _, r in fpts])
    return ra, rf


def trials_table(
    exp: Experiment, sweep_label: str, trials: list[RunRecord], keys: list[str]
) -> Table:
    """Every trial: its settings and its numbers on the split the search selected on."""
    acc_key, forg_key, split = selection_keys(trials)
    single = "a single run: no standard deviation"
    detail = Table(
        f"sensitivity_trials_{_slug(sweep_label)}",
        f"Trials of search sweep {sweep_label}, on the {split} splits (%)",
        [Column("trial", "Trial"), Column("status", "Status")]
        + [Column(k, param_label(k)) for k in keys]
        + [Column("acc", "Acc ↑", "max"), Column("forgetting", "Forg ↓", "min")],
    )
    for r in sorted(trials, key=lambda r: -(r.metric(acc_key) or -1.0)):
        row: dict[str, Cell | str] = {"trial": r.name, "status": _status(r)}
        for k in keys:
            row[k] = _fmt(_num(r.params.get(k))) if r.params.get(k) is not None else NA
        row["acc"] = stat(detail, [r], acc_key)
        row["forgetting"] = stat(detail, [r], forg_key)
        for c in (row["acc"], row["forgetting"]):
            c.notes = [n for n in c.notes if detail.notes[n] != single]
        detail.add(row)
    detail.notes = {k: v for k, v in detail.notes.items() if v != single}
    detail.mark_best()
    detail.provenance = provenance(exp, trials, {"sweep": sweep_label})
    return detail


def _status(r: RunRecord) -> str:
    if r.tags.get("pah.stopped_early"):
        return "stopped early"
    return r.status.lower()


def _fmt(x: float | None) -> str:
    if x is None:
        return NA
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.3g}"


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in s)


# -- Optuna --------------------------------------------------------------------------------------


OBJECTIVE_WORDS = {"acc": "accuracy", "cil_acc": "class-IL accuracy"}


def optuna_importances(
    storage_url: str | None, study_name: str, objective: str = "acc"
) -> tuple[dict[str, float] | None, str]:
    """fANOVA importances of the study for its first objective (``objective``: the sweep's
    ``--objectives`` first name), or None and why not."""
    if storage_url is None:
        return None, "no Optuna storage known (the MLflow store is a server): pass --optuna-storage"
    path = sqlite_path(storage_url)
    if path is not None and not path.is_file():
        return None, f"no Optuna study: {path} does not exist"
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
    except KeyError:
        return None, f"no Optuna study named {study_name!r} in {storage_url}"
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return (
            None,
            f"Optuna study {study_name!r} has {len(complete)} complete trial(s): importances are "
            f"shown from {MIN_TRIALS_FOR_IMPORTANCE} (below that they are noise)",
        )
    try:
        imp = optuna.importance.get_param_importances(
            study,
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            target=(lambda t: t.values[0]) if len(study.directions) > 1 else None,
        )
    except (RuntimeError, ValueError) as e:
        return None, f"Optuna importances unavailable: {e}"
    return (
        {k: float(v) for k, v in imp.items()},
        f"fANOVA importance of each parameter for {OBJECTIVE_WORDS.get(objective, objective)}, Optuna study {study_name!r} ({len(complete)} complete trials; sums to 1 over all searched parameters)",
    )
