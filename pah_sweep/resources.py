"""Ray for a sweep: start or join it, and how many trials its resources fit at once."""

from __future__ import annotations

import math
import os
import socket

from . import REPO
from .errors import SweepError
from .trial import DRIVER_CPUS

# Ray Train's settings for a Ray this process starts (one machine). Each trial's controller starts
# a preemption watcher actor (one more Python process per trial) that waits for a node drain, which
# never comes on one machine: off. The controller polls its workers every 2 s by default, and every
# report and the trial's end wait for that poll: 0.5 s. A user's own settings win, and are passed on
# to the trials of a joined cluster, which otherwise keeps Ray's defaults.
LOCAL_TRAIN_ENV = {
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
}


def job_env(local: bool) -> dict[str, str]:
    """The environment every Ray worker of a sweep gets; ``local``: a Ray this process starts."""
    defaults = {
        # Ray Train gives a worker group 60 s to start. On a small machine every trial starts
        # several Python processes that import torch, and the raylet starts only as many at once
        # as there are cores, so concurrent trials can miss that deadline.
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "600",
        # The per-task long table is appended to (MLflow downloads it first): no progress bar.
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        **(LOCAL_TRAIN_ENV if local else {}),
    }
    env = {k: os.environ.get(k, v) for k, v in defaults.items()}  # a user's own settings win
    # ... and a user's own Ray Train settings reach the trials of a joined cluster too.
    env.update({k: os.environ[k] for k in LOCAL_TRAIN_ENV if k in os.environ})
    # Trials import pah_core and sweeps from this checkout, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    return env


# Seconds a Ray address gets to accept a connection before the sweep stops with an error; ray.init
# itself retries an address where nothing listens for minutes.
RAY_PROBE_TIMEOUT_S = 5.0


def check_ray_address(address: str | None) -> None:
    """A clear SweepError, within seconds, when nothing listens at ``address`` (else
    $RAY_ADDRESS): ``host:port`` of a GCS, ``ray://host:port`` of a Ray Client server, or an
    ``http(s)://`` dashboard. "auto" and "local" are Ray's own to resolve."""
    flag = "--address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS")
    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].split("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise SweepError(
            f"{flag} {address!r} is not a Ray address: pass host:port (e.g. 10.0.0.1:6379), "
            "ray://host:10001, or auto"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_PROBE_TIMEOUT_S):
            return
    except OSError as e:
        raise SweepError(
            f"no Ray cluster answers at {flag} {address} ({e}): start it (ray start --head), or "
            "fix the address"
        ) from None


def init_ray(address: str | None, verbose: bool = True) -> str | None:
    """Join the Ray at ``address`` (or $RAY_ADDRESS), else start a local one; the folder of its
    log files (None when Ray was already started). Not ``verbose``: the workers' output goes to
    those files only, and Ray logs warnings and errors only."""
    import logging

    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return None
    runtime_env = {"env_vars": job_env(local=not address)}
    quiet = {} if verbose else {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        ctx = ray.init(address=address, runtime_env=runtime_env, **quiet)
    else:
        # The dashboard hosts the State API, which Ray Train needs to release the workers of a trial
        # that Tune stopped (ASHA); without it their CPUs stay reserved and later trials never start.
        ctx = ray.init(num_cpus=os.cpu_count(), runtime_env=runtime_env, **quiet)
    # A Ray Client context (ray://) has no address_info: its logs live on the cluster.
    session = getattr(ctx, "address_info", {}).get("session_dir")
    return os.path.join(session, "logs") if session else None


def check_resources(cluster: dict[str, float], workers: int, cpus: float, gpus: float) -> int:
    """How many trials fit at once; a clear error (with the arithmetic) when not even one does."""
    need_cpu = DRIVER_CPUS + workers * cpus
    need_gpu = workers * gpus
    have_cpu, have_gpu = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    problems = []
    if need_cpu > have_cpu + 1e-9:
        problems.append(
            f"one trial needs {DRIVER_CPUS} (trial driver) + {workers} worker(s) x {cpus:g} CPU = {need_cpu:g} CPUs, "
            f"but the cluster has {have_cpu:g}"
        )
    if need_gpu > have_gpu + 1e-9:
        problems.append(
            f"one trial needs {workers} worker(s) x {gpus:g} GPU = {need_gpu:g} GPUs, but the cluster has {have_gpu:g}"
        )
    if problems:
        raise SweepError(
            "this sweep cannot start: "
            + "; ".join(problems)
            + ". Lower --workers-per-trial, --cpus-per-worker or --gpus-per-worker, or add nodes."
        )
    fits = math.floor(have_cpu / need_cpu + 1e-9)
    if need_gpu > 0:
        fits = min(fits, math.floor(have_gpu / need_gpu + 1e-9))
    return max(1, fits)
