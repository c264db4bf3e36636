"""Methods x seeds under one protocol: every registered method (or --methods) on the same data,
backbone, task order and metrics, as a grid of Ray Tune trials logged to MLflow.

    python sweeps/baselines.py --dataset cifar100 --preset smoke --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from pah_core.methods import registered_methods  # noqa: E402
from pah_sweep.cli import grid_arguments, parse_names  # noqa: E402
from pah_sweep.errors import exit_code  # noqa: E402
from pah_sweep.grid import run_grid  # noqa: E402
from pah_sweep.spec import GridSpec, from_args  # noqa: E402


def parser() -> argparse.ArgumentParser:
    methods = sorted(registered_methods())
    p = grid_arguments(
        argparse.ArgumentParser(
            prog="python sweeps/baselines.py", description=__doc__.splitlines()[0]
        )
    )
    p.add_argument(
        "--methods", default=",".join(methods), help=f"comma-separated, from: {', '.join(methods)}"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    methods = sorted(registered_methods())
    args = parser().parse_args(argv)
    return exit_code(
        lambda: run(from_args(GridSpec, args), parse_names(args.methods, methods, "--methods"))
    )


def run(spec: GridSpec, methods: list[str]) -> int:
    """``methods`` x ``spec.seeds`` on ``spec.dataset``; a bad input: one line, exit 2."""
    variants = {m: {"method.name": m} for m in methods}
    return exit_code(lambda: run_grid(spec.dataset, spec, "baselines", variants, spec.seeds))


if __name__ == "__main__":
    sys.exit(main())
