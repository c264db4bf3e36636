"""Reading an MLflow experiment for analysis: one paginated search per experiment, artifacts and
metric histories only for the runs that need them.

Works the same on an embedded sqlite store and on an ``http://`` MLflow server (``MlflowClient``).
``MlflowSource`` bundles those reads for ``paper_tables.build``; ``analysis/export.py`` has the other
source, an MLflow-free export folder, which gives the same records.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PAGE = 1000  # runs per search page (an MLflow server caps a page at 1000 too)
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


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
    search_calls: int = 0

    def sweep_label(self, parent_id: str) -> str:
        p = self.sweeps[parent_id]
        return p.sweep or p.name


def resolve_uri(uri: str | None) -> str:
    """--mlflow-uri, else $MLFLOW_TRACKING_URI, else mlflow.db in the working directory. A sqlite
    file must exist: opening a missing one would create an empty store and report nothing."""
    from pah_core.mlflow_reporter import check_tracking_uri

    uri = check_tracking_uri(
        uri or os.environ.get("MLFLOW_TRACKING_URI") or str(Path("mlflow.db").resolve())
    )
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        if not path.is_file():
            raise AnalysisError(
                f"no MLflow store at {path} (pass --mlflow-uri sqlite:////abs/mlflow.db or http://host:port)"
            )
    return uri


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _record(run) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        name=run.info.run_name or run.data.tags.get("mlflow.runName", run.info.run_id[:8]),
        status=run.info.status,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        artifact_uri=run.info.artifact_uri,
        start_time=run.info.start_time,
    )


def load_experiment(client, name: str) -> Experiment:
    """All runs of experiment ``name`` in as few round trips as the store allows."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        known = sorted(e.name for e in client.search_experiments())
        raise AnalysisError(
            f"no experiment {name!r} at {client.tracking_uri}; experiments there: {', '.join(known) or '(none)'}"
        )
    runs, token, calls = [], None, 0
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            max_results=PAGE,
            page_token=token,
            order_by=["attributes.start_time ASC"],
        )
        calls += 1
        runs += [_record(r) for r in page]
        token = page.token
        if not token:
            break
    if not runs:
        raise AnalysisError(f"experiment {name!r} at {client.tracking_uri} has no runs")
    return assemble(client.tracking_uri, name, exp.experiment_id, runs, calls)


def assemble(
    uri: str, name: str, experiment_id: str, runs: list[RunRecord], calls: int = 0
) -> Experiment:
    """Sweep parents apart from training runs, and each run's kind from its parent's sweep kind."""
    sweeps = {r.run_id: r for r in runs if r.role == "sweep"}
    others = [r for r in runs if r.role != "sweep"]
    for r in others:
        if r.parent in sweeps:
            r.kind = sweeps[r.parent].tags.get("sweep_kind", "search")
        elif r.tags.get("sweep_kind"):
            r.kind = r.tags["sweep_kind"]
    return Experiment(uri, name, experiment_id, others, sweeps, calls)


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

    def optuna_storage(self) -> str | None:
        return default_optuna_storage(self.uri)


def default_optuna_storage(uri: str) -> str | None:
    """The Optuna studies of search sweeps live beside an sqlite MLflow store."""
    if uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(uri[len('sqlite:///') :]).with_name('optuna.db')}"
    return None


def short_id(run_id: str) -> str:
    return run_id[:8]
