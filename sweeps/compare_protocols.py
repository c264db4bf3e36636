"""The HPO protocols compared on PAH, as Lee, Hellan, Ericsson, Crowley and Storkey compare them
("Hyperparameter Selection in Continual Learning", arXiv 2404.06466): one search per protocol
(pah_sweep/presets.py's HPO_PROTOCOLS) over the same search space, trial budget and sampler seed, each
followed by its selection's final runs on the same fresh seeds, into one MLflow experiment; then an
MLflow-free export and the report built from it (the ``hpo_protocols`` table: what each protocol
selected, its validation score, its test mean +- std over the final seeds, the compute it spent).

    python sweeps/compare_protocols.py                    # start (61 min on 2 CPU cores, measured)
    python sweeps/compare_protocols.py --resume           # continue after a stop or a crash
    python analysis/paper_tables.py --from-export docs/results/hpo-protocols/export \\
        --out docs/results/hpo-protocols                  # the report again, no training

The default scale is small but learning: full CIFAR-100 tasks (450 training images per class, 10%
held out for validation), 10 tasks, a small CNN, 3 epochs per task. ``--set`` changes it.
``--resume`` skips a protocol whose final runs finished and continues the others through the
search's own ``--resume``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from analysis.store import AnalysisError  # noqa: E402
from pah_core.config import ConfigError  # noqa: E402
from pah_sweep import search  # noqa: E402
from pah_sweep.cli import open_workdir, parse_names, study_arguments  # noqa: E402
from pah_sweep.errors import SweepError  # noqa: E402
from pah_sweep.presets import HPO_PROTOCOLS  # noqa: E402
from pah_sweep.record import (  # noqa: E402
    check_tracking_uri_or_default,
    finished,
)
from pah_sweep.spec import SearchSpec, from_args  # noqa: E402

# Small but learning on 2 CPU cores: every task's full training data, a few epochs, a small CNN.
SCALE = {
    "model.backbone": "small_cnn",
    "schedule.epochs_per_task": 3,
    "data.val_fraction": 0.1,
}
EXPERIMENT = "hpo-protocols"


def sweep_name(protocol: str) -> str:
    return f"hpo-{protocol}"


def run_protocol(protocol: str, args: argparse.Namespace, spec: SearchSpec) -> int:
    """``protocol``'s search and its final runs: the study's spec under the protocol's name."""
    name = sweep_name(protocol)
    if args.resume and finished(spec.mlflow_uri, args.experiment, f"{name}-final"):
        print(f"[compare] {protocol}: finished, skipped", flush=True)
        return 0
    print(f"\n[compare] {protocol}: {HPO_PROTOCOLS[protocol]}", flush=True)
    resume = args.resume and (Path(spec.storage) / name).exists()
    return search.run("cifar100", replace(spec, hpo_protocol=protocol, name=name, resume=resume))


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


def export_and_report(uri: str, experiment: str, out: Path) -> None:
    from analysis.export import ExportSource, write_export
    from analysis.paper_tables import build
    from analysis.store import MlflowSource, client_for, resolve_uri

    source = MlflowSource(client_for(resolve_uri(uri)))
    folder = write_export(source, experiment, out / "export")
    report = build(None, out, source=ExportSource(folder))
    print(f"[compare] export in {folder}; report in {out / 'report.md'}", flush=True)
    for w in report.warnings:
        print(f"[compare] warning: {w}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python sweeps/compare_protocols.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        defaults={"num_samples": 4, "final_seeds": 3},
        helps={
            "num_samples": "trials per search (default 4)",
            "final_seeds": "final runs per selection (3)",
            "first_k": "first_k: the tuning tasks (3)",
            "seed": "the Optuna sampler's seed (default 0)",
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
            for protocol in protocols:
                rc = run_protocol(protocol, args, spec)
                if rc != 0:
                    return rc
        export_and_report(uri, args.experiment, Path(args.out))
    except (SweepError, ConfigError, AnalysisError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[compare] done in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
