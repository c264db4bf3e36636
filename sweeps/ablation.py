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

from pah_core.methods import registered_methods  # noqa: E402
from pah_sweep.cli import grid_arguments, parse_names  # noqa: E402
from pah_sweep.errors import exit_code  # noqa: E402
from pah_sweep.grid import run_grid  # noqa: E402
from pah_sweep.record import best_config_of_sweep, check_tracking_uri_or_default  # noqa: E402
from pah_sweep.spec import GridSpec, from_args  # noqa: E402

# PAH's ablation variants, declared in its file: name -> overrides of the base config.
VARIANTS: dict[str, dict[str, Any]] = registered_methods()["pah"].ablation_variants
DEFAULT_VARIANTS = list(registered_methods()["pah"].default_ablations)


def parser() -> argparse.ArgumentParser:
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return exit_code(lambda: run(from_args(GridSpec, args), args.variants, args.from_sweep))


def run(spec: GridSpec, variants: str, from_sweep: str | None) -> int:
    """The ``--variants`` grid, on the best trial of search ``from_sweep`` when given."""
    names = parse_names(variants, VARIANTS, "--variants")
    base = {}
    if from_sweep:
        uri = check_tracking_uri_or_default(spec.mlflow_uri)
        base = best_config_of_sweep(uri, spec.experiment or f"pah-{spec.dataset}", from_sweep)
    return run_grid(
        spec.dataset, spec, "ablation", {n: VARIANTS[n] for n in names}, spec.seeds, base
    )


if __name__ == "__main__":
    sys.exit(main())
