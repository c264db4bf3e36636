"""PAH ablations: a grid (not Optuna) of component variants x seeds, every cell run to the end.

    python sweeps/ablation.py --dataset cifar100 --preset smoke --seeds 0,1,2
    python sweeps/ablation.py --dataset cifar100 --preset paper --from-sweep <search name>

Each variant changes one thing relative to the base config (a config file, --set overrides, or the
best trial of an earlier search with --from-sweep). Child runs carry the tag ``variant``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from pah_core.config import ConfigError  # noqa: E402
from pah_core.methods import registered_methods  # noqa: E402
from pah_sweep.cli import SweepError, grid_arguments, parse_names, parse_seeds  # noqa: E402
from pah_sweep.grid import run_grid  # noqa: E402
from pah_sweep.record import best_config_of_sweep, check_tracking_uri_or_default  # noqa: E402

# PAH's ablation variants, declared in its file: name -> overrides of the base config.
VARIANTS: dict[str, dict[str, Any]] = registered_methods()["pah"].ablation_variants
DEFAULT_VARIANTS = list(registered_methods()["pah"].default_ablations)


def main(argv: list[str] | None = None) -> int:
    p = grid_arguments(
        argparse.ArgumentParser(
            prog="python sweeps/ablation.py", description=__doc__.splitlines()[0]
        )
    )
    p.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from: {', '.join(VARIANTS)} (default: {','.join(DEFAULT_VARIANTS)})",
    )
    p.add_argument(
        "--from-sweep", help="start from the best trial of this earlier search (same --experiment)"
    )
    args = p.parse_args(argv)
    try:
        names = parse_names(args.variants, VARIANTS, "--variants")
        base = {}
        if args.from_sweep:
            uri = check_tracking_uri_or_default(args.mlflow_uri)
            base = best_config_of_sweep(
                uri, args.experiment or f"pah-{args.dataset}", args.from_sweep
            )
        return run_grid(
            args.dataset,
            args,
            "ablation",
            {n: VARIANTS[n] for n in names},
            parse_seeds(args.seeds),
            base,
        )
    except (SweepError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
