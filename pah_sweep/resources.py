"""Ray for a sweep: start or join it, how many trials its resources fit at once, and how a
machine's cores are shared between them (cells x threads)."""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace

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


# -- cells x threads ------------------------------------------------------------------------------

# The CPUs a one-worker trial asks for by default (--cpus-per-worker): with its driver, one core.
ONE_CORE = 1.0 - DRIVER_CPUS

# The best cells x threads measured on a machine with this many cores (cores -> (cells, threads);
# benchmarks/study_throughput.py prints the entry, benchmarks/RESULTS.md holds the measurement).
# Cores not listed keep the rule from before any measurement: one thread per cell, as many cells
# as cores.
# 2 cores: 2x1 47.1 cells per hour against 1x2's 37.5 (0.80x), study_throughput.py at 20% of the
# images, 2 rounds, 2026-12-07 (benchmarks/results/2026-12-07/study_throughput.json).
MEASURED_CONCURRENCY: dict[int, tuple[int, int]] = {2: (2, 1)}


@dataclass(frozen=True)
class Concurrency:
    """How a sweep shares the cores: ``cells`` trials at once, each with ``threads`` torch
    threads (and as many CPUs); ``why``: how it was chosen, recorded with every run."""

    cells: int
    threads: int
    why: str

    def __str__(self) -> str:
        return f"{self.cells}x{self.threads}"

    def tags(self) -> dict[str, str]:
        """The tags on the sweep's parent run and every trial's run."""
        return {"concurrency": str(self), "concurrency_from": self.why}


def parse_concurrency(text: str) -> tuple[int, int] | None:
    """``--concurrency``: ``auto`` (None), or ``CELLSxTHREADS`` such as ``2x1``."""
    if text == "auto":
        return None
    m = re.fullmatch(r"([1-9]\d*)x([1-9]\d*)", text.strip())
    if m is None:
        raise SweepError(
            f"--concurrency {text!r}: write auto, or CELLSxTHREADS (trials at once x torch "
            "threads each), e.g. 2x1 or 1x2"
        )
    return int(m.group(1)), int(m.group(2))


def choose_concurrency(
    cores: int, measured: Mapping[int, tuple[int, int]] | None = None
) -> Concurrency:
    """The cells x threads for a machine of ``cores`` cores: the measured best where there is one
    (``measured``, default ``MEASURED_CONCURRENCY``), else one thread per cell and as many cells
    as cores."""
    measured = MEASURED_CONCURRENCY if measured is None else measured
    if cores in measured:
        cells, threads = measured[cores]
        return Concurrency(cells, threads, f"auto: measured best for {cores} cores")
    return Concurrency(
        max(1, cores), 1, f"auto: {cores} cores, one thread per cell (none measured for {cores})"
    )


def check_concurrency_flags(concurrency: str, workers: int, cpus_per_worker: float) -> None:
    """Before anything starts: ``--concurrency CxT`` sets each trial's one worker and its CPUs,
    which --workers-per-trial and --cpus-per-worker set too; one of the two ways, not both."""
    if parse_concurrency(concurrency) is None:
        return
    if workers != 1 or cpus_per_worker != ONE_CORE:
        raise SweepError(
            f"--concurrency {concurrency} gives each trial one worker with THREADS CPUs, and "
            "--workers-per-trial or --cpus-per-worker say otherwise: drop one of them"
        )


def sweep_concurrency(
    concurrency: str,
    cluster: dict[str, float],
    workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
) -> tuple[Concurrency, float]:
    """The sweep's cells x threads on ``cluster`` (Ray's resources), and the CPUs each trial's
    worker asks for. ``auto`` chooses (``choose_concurrency``, for the CPUs Ray sees) for one-worker
    CPU trials whose CPUs --cpus-per-worker does not set; otherwise the resource flags decide, as
    before: one thread per CPU of a worker, as many cells as fit. Never more cells than fit."""
    asked = parse_concurrency(concurrency)
    if asked is not None:
        cells, threads = asked
        cpus = threads - DRIVER_CPUS
        fits = check_resources(cluster, workers, cpus, gpus_per_worker)
        if cells > fits:
            raise SweepError(
                f"--concurrency {concurrency}: the cluster ({float(cluster.get('CPU', 0)):g} CPUs) "
                f"fits {fits} trial(s) of {threads} thread(s) at once, not {cells}: ask for fewer"
            )
        return Concurrency(cells, threads, "--concurrency"), cpus
    if workers == 1 and gpus_per_worker == 0 and cpus_per_worker == ONE_CORE:
        chosen = choose_concurrency(int(float(cluster.get("CPU", 0)) + 1e-9))
        cpus = chosen.threads - DRIVER_CPUS
        fits = check_resources(cluster, workers, cpus, gpus_per_worker)
        return replace(chosen, cells=min(chosen.cells, fits)), cpus
    fits = check_resources(cluster, workers, cpus_per_worker, gpus_per_worker)
    threads = max(1, round(cpus_per_worker))
    return Concurrency(fits, threads, "the resource flags"), cpus_per_worker
