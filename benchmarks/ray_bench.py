"""Ray benchmarks on real CIFAR-100, side by side in one process and one local Ray.

2. The engine under Ray Train (1 worker, inside a Tune trial) vs the plain engine: overhead per task
   epoch (target: at most 5%). Both run the same config and checkpoint every task; per-task wall time
   is measured where the work happens: between ``task_end`` events in the plain engine, between
   task reports inside the Ray worker (training, evaluation, checkpoint, report and upload).
   The two alternate for a few rounds so that both see the same machine.
5. A local smoke sweep: share of CPU time busy in trials, the compute ASHA saved against running every
   trial to the end, and the time to the first reported result.

    python benchmarks/ray_bench.py [--quick] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save  # noqa: E402
from pah_core.config import load_config  # noqa: E402
from pah_core.data import TaskStream, load_cifar100, resolve_data_root  # noqa: E402
from pah_core.engine import Engine  # noqa: E402
from pah_core.reporters import Reporter  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class TaskClock(Reporter):
    def __init__(self):
        self.times: list[float] = []

    def run_start(self, config, param_counts, first_task):
        self.times = [time.perf_counter()]

    def task_end(self, e):
        self.times.append(time.perf_counter())


def plain_seconds_per_task(cfg, data_root: str, checkpoint_dir: str) -> list[float]:
    """The plain engine as ``pah_core.train`` runs it (checkpoint at every task boundary)."""
    clock = TaskClock()
    Engine(
        cfg,
        TaskStream(load_cifar100(Path(data_root)), cfg.data, cfg.run.seed),
        [clock],
        checkpoint_dir,
    ).run()
    return [b - a for a, b in zip(clock.times, clock.times[1:], strict=False)]


def ray_seconds_per_task(cfg, data_root: str, storage: str, name: str) -> list[dict[str, float]]:
    """One Tune trial running the engine in a 1-worker TorchTrainer; per task, as measured in the
    worker: the wall time between task boundaries (training, evaluation, checkpoint write, the
    previous report and its upload) and the engine's own share of it."""
    from ray import tune

    from pah_sweep.trial import DRIVER_CPUS, TRAIN, TrialPlumbing, trainable

    plumbing = TrialPlumbing(
        base_config=cfg.to_dict(),
        data_root=data_root,
        storage_path=storage,
        mlflow_uri=None,
        experiment="bench",
        parent_run_id=None,
        sweep_name="bench",
        cpus_per_worker=1 - DRIVER_CPUS,
        runner=TRAIN,  # what this benchmark measures: the engine under Ray Train
    )
    tuner = tune.Tuner(
        trainable(plumbing),
        param_space={},
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
    )
    result = tuner.fit()[0]
    if result.error:
        raise RuntimeError(f"the Ray trial failed: {result.error}")
    df = result.metrics_dataframe
    return [
        {
            "worker_seconds": float(w),
            "engine_seconds": float(e),
            "driver_seconds": float(d),
        }
        for w, e, d in zip(
            df["worker_seconds"], df["task_seconds"], df["time_this_iter_s"], strict=True
        )
    ]


def bench_ray_overhead(
    data_root: str, overrides: list[str], storage: str, rounds: int
) -> dict[str, Any]:
    """Plain engine and Ray trial alternate ``rounds`` times, so both see the same machine states;
    task 1 (worker start-up, data loading) is reported apart and tasks 2..n are compared."""
    import torch

    cfg = load_config(None, overrides)
    torch.set_num_threads(1)  # the Ray worker uses round(0.99) = 1 thread: compare like with like
    plain: list[list[float]] = []
    ray_rows: list[list[dict[str, float]]] = []
    for r in range(rounds):
        plain.append(plain_seconds_per_task(cfg, data_root, f"{storage}/plain-{r}"))
        ray_rows.append(ray_seconds_per_task(cfg, data_root, storage, f"ray-overhead-{r}"))
    p = [s for run in plain for s in run[1:]]
    w = [row["worker_seconds"] for run in ray_rows for row in run[1:]]
    e = [row["engine_seconds"] for run in ray_rows for row in run[1:]]
    p_mean, w_mean = sum(p) / len(p), sum(w) / len(w)
    return {
        "rounds": rounds,
        "plain_seconds_per_task": plain,
        "ray_per_task": ray_rows,
        "plain_mean_tasks_2_n": p_mean,
        "ray_mean_tasks_2_n": w_mean,
        "ray_engine_mean_tasks_2_n": sum(e) / len(e),
        "overhead": w_mean / p_mean - 1,
        "target": "<= 5%",
        "met": w_mean / p_mean - 1 <= 0.05,
        "startup_seconds_task_1_extra": (
            # Tune's clock for the first report: trial and worker start-up, data loading, task 1.
            sum(run[0]["driver_seconds"] for run in ray_rows) / rounds
            - sum(run[0] for run in plain) / rounds
        ),
    }


