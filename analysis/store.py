"""Reading an MLflow experiment for analysis: one search per experiment (``mlflow.search_runs``,
which pages itself, into a DataFrame), artifacts and metric histories only for the runs that need them.

Works the same on an embedded sqlite store and on an ``http://`` MLflow server (``MlflowClient``).
``MlflowSource`` bundles those reads for ``paper_tables.build``; ``analysis/export.py`` has the other
source, an MLflow-free export folder, which gives the same records.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pah_core.tracking import (
    TrackingError,
    check_store,
    check_tracking_uri,
    default_tracking_uri,
    optuna_storage_beside,
)


class AnalysisError(RuntimeError):
    """A problem with what was asked for (unknown experiment or sweep, nothing to analyse)."""


@dataclass
class RunRecord:
    run_id: str
    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifact_uri: str
    start_time: int | None = None
    end_time: int | None = None  # ms; None while running, and in exports made before it was kept
    kind: str = "standalone"  # sweep kind of its parent: search, ablation, baselines; or standalone
    history: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def role(self) -> str | None:
        return self.tags.get("pah.role")

    @property
    def parent(self) -> str | None:
        return self.tags.get("mlflow.parentRunId")

    @property
    def method(self) -> str:
        return self.tags.get("method") or self.params.get("method.name") or "?"

    @property
    def dataset(self) -> str:
        return self.tags.get("dataset") or self.params.get("data.dataset") or "?"

    @property
    def variant(self) -> str | None:
        return self.tags.get("variant")

    @property
    def seed(self) -> str | None:
        return self.params.get("run.seed")

    @property
    def sweep(self) -> str | None:
        return self.tags.get("sweep")

    def metric(self, key: str) -> float | None:
        v = self.metrics.get(key)
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


@dataclass
class Experiment:
    uri: str
    name: str
    experiment_id: str
    runs: list[RunRecord]  # every run but the sweep parents
    sweeps: dict[str, RunRecord]  # parent run id -> parent run

    def sweep_label(self, parent_id: str) -> str:
        p = self.sweeps[parent_id]
        return p.sweep or p.name


def resolve_uri(uri: str | None) -> str:
    """--mlflow-uri, else $MLFLOW_TRACKING_URI, else mlflow.db in the working directory; its store
    must be there (opening a missing sqlite file would create an empty store and report nothing)
    and answer (MLflow's client retries an unreachable server for minutes)."""
    try:
        return check_store(check_tracking_uri(uri) if uri else default_tracking_uri(), True)
    except TrackingError as e:
        raise AnalysisError(str(e)) from None


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def _global_tracking_uri(uri: str):
    """``mlflow.search_runs`` reads MLflow's global tracking URI: ``uri`` for the call, then the one
    before; and $MLFLOW_TRACKING_URI, which setting the global also sets, as it was."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    env = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env


def _records(frame) -> list[RunRecord]:
    """One RunRecord per row of ``mlflow.search_runs``'s DataFrame: its ``params.``, ``metrics.``
    and ``tags.`` columns back into dicts, without the empty cells of keys a run does not have."""
    import pandas as pd

    def prefixed(row: dict[str, Any], prefix: str) -> dict[str, Any]:
        return {
            k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix) and not pd.isna(v)
        }

    return [
        RunRecord(
            run_id=row["run_id"],
            name=row.get("tags.mlflow.runName") or row["run_id"][:8],
            status=row["status"],
            params=prefixed(row, "params."),
            metrics={k: float(v) for k, v in prefixed(row, "metrics.").items()},
            tags=prefixed(row, "tags."),
            artifact_uri=row["artifact_uri"],
            # MLflow's milliseconds, back from the Timestamp the DataFrame holds
            start_time=None if pd.isna(row["start_time"]) else row["start_time"].value // 10**6,
            end_time=None if pd.isna(row.get("end_time")) else row["end_time"].value // 10**6,
        )
        for row in frame.to_dict("records")
    ]


def load_experiment(client, name: str) -> Experiment:
    """All runs of experiment ``name``, in one search (``mlflow.search_runs`` pages itself)."""
    import mlflow

    exp = client.get_experiment_by_name(name)
    if exp is None:
        known = sorted(e.name for e in client.search_experiments())
        raise AnalysisError(
            f"no experiment {name!r} at {client.tracking_uri}; experiments there: {', '.join(known) or '(none)'}"
        )
    with _global_tracking_uri(client.tracking_uri):
        frame = mlflow.search_runs(
            [exp.experiment_id], order_by=["attributes.start_time ASC"], output_format="pandas"
        )
    runs = _records(frame)
    if not runs:
        raise AnalysisError(f"experiment {name!r} at {client.tracking_uri} has no runs")
    return assemble(client.tracking_uri, name, exp.experiment_id, runs)


def assemble(uri: str, name: str, experiment_id: str, runs: list[RunRecord]) -> Experiment:
    """Sweep parents apart from training runs, and each run's kind from its parent's sweep kind."""
    sweeps = {r.run_id: r for r in runs if r.role == "sweep"}
    others = [r for r in runs if r.role != "sweep"]
    for r in others:
        if r.parent in sweeps:
            r.kind = sweeps[r.parent].tags.get("sweep_kind", "search")
        elif r.tags.get("sweep_kind"):
            r.kind = r.tags["sweep_kind"]
    return Experiment(uri, name, experiment_id, others, sweeps)


def select_sweeps(exp: Experiment, wanted: list[str]) -> list[str]:
    """Parent run ids of the sweeps named (by sweep name or parent run id); a clear error otherwise."""
    out = []
    for w in wanted:
        hits = [pid for pid, p in exp.sweeps.items() if w in (pid, p.sweep, p.name)]
        if not hits:
            known = [f"{p.sweep or p.name} ({pid})" for pid, p in exp.sweeps.items()]
            raise AnalysisError(
                f"no sweep {w!r} in experiment {exp.name!r}; sweeps there: {', '.join(known) or '(none)'}"
            )
        out += [h for h in hits if h not in out]
    return out


def children(exp: Experiment, parent_ids: list[str]) -> list[RunRecord]:
    ids = set(parent_ids)
    return [r for r in exp.runs if r.parent in ids]


def load_histories(client, runs: list[RunRecord], key: str, threads: int = 8) -> None:
    """``run.history[key] = {step: value}`` for each run (one call per run, in parallel)."""

    def one(r: RunRecord):
        return r, {int(m.step): float(m.value) for m in client.get_metric_history(r.run_id, key)}

    todo = [r for r in runs if key not in r.history]
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(todo)))) as pool:
        for r, h in pool.map(one, todo):
            r.history[key] = h


def load_matrix_dict(r: RunRecord) -> dict[str, Any] | None:
    """The run's acc_matrix.json as logged, or None when absent."""
    import mlflow.artifacts

    try:
        return mlflow.artifacts.load_dict(f"{r.artifact_uri}/acc_matrix.json")
    except Exception:  # noqa: BLE001 - no artifact (a run that never finished a task)
        return None


def load_diagnostics(r: RunRecord) -> list[dict[str, Any]] | None:
    """The run's diagnostics.json history (PAH: head and prototype drift per task), or None."""
    import mlflow.artifacts

    try:
        return mlflow.artifacts.load_dict(f"{r.artifact_uri}/diagnostics.json")["diagnostics"]
    except Exception:  # noqa: BLE001 - no artifact (not PAH, or made before diagnostics existed)
        return None


def matrix_from_dict(d: dict[str, Any]) -> np.ndarray:
    """The accuracy matrix of an acc_matrix.json: from the exact counts where it has them."""
    from pah_core import metrics

    k = int(d.get("tasks_done", len(d["acc_matrix"])))
    if d.get("correct") is not None and d.get("total") is not None:
        return metrics.accuracy_matrix(np.asarray(d["correct"])[:k], np.asarray(d["total"])[:k])
    return np.array([[np.nan if v is None else v for v in row] for row in d["acc_matrix"][:k]])


def load_matrix(r: RunRecord) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The run's accuracy matrix from its acc_matrix.json (exact counts), or None when absent."""
    d = load_matrix_dict(r)
    return None if d is None else (matrix_from_dict(d), d)


class MlflowSource:
    """The reads ``paper_tables.build`` makes, from an MLflow store (sqlite file or server)."""

    def __init__(self, client):
        self.client = client
        self.uri: str = client.tracking_uri
        self.default_experiment: str | None = None  # a store holds many: the caller names one

    def experiment(self, name: str) -> Experiment:
        return load_experiment(self.client, name)

    def histories(self, runs: list[RunRecord], key: str) -> None:
        load_histories(self.client, runs, key)

    def matrix(self, r: RunRecord) -> tuple[np.ndarray, dict[str, Any]] | None:
        return load_matrix(r)

    def diagnostics(self, r: RunRecord) -> list[dict[str, Any]] | None:
        return load_diagnostics(r)

    def optuna_storage(self) -> str | None:
        return optuna_storage_beside(self.uri)


def short_id(run_id: str) -> str:
    return run_id[:8]
