"""The HPO protocols compared on PAH, as Lee, Hellan, Ericsson, Crowley and Storkey compare them
("Hyperparameter Selection in Continual Learning", arXiv 2404.06466): one search per protocol
(pah_sweep/cli.py's HPO_PROTOCOLS) over the same search space, trial budget and sampler seed, each
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from analysis.store import AnalysisError  # noqa: E402
from pah_core.config import ConfigError  # noqa: E402
from pah_core.typed_dicts import parse_overrides  # noqa: E402
from pah_sweep import search  # noqa: E402
from pah_sweep.cli import (  # noqa: E402
    HPO_PROTOCOLS,
    SweepError,
    count,
    open_workdir,
    parse_names,
    study_arguments,
)
from pah_sweep.record import (  # noqa: E402
    check_tracking_uri_or_default,
    finished,
)

# Small but learning on 2 CPU cores: every task's full training data, a few epochs, a small CNN.
SCALE = {
    "model.backbone": "small_cnn",
    "schedule.epochs_per_task": 3,
    "data.val_fraction": 0.1,
}
EXPERIMENT = "hpo-protocols"


def sweep_name(protocol: str) -> str:
    return f"hpo-{protocol}"


def run_protocol(protocol: str, args: argparse.Namespace, uri: str, storage: Path) -> int:
    name = sweep_name(protocol)
    if args.resume and finished(uri, args.experiment, f"{name}-final"):
        print(f"[compare] {protocol}: finished, skipped", flush=True)
        return 0
    print(f"\n[compare] {protocol}: {HPO_PROTOCOLS[protocol]}", flush=True)
    argv = [
        "--hpo-protocol", protocol,
        "--name", name,
        "--num-samples", str(args.num_samples),
        "--seed", str(args.seed),
        "--first-k", str(args.first_k),
        "--final-seeds", str(args.final_seeds),
        "--storage", str(storage),
        "--mlflow-uri", uri,
        "--experiment", args.experiment,
        "--preset", "paper",
        *[a for k, v in {**SCALE, **args.overrides}.items() for a in ("--set", f"{k}={v}")],
        *(["--resume"] if args.resume and (storage / name).exists() else []),
        *(["--verbose"] if args.verbose else []),
    ]  # fmt: skip
    return search.main("cifar100", argv)


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
    p.add_argument("--num-samples", type=count, default=4, help="trials per search (default 4)")
    p.add_argument("--final-seeds", type=count, default=3, help="final runs per selection (3)")
    p.add_argument("--first-k", type=count, default=3, help="first_k: the tuning tasks (3)")
    p.add_argument("--seed", type=int, default=0, help="the Optuna sampler's seed (default 0)")
    return study_arguments(p, "runs/hpo-protocols", EXPERIMENT, "docs/results/hpo-protocols")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.perf_counter()
    workdir = Path(args.workdir).resolve()
    uri = check_tracking_uri_or_default(str(workdir / "mlflow.db"))
    try:
        args.overrides = parse_overrides(args.overrides)
        protocols = parse_names(args.protocols, HPO_PROTOCOLS, "--protocols")
        if not args.report_only:
            open_workdir(workdir, args.resume)
            for protocol in protocols:
                rc = run_protocol(protocol, args, uri, workdir / "ray")
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
