"""Small real objects for tests: a synthetic stream and a small CNN; local ports and servers."""

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pah_core.config import load_config
from pah_core.data import TaskStream, load_source

# The train CLI's overrides for a tiny synthetic run (seconds on one core). Unit tests run on the
# CPU even where a GPU is visible: they compare runs bit for bit (resume = uninterrupted run), which
# CUDA's nondeterministic kernels do not promise; tests/test_cuda.py covers the GPU.
TINY_CLI = [
    "run.device=cpu",
    "data.dataset=synthetic",
    "data.n_tasks=2",
    "data.classes_per_task=3",
    "model.backbone=small_cnn",
    "model.prototype_size=4",
    "schedule.epochs_per_task=1",
    "run.progress=false",
]


def set_flags(**overrides) -> list[str]:
    """Sweep ``--set key=value`` flags; keys use ``__`` for dots (data__train_per_class=60)."""
    out: list[str] = []
    for k, v in overrides.items():
        out += ["--set", f"{k.replace('__', '.')}={v}"]
    return out


# The one tiny preset of the integration tests' sweeps: 2 tasks of real CIFAR-100, 60 training
# and 10 test images per class, a small CNN, 2 epochs (a task in about a second on one core). A
# test changes only what it measures: tiny_cifar(schedule__epochs_per_task=3, ...).
TINY_CIFAR = {
    "data__train_per_class": 60,
    "data__test_per_class": 10,
    "schedule__max_tasks": 2,
    "model__backbone": "small_cnn",
    "schedule__epochs_per_task": 2,
}


def tiny_cifar(**changes) -> list[str]:
    """Sweep ``--set`` flags of TINY_CIFAR with ``changes`` (keys with ``__`` for dots)."""
    return set_flags(**{**TINY_CIFAR, **changes})


def longer_tasks(**changes) -> list[str]:
    """The tiny preset with 300 training and 20 test images per class, 4 epochs and the untrained
    model measured: a task takes a few seconds on one core, long enough to kill or stop a trial in
    the middle of one (tests of faults, interrupts, a lost node)."""
    return tiny_cifar(
        **{
            "data__train_per_class": 300,
            "data__test_per_class": 20,
            "schedule__epochs_per_task": 4,
            "schedule__eval_future": "true",
            **changes,
        }
    )


def tiny_config(*overrides: str):
    return load_config(
        None,
        [
            "run.device=cpu",
            "data.dataset=synthetic",
            "data.n_tasks=3",
            "data.classes_per_task=4",
            "model.backbone=small_cnn",
            "model.prototype_size=6",
            "model.hyper_width=8",
            "optim.batch_size=16",
            "schedule.epochs_per_task=2",
            "run.progress=false",
            *overrides,
        ],
    )


