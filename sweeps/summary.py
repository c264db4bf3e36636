"""A finished sweep in a few lines: each trial's last result, its status, the best trial and, for two
objectives, the Pareto set; logged onto the parent run (record.finish_parent_run) and printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pah_core.metrics import pareto_front
from pah_core.tracking import sqlite_path

CONFIG = "config/"  # ResultGrid.get_dataframe's prefix of the config columns


def _plain(v: Any) -> Any:
    """A DataFrame cell as the JSON the parent run's artifacts are written in."""
    return v.item() if isinstance(v, np.generic) else v


def _cause(error: BaseException) -> str:
    """The line of a trial's error that names the cause (Ray wraps it in its own lines)."""
    lines = [ln for ln in str(error).strip().splitlines() if ln.strip()]
    return next(
        (ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else repr(error)
    ).strip()


def trial_rows(results, n_run: int) -> list[dict[str, Any]]:
    """One row per trial, in Tune's order: the last result ``results.get_dataframe()`` has for it
    (none for a trial that failed before its first report), its config and its status."""
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
            "config": {k: _plain(v) for k, v in config.items() if "." in k},
            "status": "finished",
        }
        if result.error is not None:
            row["status"], row["error"] = "error", _cause(result.error)
        elif row["tasks_done"] < n_run:
            row["status"] = "stopped early (ASHA)"
        rows.append(row)
    return rows


def summarise(results, objectives: list[str], n_run: int) -> dict[str, Any]:
    trials = trial_rows(results, n_run)
    complete = [t for t in trials if t["status"] == "finished" and t["tasks_done"] >= n_run]
    best = max(complete, key=lambda t: t["avg_acc"], default=None)
    front = []
    if len(objectives) == 2:
        by_id = {t["trial"]: t for t in complete}
        points = [(t["trial"], t["avg_acc"], t["forgetting"]) for t in complete]
        front = [by_id[p[0]] for p in pareto_front(points)]
    return {
        "trials": trials,
        "failures": [t for t in trials if t["status"] == "error"],
        "best": best,
        "pareto": front,
        "n_run": n_run,
    }


def print_summary(summary: dict[str, Any], seconds: float, mlflow_uri: str) -> None:
    print(
        f"\n[sweep] done in {seconds:.0f} s: {len(summary['trials'])} trial(s), {len(summary['failures'])} failed"
    )
    for t in sorted(summary["trials"], key=lambda t: -(t["avg_acc"] or -1)):
        acc = "-" if t["avg_acc"] is None else f"{100 * t['avg_acc']:.1f}%"
        forg = "-" if t["forgetting"] is None else f"{100 * t['forgetting']:.1f}%"
        extra = f"  {t['error']}" if t.get("error") else ""
        print(
            f"  {t['trial']:>20s}  tasks {t['tasks_done']}/{summary['n_run']}  acc {acc:>6s}  forgetting {forg:>6s}  "
            f"{t['status']}{extra}"
        )
    if summary["best"]:
        print(
            f"[sweep] best: {summary['best']['trial']} acc {100 * summary['best']['avg_acc']:.2f}%"
        )
    if summary["pareto"]:
        print(f"[sweep] Pareto set: {[p['trial'] for p in summary['pareto']]}")
    if sqlite_path(mlflow_uri) is not None:
        print(
            f"[sweep] browse: mlflow ui --backend-store-uri {mlflow_uri}  (then open http://127.0.0.1:5000)"
        )
    else:
        print(f"[sweep] browse: {mlflow_uri}")
