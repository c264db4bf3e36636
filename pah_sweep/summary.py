"""A finished sweep in a few lines: each trial's last result, its status, the best trial and, for two
objectives, the Pareto set; logged onto the parent run (record.finish_parent_run) and printed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from pah_core.metrics import pareto_front
from pah_core.tracking import ui_commands

from .objectives import OBJECTIVES

CONFIG = "config/"  # ResultGrid.get_dataframe's prefix of the config columns
# How the console names the links a sweep's end prints (pah_sweep.leaderboard.sweep_links).
LINK_WORDS = {"parent": "the sweep (leaderboard)", "best": "the best trial"}


def _plain(v: Any) -> Any:
    """A DataFrame cell as the JSON the parent run's artifacts are written in."""
    return v.item() if isinstance(v, np.generic) else v


def _cause(error: BaseException) -> str:
    """The line of a trial's error that names the cause (Ray wraps it in its own lines)."""
    lines = [ln for ln in str(error).strip().splitlines() if ln.strip()]
    return next(
        (ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else repr(error)
    ).strip()


def trial_rows(results, n_run: int, early_stopping: bool = True) -> list[dict[str, Any]]:
    """One row per trial, in Tune's order: the last result ``results.get_dataframe()`` has for it
    (none for a trial that failed before its first report), its config and its status. A trial
    short of ``n_run`` tasks without an error was stopped by ASHA (``early_stopping``) or, in a
    grid, interrupted."""
    frame = results.get_dataframe()
    last = {r["trial_id"]: r for r in frame.to_dict("records")} if "trial_id" in frame else {}
    rows = []
    for result in results:
        # Trial folders are trial_<id> (launch.trial_name); a trial's id is how MLflow knows it.
        trial_id = Path(result.path).name.removeprefix("trial_") if result.path else "?"
        m = last.get(trial_id, {})
        config = {k[len(CONFIG) :]: v for k, v in m.items() if k.startswith(CONFIG)}
        config = config or dict(result.config or {})
        row = {
            "trial": trial_id,
            "variant": _plain(config.get("variant")),
            "tasks_done": int(m.get("tasks_done", 0)),
            "avg_acc": _plain(m.get("avg_acc")),
            "forgetting": _plain(m.get("forgetting")),
            "cil_avg_acc": _plain(m.get("cil_avg_acc")),
            # The validation splits' numbers: what the best trial and the Pareto set are chosen on.
            "val_avg_acc": _plain(m.get("val_avg_acc")),
            "val_forgetting": _plain(m.get("val_forgetting")),
            "val_cil_avg_acc": _plain(m.get("val_cil_avg_acc")),
            "config": {k: _plain(v) for k, v in config.items() if "." in k},
            "seconds": float(_plain(m.get("time_total_s")) or 0.0),
            "status": "finished",
        }
        if result.error is not None:
            row["status"], row["error"] = "error", _cause(result.error)
        elif row["tasks_done"] < n_run:
            row["status"] = "stopped early (ASHA)" if early_stopping else "not finished"
        rows.append(row)
    return rows


def summarise(
    results, objectives: list[str], n_run: int, early_stopping: bool = True
) -> dict[str, Any]:
    """The trials, the failures, the best trial on the first objective and, for two objectives,
    the Pareto set (pah_sweep.trial.OBJECTIVES names each objective's column and direction), on the
    validation splits' numbers; a grid run without validation splits (which selects nothing) is
    ranked on its test numbers, and says so (``selected_on``)."""
    trials = trial_rows(results, n_run, early_stopping)
    complete = [t for t in trials if t["status"] == "finished" and t["tasks_done"] >= n_run]
    chosen = [OBJECTIVES[o] for o in objectives]
    on_val = any(t.get("val_avg_acc") is not None for t in trials)
    key = (lambda o: o.summary_key) if on_val else (lambda o: o.test_key)

    def score(t: dict[str, Any], o) -> float:  # higher is better, whatever the direction
        v = t.get(key(o))
        v = -math.inf if v is None else float(v)
        return v if o.mode == "max" else -v

    complete = [t for t in complete if all(t.get(key(o)) is not None for o in chosen)]
    best = max(complete, key=lambda t: score(t, chosen[0]), default=None)
    front = []
    if len(chosen) == 2:
        by_id = {t["trial"]: t for t in complete}
        # pareto_front maximises its first value and minimises its second.
        points = [(t["trial"], score(t, chosen[0]), -score(t, chosen[1])) for t in complete]
        front = [by_id[p[0]] for p in pareto_front(points)]
    return {
        "trials": trials,
        "failures": [t for t in trials if t["status"] == "error"],
        "best": best,
        "pareto": front,
        "n_run": n_run,
        "objectives": list(objectives),
        "selected_on": "validation" if on_val else "test",
    }


def print_summary(
    summary: dict[str, Any], seconds: float, mlflow_uri: str, optuna_storage: str | None = None
) -> None:
    """The trials, best first, the best trial and Pareto set, and how to browse them."""
    print(
        f"\n[sweep] done in {seconds:.0f} s: {len(summary['trials'])} trial(s), {len(summary['failures'])} failed"
    )
    for t in sorted(summary["trials"], key=lambda t: -(t["avg_acc"] or -1)):
        acc = "-" if t["avg_acc"] is None else f"{100 * t['avg_acc']:.1f}%"
        forg = "-" if t["forgetting"] is None else f"{100 * t['forgetting']:.1f}%"
        cil = "" if t.get("cil_avg_acc") is None else f"  class-IL {100 * t['cil_avg_acc']:.1f}%"
        if t.get("val_avg_acc") is not None:
            cil += f"  (val acc {100 * t['val_avg_acc']:.1f}%)"
        extra = f"  {t['error']}" if t.get("error") else ""
        print(
            f"  {t['trial']:>20s}  tasks {t['tasks_done']}/{summary['n_run']}  acc {acc:>6s}  forgetting {forg:>6s}{cil}  "
            f"{t['status']}{extra}"
        )
    if summary["best"]:
        best = summary["best"]
        cil = (
            ""
            if best.get("cil_avg_acc") is None
            else f", class-IL {100 * best['cil_avg_acc']:.2f}%"
        )
        print(
            f"[sweep] best on the {summary['selected_on']} splits: {best['trial']} test acc "
            f"{100 * best['avg_acc']:.2f}%{cil}"
        )
    if summary["pareto"]:
        print(f"[sweep] Pareto set: {[p['trial'] for p in summary['pareto']]}")
    print("[sweep] browse the runs:")
    for line in ui_commands(mlflow_uri, summary["experiment_id"]):
        print(f"    {line}")
    # The parent's page holds the leaderboard (pah_sweep.leaderboard).
    for what, url in summary.get("links", {}).items():
        print(f"    {LINK_WORDS[what]}: {url}")
    if optuna_storage:
        print(f"[sweep] the Optuna study: optuna-dashboard {optuna_storage}")