def bench_smoke_sweep(data_root: str, storage: str, mlflow_db: str) -> dict[str, Any]:
    import ray

    from pah_sweep.search import main as sweep_main

    started = time.time()
    rc = sweep_main(
        "cifar100",
        [
            "--preset",
            "smoke",
            "--storage",
            storage,
            "--mlflow-uri",
            mlflow_db,
            "--name",
            "bench-smoke",
            "--data-root",
            data_root,
        ],
    )
    wall = time.time() - started
    if rc != 0:
        raise RuntimeError(f"smoke sweep exited {rc}")
    cpus = float(ray.cluster_resources().get("CPU", 1))
    trials = []
    for result_file in Path(storage, "bench-smoke").glob("trial_*/result.json"):
        rows = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
        if rows:
            trials.append(rows)
    n_run = max(r[-1]["tasks_done"] for r in trials)
    busy = sum(
        r[-1]["time_total_s"] for r in trials
    )  # each trial holds ~1 CPU (0.99 worker + 0.01 driver)
    done = sum(r[-1]["tasks_done"] for r in trials)
    # What the stopped trials would have cost to finish, at their own mean seconds per task.
    saved = sum(
        (n_run - r[-1]["tasks_done"]) * (r[-1]["time_total_s"] / r[-1]["tasks_done"])
        for r in trials
    )
    first = min(r[0]["timestamp"] for r in trials) - started
    return {
        "wall_seconds": wall,
        "trials": len(trials),
        "cluster_cpus": cpus,
        "busy_share": busy / (wall * cpus),
        "tasks_trained": done,
        "tasks_if_no_asha": len(trials) * n_run,
        "asha_saved_seconds": saved,
        "asha_saved_share": saved / (busy + saved),
        "seconds_to_first_result": first,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data-root")
    args = p.parse_args(argv)
    data_root = str(resolve_data_root(args.data_root))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from pah_sweep.resources import init_ray

    tasks = 3 if args.quick else 5
    overrides = [
        "data.train_per_class=200",
        "data.test_per_class=50",
        "schedule.epochs_per_task=1",
        f"schedule.max_tasks={tasks}",
        "run.progress=false",
    ]
    with tempfile.TemporaryDirectory(prefix="pah-bench-") as tmp:
        init_ray(None)
        try:
            results = {
                "benchmark": "ray",
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                "quick": args.quick,
                "ray_overhead": bench_ray_overhead(
                    data_root, overrides, f"{tmp}/ray", rounds=2 if args.quick else 3
                ),
                "smoke_sweep": bench_smoke_sweep(data_root, f"{tmp}/sweep", f"{tmp}/mlflow.db"),
            }
        finally:
            ray.shutdown()
    ro, sw = results["ray_overhead"], results["smoke_sweep"]
    print(
        f"\n2. Ray Train (1 worker) vs plain engine, seconds per task (tasks 2..{tasks}): "
        f"{ro['ray_mean_tasks_2_n']:.2f} vs {ro['plain_mean_tasks_2_n']:.2f} -> overhead {100 * ro['overhead']:+.1f}% "
        f"(target <= 5%; engine alone in the worker {ro['ray_engine_mean_tasks_2_n']:.2f}); "
        f"task 1 start-up extra {ro['startup_seconds_task_1_extra']:.1f} s"
    )
    print(
        f"5. smoke sweep: {sw['trials']} trials in {sw['wall_seconds']:.0f} s; CPU busy in trials "
        f"{100 * sw['busy_share']:.0f}%; ASHA trained {sw['tasks_trained']}/{sw['tasks_if_no_asha']} task(s), saving "
        f"{sw['asha_saved_seconds']:.0f} s ({100 * sw['asha_saved_share']:.0f}% of trial compute); first result after "
        f"{sw['seconds_to_first_result']:.0f} s"
    )
    save("ray", results)
    return results


if __name__ == "__main__":
    main()
