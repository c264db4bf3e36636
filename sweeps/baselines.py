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
from sweeps.search import SweepError, common_arguments, execute, grid_tuner, parse_seeds, prepare  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    methods = sorted(registered_methods())
    p = common_arguments(
        argparse.ArgumentParser(
            prog="python sweeps/baselines.py", description=__doc__.splitlines()[0]
        )
    )
    p.add_argument(
        "--methods", default=",".join(methods), help=f"comma-separated, from: {', '.join(methods)}"
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds (default 0,1,2)")
    p.add_argument("--dataset", choices=["cifar100", "tinyimagenet"], default="cifar100")
    args = p.parse_args(argv)
    dataset = args.dataset
    try:
        chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in chosen if m not in methods]
        if unknown or not chosen:
            raise SweepError(f"--methods: unknown {unknown}; available: {', '.join(methods)}")
        seeds = parse_seeds(args.seeds)
        variants = {m: {"method.name": m} for m in chosen}
        setup = prepare(
            dataset, args, num_samples=len(chosen) * len(seeds), kind="baselines", variants=variants
        )
        from ray import tune

        space = {"variant": tune.grid_search(chosen), "run.seed": tune.grid_search(seeds)}
        return execute(setup, lambda trainable, s: grid_tuner(trainable, s, space))
    except (SweepError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
