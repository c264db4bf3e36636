"""The demo (`make demo`): a small real PAH search on CIFAR-100 that learns, a fine-tune reference
under the same protocol, and a few lines on what just happened.

    python sweeps/demo.py [--storage runs/ray_results] [--mlflow-uri runs/mlflow.db] [--verbose]

1. ``sweeps/cifar100_search.py --preset demo``: 4 Optuna trials (the paper's defaults first), two
   at a time, ASHA stopping weak ones at task boundaries; 4 tasks of 10 classes, 50 images per
   class, 8 epochs per task (sweeps/cli.py's "demo" preset).
2. ``sweeps/baselines.py --methods finetune --preset demo``: the same protocol, no protection
   against forgetting.
3. The summary, read back from the two sweeps' MLflow parent runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from pah_core.config import load_config  # noqa: E402
from pah_core.tracking import optuna_storage_beside, ui_commands  # noqa: E402
from sweeps import (  # noqa: E402
    REPO,  # noqa: E402
    baselines,
    search,
)
from sweeps.record import check_tracking_uri_or_default, sweep_parent_filter  # noqa: E402

PRESET = "demo"
CHANCE = 0.10  # 10 classes per task, the task id given


def parent_summary(mlflow_uri: str, experiment: str, sweep: str) -> dict[str, Any]:
    """A finished sweep's trials and best trial, as its parent run holds them."""
    from mlflow.artifacts import load_dict
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    exp = client.get_experiment_by_name(experiment)
    (parent,) = client.search_runs([exp.experiment_id], filter_string=sweep_parent_filter(sweep))
    base = parent.info.artifact_uri
    return {
        "experiment_id": exp.experiment_id,
        "parent_run_id": parent.info.run_id,
        "trials": load_dict(f"{base}/trials.json"),
        "best": load_dict(f"{base}/best_config.json"),
    }


def final_lines(pah: dict[str, Any], ref: dict[str, Any], n_run: int) -> list[str]:
    """What the user just saw, in a few lines: the paper-defaults trial and the best trial against
    the fine-tune reference, and the compute ASHA saved."""

    def shown(t: dict[str, Any]) -> str:
        if t.get("avg_acc") is None or t.get("forgetting") is None:
            return f"no result ({t.get('status', 'failed')})"
        return f"acc {100 * t['avg_acc']:.1f}%, forgetting {100 * t['forgetting']:.1f}%"

    trials = pah["trials"]
    # The search evaluates the paper's defaults first: Tune's first trial.
    defaults = trials[0]
    best, finetune = pah["best"], ref["best"]
    trained = sum(int(t["tasks_done"]) for t in trials)
    stopped = [t for t in trials if t["status"] == "stopped early (ASHA)"]
    full = len(trials) * n_run
    lines = [
        f"PAH, paper defaults:  {shown(defaults)} after {defaults['tasks_done']} tasks "
        f"(10 classes each; chance {100 * CHANCE:.0f}%)",
        f"PAH, best of {len(trials)} trials ({best['trial']}):  {shown(best)}",
        f"fine-tune reference:  {shown(finetune)}",
        f"ASHA stopped {len(stopped)} of {len(trials)} trials early: {trained} of {full} "
        f"trial-tasks trained ({100 * (1 - trained / full):.0f}% of the training saved)",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    # Reading the two parent runs' summaries must not draw a progress bar per file.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    p = argparse.ArgumentParser(prog="python sweeps/demo.py", description=__doc__.splitlines()[0])
    p.add_argument("--storage", default="runs/ray_results")
    p.add_argument("--mlflow-uri", default="runs/mlflow.db")
    p.add_argument("--experiment", default="pah-demo")
    p.add_argument("--data-root")
    p.add_argument("--verbose", action="store_true", help="Ray's own output too")
    args = p.parse_args(argv)
    started = time.perf_counter()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = {"search": f"demo-search-{stamp}", "finetune": f"demo-finetune-{stamp}"}
    uri = check_tracking_uri_or_default(args.mlflow_uri)
    common = [
        "--preset",
        PRESET,
        "--storage",
        args.storage,
        "--mlflow-uri",
        uri,
        "--experiment",
        args.experiment,
        *(["--data-root", args.data_root] if args.data_root else []),
        *(["--verbose"] if args.verbose else []),
    ]
    print("[demo] 1/2: a PAH search (4 trials, 2 at a time, ASHA) on real CIFAR-100", flush=True)
    rc = search.main("cifar100", [*common, "--name", names["search"]])
    if rc != 0:
        return rc
    print("\n[demo] 2/2: the fine-tune reference, same data and schedule", flush=True)
    # The seed of the search's trials: the base config's.
    seed = load_config(REPO / "configs" / "cifar100_pah.yaml").run.seed
    rc = baselines.main(
        [*common, "--name", names["finetune"], "--methods", "finetune", "--seeds", str(seed)]
    )
    if rc != 0:
        return rc
    pah = parent_summary(uri, args.experiment, names["search"])
    ref = parent_summary(uri, args.experiment, names["finetune"])
    n_run = int(pah["best"]["tasks_done"])  # the best trial is one that ran every task
    print(f"\n[demo] done in {time.perf_counter() - started:.0f} s. What you just saw:")
    for line in final_lines(pah, ref, n_run):
        print(f"  {line}")
    print("  browse the runs (parent run per sweep, one child per trial):")
    for line in ui_commands(uri, pah["experiment_id"]):
        print(f"    {line}")
    print(f"  the Optuna study: optuna-dashboard {optuna_storage_beside(uri)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
