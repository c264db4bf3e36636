"""The HPO protocols compared on PAH, as Lee, Hellan, Ericsson, Crowley and Storkey compare them
("Hyperparameter Selection in Continual Learning", arXiv 2404.06466), replicated: for each sampler
seed (``--replicates`` of them from ``--seed``), one search per protocol (pah_sweep/presets.py's
HPO_PROTOCOLS) over the same search space and trial budget, each followed by its selection's final
runs on the same fresh seeds, into one MLflow experiment; then an MLflow-free export and the report
built from it (analysis/hpo_replicated.py: per protocol, the selections' final accuracy and
forgetting over searches, regret, agreement and compute).

    python sweeps/compare_protocols.py                    # start: 3 replicates of 16 trials
    python sweeps/compare_protocols.py --resume           # continue after a stop or a crash
    python analysis/paper_tables.py --from-export docs/results/hpo-protocols/export \\
        --out docs/results/hpo-protocols                  # the report again, no training

The default scale is small but learning: full CIFAR-100 tasks (450 training images per class, 10%
held out for validation), 10 tasks, a small CNN, 3 epochs per task. ``--set`` changes it.
``first_k`` tunes on the first ``--first-k`` tasks; ``first_k_reordered`` (protocol transfer) on
the first half, evaluating on the other half with its classes reordered.
Replicate-first (every protocol of seed 0, then of seed 1, ...), the export written after each
search with the finished searches only (one cut off stays out until ``--resume`` finishes it):
``--resume`` skips a search whose final runs finished, in the store or in the export (a
study continued in a new store), and continues the others through the search's own ``--resume``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runs from a plain checkout too

from analysis.store import AnalysisError  # noqa: E402
from pah_core.config import ConfigError, load_config  # noqa: E402
from pah_sweep import search  # noqa: E402
from pah_sweep.cli import count, open_workdir, parse_names, study_arguments  # noqa: E402
from pah_sweep.errors import SweepError  # noqa: E402
from pah_sweep.presets import HPO_PROTOCOLS, PRESETS, TRANSFER_PROTOCOLS  # noqa: E402
from pah_sweep.record import (  # noqa: E402
    check_tracking_uri_or_default,
)
from pah_sweep.spec import SearchSpec, from_args  # noqa: E402
from pah_sweep.study_export import export_and_report, run_steps, sweep_done  # noqa: E402

# Small but learning on 2 CPU cores: every task's full training data, a few epochs, a small CNN.
SCALE = {
    "model.backbone": "small_cnn",
    "schedule.epochs_per_task": 3,
    "data.val_fraction": 0.1,
}
EXPERIMENT = "hpo-protocols"


def sweep_name(protocol: str, seed: int) -> str:
    return f"hpo-{protocol}-s{seed}"


def run_protocol(
    protocol: str, replicate: int, args: argparse.Namespace, spec: SearchSpec
) -> int | None:
    """``protocol``'s search with the replicate's sampler seed, and its final runs (the same final
    seeds in every replicate, so that regret compares selections on the same runs); None when both
    finished before (--resume): nothing ran."""
    seed = spec.seed + replicate
    name = sweep_name(protocol, seed)
    if protocol in TRANSFER_PROTOCOLS:
        spec = replace(spec, first_k=transfer_k(spec))
    if args.resume and sweep_done(spec.mlflow_uri, args.experiment, args.out, f"{name}-final"):
        print(f"[compare] {name}: finished, skipped", flush=True)
        return None
    print(f"\n[compare] {name}: {HPO_PROTOCOLS[protocol]}, sampler seed {seed}", flush=True)
    resume = args.resume and (Path(spec.storage) / name).exists()
    tags = {**spec.tags, "replicate": str(replicate)}
    return search.run(
        "cifar100",
        replace(spec, hpo_protocol=protocol, name=name, resume=resume, seed=seed, tags=tags),
    )


def transfer_k(spec: SearchSpec) -> int:
    """A transfer protocol tunes on the first half of the study's tasks and evaluates on the
    other half, its classes reordered (issue #29: Cha & Cho's transfer, within CIFAR-100)."""
    config = REPO / "configs" / "cifar100_pah.yaml"
    return (
        load_config(config, {**PRESETS["cifar100"][spec.preset], **spec.overrides}).data.n_tasks
        // 2
    )


def study_spec(args: argparse.Namespace, uri: str, storage: Path) -> SearchSpec:
    """What every search of the study shares: its flags, the study's scale under --set, the
    study's store and experiment, the "paper" preset (no overrides of its own)."""
    spec = from_args(SearchSpec, args)
    return replace(
        spec,
        preset="paper",
        overrides={**SCALE, **spec.overrides},
        storage=str(storage),
        mlflow_uri=uri,
        experiment=args.experiment,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python sweeps/compare_protocols.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--replicates",
        type=count,
        default=3,
        help="independent searches per protocol, sampler seeds --seed, --seed+1, ... (default 3)",
    )
    p.add_argument(
        "--protocols",
        default=",".join(HPO_PROTOCOLS),
        help=f"comma-separated, from: {', '.join(HPO_PROTOCOLS)} (default: all)",
    )
    # Every other search flag (the resources, --set, --objectives, ...) goes to every search.
    return study_arguments(
        p,
        "runs/hpo-protocols",
        EXPERIMENT,
        "docs/results/hpo-protocols",
        SearchSpec,
        exclude=("method", "points", "grace_tasks", "hpo_protocol"),
        defaults={"num_samples": 16, "final_seeds": 3},
        helps={
            "num_samples": "trials per search (default 16)",
            "final_seeds": "final runs per selection (3)",
            "first_k": "first_k: the tuning tasks (3)",
            "seed": "the first replicate's Optuna sampler seed (default 0)",
        },
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.perf_counter()
    workdir = Path(args.workdir).resolve()
    uri = check_tracking_uri_or_default(str(workdir / "mlflow.db"))
    try:
        spec = study_spec(args, uri, workdir / "ray")
        protocols = parse_names(args.protocols, HPO_PROTOCOLS, "--protocols")
        if not args.report_only:
            open_workdir(workdir, args.resume)
            steps = [
                lambda p=p, r=r: run_protocol(p, r, args, spec)
                for r in range(args.replicates)
                for p in protocols
            ]
            if (rc := run_steps(steps, uri, args.experiment, args.out, finished_only=True)) != 0:
                return rc
        else:
            export_and_report(uri, args.experiment, args.out, finished_only=True)
    except (SweepError, ConfigError, AnalysisError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[compare] done in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
