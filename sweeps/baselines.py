"""Methods x seeds under one protocol: every registered method (or --methods) on the same data,
backbone, task order and metrics, as a grid of Ray Tune trials logged to MLflow.

    python sweeps/baselines.py --dataset cifar100 --preset smoke --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from pah_core.config import ConfigError  # noqa: E402
from pah_core.methods import registered_methods  # noqa: E402
from pah_sweep.cli import SweepError, grid_arguments, parse_names, parse_seeds  # noqa: E402
from pah_sweep.grid import run_grid  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    methods = sorted(registered_methods())
    p = grid_arguments(
        argparse.ArgumentParser(
            prog="python sweeps/baselines.py", description=__doc__.splitlines()[0]
        )
    )
    p.add_argument(
        "--methods", default=",".join(methods), help=f"comma-separated, from: {', '.join(methods)}"
    )
    args = p.parse_args(argv)
    try:
        chosen = parse_names(args.methods, methods, "--methods")
        variants = {m: {"method.name": m} for m in chosen}
        return run_grid(args.dataset, args, "baselines", variants, parse_seeds(args.seeds))
    except (SweepError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