def tiny_stream(cfg):
    return TaskStream(load_source(cfg.data), cfg.data, cfg.run.seed)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic_auth(user: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def http_get(url: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> bytes:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    """Until ``url`` answers; fails with the server's log when it exits or never answers."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"{proc.args} exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            http_get(url, timeout=5)
            return
        except OSError:
            time.sleep(0.25)
    raise AssertionError(f"{url} did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def mlflow_server(backend_uri: str, workdir: Path, **env: str) -> Iterator[str]:
    """cluster/mlflow-server.sh on 127.0.0.1 (one worker, no auth unless ``env`` says otherwise);
    yields its URL and stops its process group at the end."""
    port = free_port()
    log = workdir / "mlflow-server.log"
    proc = subprocess.Popen(
        ["bash", str(Path(__file__).resolve().parents[1] / "cluster" / "mlflow-server.sh")],
        env={
            **os.environ,
            "MLFLOW_PORT": str(port),
            "MLFLOW_BACKEND_STORE_URI": backend_uri,
            "MLFLOW_ARTIFACTS_DESTINATION": str(workdir / "served-artifacts"),
            "MLFLOW_WORKERS": "1",
            "MLFLOW_BIN": str(Path(sys.executable).parent / "mlflow"),
            "MLFLOW_AUTH": "none",
            **env,
        },
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", 120, proc, log)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


_EMPTY_STORE: list[Path] = []  # this process's empty MLflow sqlite store, made once


def new_mlflow_store(db: Path) -> str:
    """A new, empty MLflow sqlite store at ``db`` (owner-only, as a sweep creates its own), and
    its URI. Creating a store runs MLflow's schema migrations, seconds of sqlite commits each time:
    MLflow creates one empty store per test process, and each new store is a copy of it. What is
    then written into it (experiments, runs) is MLflow's own doing, as in a store of any age; the
    tests where a sweep or a study creates its store from nothing keep doing so."""
    if not _EMPTY_STORE:
        from mlflow.tracking import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="pah-empty-store-"))
        atexit.register(shutil.rmtree, folder, True)
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
        _EMPTY_STORE.append(folder / "mlflow.db")
    db.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(_EMPTY_STORE[0].read_bytes())
    return f"sqlite:///{db}"


def sqlite_store(tmp_path: Path, experiment: str):
    """A real MLflow sqlite store in ``tmp_path`` with ``experiment``: (uri, client, its id)."""
    from mlflow.tracking import MlflowClient

    from pah_core.mlflow_reporter import get_or_create_experiment

    uri = new_mlflow_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    return uri, client, get_or_create_experiment(client, experiment)


def trial_run(client, exp_id: str, sweep: str, trial_id: str, parent: str | None = None, **tags):
    """A sweep trial's MLflow run as the trial's MLflowReporter keys and tags it; its id."""
    from pah_core.mlflow_reporter import RUN_KEY_TAG

    tags = {RUN_KEY_TAG: f"{sweep}/{trial_id}", "ray_trial_id": trial_id, **tags}
    if parent:
        tags["mlflow.parentRunId"] = parent
    return client.create_run(exp_id, run_name=trial_id, tags=tags).info.run_id


# -- hand-made exports (analysis/export.py's pah-export/1 format): tables without training --------

EXPORT_FORMAT = "pah-export/1"


def export_sweep(pid: str, name: str, kind: str, start: int, **tags: str) -> dict:
    """A sweep parent run's export record (``pah.role`` sweep, ``sweep_kind`` ``kind``)."""
    tags = {"pah.role": "sweep", "sweep": name, "sweep_kind": kind, **tags}
    return {
        "format": EXPORT_FORMAT,
        "run_id": pid,
        "name": name,
        "status": "FINISHED",
        "start_time": start,
        "artifact_uri": "",
        "params": {},
        "metrics": {},
        "tags": tags,
    }


def export_run(
    rid: str,
    start: int,
    params: dict[str, str],
    metrics: dict[str, float],
    tags: dict[str, str],
    status: str = "FINISHED",
    history: dict[str, dict[str, float]] | None = None,
    acc_matrix: dict | None = None,
    diagnostics: list[dict] | None = None,
) -> dict:
    """A training run's export record; its method and dataset as the tags and params say."""
    return {
        "format": EXPORT_FORMAT,
        "run_id": rid,
        "name": rid,
        "status": status,
        "start_time": start,
        "artifact_uri": "",
        "params": params,
        "metrics": metrics,
        "tags": tags,
        "history": history or {"avg_acc": {}, "forgetting": {}},
        "acc_matrix": acc_matrix,
        "diagnostics": diagnostics,
    }


def write_hand_export(folder: Path, experiment: str, sweeps: list[dict], runs: list[dict]) -> Path:
    """``sweeps`` and ``runs`` as an export folder (experiment.json lists them in this order)."""
    import json

    for sub, records in (("sweeps", sweeps), ("runs", runs)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for r in records:
            text = json.dumps(r, indent=1, sort_keys=True) + "\n"
            (folder / sub / f"{r['run_id']}.json").write_text(text)
    meta = {
        "format": EXPORT_FORMAT,
        "mlflow_uri": "sqlite:///.../hand-made/mlflow.db",
        "experiment": experiment,
        "experiment_id": "1",
        "sweeps": [s["run_id"] for s in sweeps],
        "runs": [r["run_id"] for r in runs],
    }
    (folder / "experiment.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return folder
