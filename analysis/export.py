"""An MLflow-free copy of an experiment's runs, small enough for git, and the source that reads it.

    <folder>/experiment.json    the experiment, the MLflow URI it came from, its sweeps and runs in
                                MLflow's order (the order fixes the order of run ids in tables)
    <folder>/sweeps/<id>.json   one sweep parent run each: name, status, params, metrics, tags
    <folder>/runs/<id>.json     one training run each: the same, plus the per-task histories of
                                avg_acc and forgetting and the run's acc_matrix.json as logged
    experiment.json's ``merged_from`` (when present): the other stores whose sweeps an export kept
    when it was written over an earlier one (``write_export(..., keep_other_sweeps=True)``)

``ExportSource`` rebuilds from it the ``Experiment`` and ``RunRecord`` objects that
``store.load_experiment`` gives (through the same ``store.assemble``), so ``paper_tables.build``
makes the same tables from either source. An export of the same runs is byte-identical: no
timestamps of its own, keys sorted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .store import (
    AnalysisError,
    Experiment,
    MlflowSource,
    RunRecord,
    assemble,
    children,
    load_diagnostics,
    load_matrix_dict,
    matrix_from_dict,
    select_sweeps,
)

FORMAT = "pah-export/1"
# The metric histories the analysis plots (avg_acc) or may (forgetting); one value per task.
HISTORY_KEYS = ("avg_acc", "forgetting")


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def portable(uri: str) -> str:
    """A store or artifact location without the machine's own folders (an export is shipped):
    ``sqlite:////work/x/runs/s/mlflow.db`` -> ``sqlite:///.../s/mlflow.db``, an artifact folder from
    its ``mlartifacts`` on; servers and buckets as they are."""
    for scheme in ("sqlite:///", "file://"):
        if uri.startswith(scheme) and uri[len(scheme) :].startswith("/"):
            parts = Path(uri[len(scheme) :]).parts
            if "mlartifacts" in parts:
                return "/".join(parts[parts.index("mlartifacts") :])
            return f"{scheme}.../" + "/".join(parts[-2:])
    return uri if not uri.startswith("/") else ".../" + "/".join(Path(uri).parts[-2:])


def _record(r: RunRecord) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "run_id": r.run_id,
        "name": r.name,
        "status": r.status,
        "start_time": r.start_time,
        "end_time": r.end_time,
        "artifact_uri": portable(r.artifact_uri),
        "params": r.params,
        "metrics": r.metrics,
        "tags": r.tags,
    }


def _run_record(r: RunRecord) -> dict[str, Any]:
    return {
        **_record(r),
        # Read-only conveniences for a person or a script reading the file; the loader derives
        # them again from the tags and params, as store.load_experiment does.
        "kind": r.kind,
        "sweep": r.sweep,
        "variant": r.variant,
        "method": r.method,
        "seed": r.seed,
        "history": {k: {str(s): v for s, v in sorted(r.history[k].items())} for k in HISTORY_KEYS},
        "acc_matrix": load_matrix_dict(r),
        "diagnostics": load_diagnostics(r),
    }


def write_export(
    source: MlflowSource,
    experiment: str,
    folder: str | Path,
    sweeps: list[str] | None = None,
    keep_other_sweeps: bool = False,
) -> Path:
    """Export experiment ``experiment`` (only the runs of ``sweeps`` when given) into ``folder``,
    replacing an earlier export there (files of runs no longer exported are removed).

    With ``keep_other_sweeps``, the earlier export's sweeps that the store does not hold (by sweep
    name) stay, with their runs: a study continued from another store (its first store lost, its
    export committed) adds its new sweeps to the export instead of dropping the old ones. A sweep
    of the same name in the store replaces the export's. experiment.json's ``merged_from`` names
    the store each kept sweep came from. (Runs outside any sweep are not kept: a study has none.)"""
    exp = source.experiment(experiment)
    parents = select_sweeps(exp, sweeps) if sweeps else list(exp.sweeps)
    runs = children(exp, parents) if sweeps else list(exp.runs)
    for key in HISTORY_KEYS:
        source.histories(runs, key)
    folder = Path(folder)
    kept = _kept_sweeps(folder, exp, parents) if keep_other_sweeps else _Kept()
    written: set[Path] = set()

    def put(path: Path, data: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump(data))
        written.add(path)

    for pid in parents:
        put(folder / "sweeps" / f"{pid}.json", _record(exp.sweeps[pid]))
    for r in runs:
        put(folder / "runs" / f"{r.run_id}.json", _run_record(r))
    written |= kept.files
    meta = {
        "format": FORMAT,
        "mlflow_uri": portable(exp.uri),
        "experiment": exp.name,
        "experiment_id": exp.experiment_id,
        "sweeps": kept.sweeps + parents,
        "runs": kept.runs + [r.run_id for r in runs],
    }
    if kept.merged_from:
        meta["merged_from"] = kept.merged_from
    put(folder / "experiment.json", meta)
    for sub in ("sweeps", "runs"):
        for stale in set((folder / sub).glob("*.json")) - written:
            stale.unlink()
    return folder


@dataclass
class _Kept:
    """What an earlier export keeps in a merged one: its sweeps' and runs' ids, in its order."""

    sweeps: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    files: set[Path] = field(default_factory=set)
    merged_from: list[dict[str, Any]] = field(default_factory=list)


def _kept_sweeps(folder: Path, exp: Experiment, parents: list[str]) -> _Kept:
    if not (folder / "experiment.json").is_file():
        return _Kept()
    old = ExportSource(folder)
    if old.default_experiment != exp.name:
        raise AnalysisError(
            f"export {folder} holds experiment {old.default_experiment!r}, not {exp.name!r}: "
            "merge into an export of the same experiment, or export into another folder"
        )
    new_names = {exp.sweep_label(pid) for pid in parents}
    kept = _Kept()
    by_store: dict[str, list[str]] = {}
    for pid in old.meta["sweeps"]:
        d = old.record(pid)
        name = d["tags"].get("sweep") or d["name"]
        if name in new_names or pid in parents:
            continue
        kept.sweeps.append(pid)
        kept.files.add(folder / "sweeps" / f"{pid}.json")
        by_store.setdefault(old.sweep_store(pid), []).append(name)
    for rid in old.meta["runs"]:
        if old.record(rid)["tags"].get("mlflow.parentRunId") in kept.sweeps:
            kept.runs.append(rid)
            kept.files.add(folder / "runs" / f"{rid}.json")
    kept.merged_from = [{"mlflow_uri": portable(u), "sweeps": n} for u, n in by_store.items()]
    return kept


class ExportSource:
    """``paper_tables.build``'s reads, from an export folder instead of MLflow."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_file = self.folder / "experiment.json"
        if not meta_file.is_file():
            raise AnalysisError(
                f"no export at {self.folder} (missing experiment.json); write one with "
                "python sweeps/reproduce.py --report-only or analysis.export.write_export"
            )
        self.meta = json.loads(meta_file.read_text())
        if self.meta.get("format") != FORMAT:
            raise AnalysisError(
                f"{meta_file}: format {self.meta.get('format')!r}, this code reads {FORMAT!r}"
            )
        # Provenance names both: what the numbers were read from, and where they were logged
        # (more than one store when sweeps were merged in from an earlier export).
        stores = [self.meta["mlflow_uri"]] + [m["mlflow_uri"] for m in self.merged_from]
        self.uri = f"export {self.folder} of {' and '.join(dict.fromkeys(stores))}"
        self.default_experiment: str = self.meta["experiment"]
        self._data: dict[str, dict[str, Any]] = {}
        for sub, ids in (("sweeps", self.meta["sweeps"]), ("runs", self.meta["runs"])):
            for rid in ids:
                path = self.folder / sub / f"{rid}.json"
                if not path.is_file():
                    raise AnalysisError(f"export {self.folder}: {sub}/{rid}.json is missing")
                self._data[rid] = json.loads(path.read_text())

    @property
    def merged_from(self) -> list[dict[str, Any]]:
        return self.meta.get("merged_from", [])  # absent in unmerged exports

    def record(self, run_id: str) -> dict[str, Any]:
        """The exported record of a sweep or run, as written."""
        return self._data[run_id]

    def sweep_store(self, parent_id: str) -> str:
        """The MLflow store a sweep of this export was logged to."""
        name = self.record(parent_id)["tags"].get("sweep") or self.record(parent_id)["name"]
        for m in self.merged_from:
            if name in m["sweeps"]:
                return m["mlflow_uri"]
        return self.meta["mlflow_uri"]

    def experiment(self, name: str | None = None) -> Experiment:
        if name is not None and name != self.default_experiment:
            raise AnalysisError(
                f"no experiment {name!r} in export {self.folder}; it holds {self.default_experiment!r}"
            )
        records = [
            RunRecord(
                run_id=d["run_id"],
                name=d["name"],
                status=d["status"],
                params=dict(d["params"]),
                metrics=dict(d["metrics"]),
                tags=dict(d["tags"]),
                artifact_uri=d["artifact_uri"],
                start_time=d["start_time"],
                end_time=d.get("end_time"),
            )
            for d in (self._data[rid] for rid in self.meta["sweeps"] + self.meta["runs"])
        ]
        if not self.meta["runs"]:
            raise AnalysisError(f"export {self.folder} has no runs")
        return assemble(self.uri, self.default_experiment, self.meta["experiment_id"], records)

    def histories(self, runs: list[RunRecord], key: str) -> None:
        if key not in HISTORY_KEYS:
            raise AnalysisError(f"the export holds the histories of {HISTORY_KEYS}, not {key!r}")
        for r in runs:
            if key not in r.history:
                saved = self._data[r.run_id]["history"][key]
                r.history[key] = {int(s): float(v) for s, v in saved.items()}

    def matrix(self, r: RunRecord) -> tuple[np.ndarray, dict[str, Any]] | None:
        d = self._data[r.run_id].get("acc_matrix")
        return None if d is None else (matrix_from_dict(d), d)

    def diagnostics(self, r: RunRecord) -> list[dict[str, Any]] | None:
        return self._data[r.run_id].get("diagnostics")  # absent in exports made before it

    def optuna_storage(self) -> str | None:
        return None  # Optuna studies are not exported: pass --optuna-storage for importances
