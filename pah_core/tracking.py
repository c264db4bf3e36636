"""Where MLflow lives: the one definition of the tracking URIs this project accepts, the stores
behind them, the Optuna storage beside them, and string literals in MLflow filter strings.

Two kinds of store: an embedded sqlite file (``sqlite:////abs/mlflow.db``, or a plain path to it) and
an MLflow server (``http(s)://host:port``). File stores (``file://``, an ``mlruns`` folder) are
read-only since MLflow 3.13. Standard library only: ``pah_core`` imports without MLflow, and a bad
URI is refused before anything starts.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SQLITE = "sqlite:///"
# The first 16 bytes of every SQLite database file (https://www.sqlite.org/fileformat.html).
SQLITE_HEADER = b"SQLite format 3\x00"
# Seconds an MLflow server gets to answer the reachability probe; MLflow's own client retries for
# minutes (7 retries, exponential backoff) before it reports an unreachable server.
PROBE_TIMEOUT_S = 5.0


class TrackingError(ValueError):
    """A tracking URI or store this project cannot use; the message says why and what to pass."""


def check_tracking_uri(uri: str) -> str:
    """Absolute sqlite or http(s) URIs only: relative ones break when Ray moves a trial's working dir."""
    if uri.startswith(("http://", "https://", "databricks")):
        return uri
    if uri.startswith(SQLITE):
        path = uri[len(SQLITE) :]
        return f"{SQLITE}{path if path.startswith('/') else Path(path).resolve()}"
    if "://" not in uri:
        return f"{SQLITE}{Path(uri).resolve()}"  # a plain path means an embedded sqlite file
    raise TrackingError(
        f"MLflow tracking URI {uri!r} is not supported: use sqlite:////abs/path/mlflow.db, a path to a .db file, "
        "or http(s)://host:port of an MLflow server (file stores are read-only since MLflow 3.13)"
    )


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the sqlite file mlflow.db in the working directory."""
    return check_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or "mlflow.db")


def sqlite_path(uri: str) -> Path | None:
    """The database file of an sqlite URI; None for a server."""
    return Path(uri[len(SQLITE) :]) if uri.startswith(SQLITE) else None


# MLflow 3's UI opens an experiment in its GenAI view unless the URL asks for the training view;
# the experiment tag is set too, for the MLflow versions that read it.
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
UI_PORT = 5000


def ui_page(experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI's page of an experiment's runs table (or of one run), in the "Model
    training" view, relative to wherever the UI is served."""
    page = f"#/experiments/{experiment_id}/runs"
    page += f"/{run_id}" if run_id else ""
    return page + "?workflowType=machine_learning"


def ui_commands(uri: str, experiment_id: str, run_id: str | None = None) -> list[str]:
    """What to type and open to browse an experiment (or one run of it) in the MLflow UI, on the
    runs table of the "Model training" view: for an sqlite store, the ``mlflow ui`` command and the
    local URL; for a server, its URL."""
    page = ui_page(experiment_id, run_id)
    path = sqlite_path(uri)
    if path is None:
        return [f"{uri.rstrip('/')}/{page}"]
    return [
        f"mlflow ui --backend-store-uri {uri} --port {UI_PORT}",
        f"http://127.0.0.1:{UI_PORT}/{page}",
    ]


def default_artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of an embedded sqlite store go beside the .db file (MLflow's default is the creating
    process's working directory, which Ray changes per trial); a server decides for itself."""
    path = sqlite_path(tracking_uri)
    return None if path is None else (path.parent / "mlartifacts").resolve().as_uri()


def optuna_storage_beside(tracking_uri: str) -> str | None:
    """The Optuna studies of search sweeps live in optuna.db beside an sqlite MLflow store; a
    server has no "beside" (None)."""
    path = sqlite_path(tracking_uri)
    return None if path is None else f"{SQLITE}{path.with_name('optuna.db')}"


def check_store(uri: str, must_exist: bool) -> str:
    """``uri`` (already checked) when its store can be used: an sqlite path that is an SQLite file
    (or, unless ``must_exist``, nothing yet), a server that answers. A clear TrackingError else."""
    path = sqlite_path(uri)
    if path is not None:
        if path.is_dir():
            raise TrackingError(
                f"{path} is a folder, not an MLflow sqlite file (an mlruns folder is a file store, "
                "read-only since MLflow 3.13): pass --mlflow-uri sqlite:////abs/mlflow.db or http://host:port"
            )
        if not path.exists():
            if must_exist:
                raise TrackingError(
                    f"no MLflow store at {path} (pass --mlflow-uri sqlite:////abs/mlflow.db or http://host:port)"
                )
            folder = next(p for p in path.parents if p.exists())
            if not folder.is_dir():
                raise TrackingError(f"no MLflow store can be made at {path}: {folder} is a file")
            return uri  # MLflow creates the file (and the folders to it)
        with path.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
        if head and head != SQLITE_HEADER:  # an empty file is an empty database to SQLite
            raise TrackingError(
                f"{path} is not an SQLite database (an MLflow store is one): pass the store's .db file"
            )
    elif uri.startswith(("http://", "https://")):
        probe_server(uri)
    return uri


def probe_server(url: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """A TrackingError within about ``timeout`` seconds when no usable server answers at ``url``:
    nothing listens, it does not answer in time (a stalled server), or it answers with a server
    error (5xx: a 503 from an overloaded server or a proxy without a backend, which MLflow's
    client would retry for minutes). A 4xx answer counts (an auth proxy's 401 too): a server is
    there."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout):
            return
    except urllib.error.HTTPError as e:
        if e.code < 500:
            return  # it answered
        raise TrackingError(
            f"the MLflow server at {url} answers {e.code} ({e.reason}): it is not serving; "
            "check the server (its logs, its database), or --mlflow-uri"
        ) from None
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise TrackingError(
            f"no MLflow server answers at {url} ({reason}): start it, or check --mlflow-uri"
        ) from None


def quote(value: str) -> str:
    """``value`` as a string literal of an MLflow filter string (``tags.sweep = <here>``).

    MLflow strips the quotes around a literal and unescapes nothing, so a value with a single quote
    goes in double quotes; one with both kinds cannot be written at all."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise TrackingError(
        f"{value!r} holds both kinds of quote, which an MLflow filter string cannot express: "
        "rename it without one of them"
    )


def load_run_json(tracking_uri: str, run_id: str, path: str) -> Any:
    """A JSON artifact of a run, read through the run's own tracking server: with an
    ``http://`` store the artifact URI is ``mlflow-artifacts:/...``, which only that server's
    client resolves (``mlflow.artifacts.load_dict`` would ask the process-wide default store)."""
    import json
    import tempfile

    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix="pah-artifact-") as folder:
        local = MlflowClient(tracking_uri=tracking_uri).download_artifacts(run_id, path, folder)
        return json.loads(Path(local).read_text())
