"""What a sweep trial costs besides training: under Ray Train with Ray's defaults, under Ray Train
with the settings a sweep gives a Ray it starts itself (``pah_sweep.resources.LOCAL_TRAIN_ENV``: no
preemption watcher, a 0.5 s controller poll), and in Tune's own trial process (the ``tune``
runner, the default for one worker per trial: no Ray Train at all, trial processes reused).

Each round starts a fresh local Ray per setting and runs a search of trials so small that
training takes about a second (2 tasks, 20 images per class, a small CNN), one trial at a time;
the settings alternate within each round so that all see the same machine. Reported: sweep wall
seconds per trial, and Tune's seconds from a trial's start to its last report.

    python benchmarks/trial_overhead.py [--rounds 2] [--trials 3] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save  # noqa: E402
from pah_core.data import resolve_data_root  # noqa: E402

TINY = {
    "model.backbone": "small_cnn",
    "data.train_per_class": 20,
    "data.test_per_class": 10,
    "schedule.max_tasks": 2,
    "schedule.epochs_per_task": 1,
}


# setting: (Ray Train's local settings, --ray-train)
SETTINGS = {
    "ray_defaults": (False, "always"),
    "local_settings": (True, "always"),
    "in_process": (True, "auto"),
}


def one_round(setting: str, trials: int, data_root: str, tmp: str, name: str) -> dict:
    import logging

    import ray

    from pah_sweep.resources import job_env
    from pah_sweep.search import main as sweep_main

    ray.init(
        num_cpus=os.cpu_count(),
        runtime_env={"env_vars": job_env(local=SETTINGS[setting][0])},
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        started = time.perf_counter()
        rc = sweep_main(
            "cifar100",
            [
                "--storage", f"{tmp}/ray",
                "--mlflow-uri", f"{tmp}/mlflow.db",
                "--name", name,
                "--data-root", data_root,
                "--num-samples", str(trials),
                "--max-concurrent", "1",
                "--ray-train", SETTINGS[setting][1],
                # No early stopping: every trial runs both tasks.
                "--grace-tasks", "2",
                *[a for k, v in TINY.items() for a in ("--set", f"{k}={v}")],
            ],
        )  # fmt: skip
        wall = time.perf_counter() - started
    finally:
        ray.shutdown()
    if rc != 0:
        raise RuntimeError(f"sweep {name} exited {rc}")
    tune_seconds = []
    for result_file in Path(tmp, "ray", name).glob("trial_*/result.json"):
        rows = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
        tune_seconds.append(rows[-1]["time_total_s"])
    return {"wall_per_trial": wall / trials, "tune_seconds": tune_seconds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--data-root")
    args = p.parse_args(argv)
    data_root = str(resolve_data_root(args.data_root))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    rows: dict[str, list[dict]] = {key: [] for key in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="pah-bench-") as tmp:
        for r in range(args.rounds):
            for key in rows:
                rows[key].append(one_round(key, args.trials, data_root, tmp, f"{key}-{r}"))
    summary = {
        key: {
            "wall_per_trial_median": statistics.median(x["wall_per_trial"] for x in runs),
            "tune_seconds_median": statistics.median(s for x in runs for s in x["tune_seconds"]),
        }
        for key, runs in rows.items()
    }
    base = summary["ray_defaults"]["wall_per_trial_median"]
    for key, row in summary.items():
        print(
            f"{key:>15}: sweep wall per trial {row['wall_per_trial_median']:5.1f} s "
            f"({base / row['wall_per_trial_median']:.2f}x less than Ray Train's defaults), "
            f"Tune's trial seconds {row['tune_seconds_median']:.1f}"
        )
    results = {
        "benchmark": "trial_overhead",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": TINY,
        "trials_per_round": args.trials,
        "rounds": rows,
        "summary": summary,
    }
    save("trial_overhead", results)
    return results


if __name__ == "__main__":
    main()
