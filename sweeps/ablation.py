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
from sweeps.cli import SweepError, grid_arguments, parse_names, parse_seeds  # noqa: E402
from sweeps.grid import run_grid  # noqa: E402
from sweeps.record import best_config_of_sweep, check_tracking_uri_or_default  # noqa: E402

# name -> overrides of the base config. "full" is the base itself.
VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "ce_only": {"method.pah.use_sm": False, "method.pah.use_sp": False},
    "ce+sm": {"method.pah.use_sp": False},
    "ce+sp": {"method.pah.use_sm": False},
    "proto_5": {"model.prototype_size": 5},
    "proto_10": {"model.prototype_size": 10},
    "proto_16": {"model.prototype_size": 16},
    "proto_20": {"model.prototype_size": 20},
    "init_random": {"model.prototype_init": "random"},
    "init_resize": {"model.prototype_init": "semantic_resize"},
    "proto_rgb": {"model.prototype_channels": 3},
    "proto_input_resize": {"model.prototype_input": "resize"},
    # The poster's 1/(k-1) mean over old tasks instead of the official code's sum (the default).
    "kl_mean": {"method.pah.old_task_reduction": "mean"},
    # Every choice of the official code (pah-method.md sections 1.4, 1.5 and 7), also those that
    # equal our defaults, so the variant stays official whatever the base config says. Pretraining
    # and the schedule are the protocol's, not the method's: they come from the base config.
    "official_code": {
        "method.pah.kl_direction": "student_teacher",
        "method.pah.old_task_reduction": "sum",
        "method.pah.proto_step_keeps_main_grad": True,
        "method.pah.temperature": 2.0,
        "method.pah.lambda_sm": 0.5,
        "method.pah.lambda_sp": 1.0,
        "schedule.eval_bn": "train",
        "model.prototype_bn": "batch",
        "model.prototype_init": "semantic_crop",
        "model.prototype_input": "native",
        "model.prototype_size": 10,
        "model.prototype_channels": 1,
        "model.hyper_width": 16,
        "model.hyper_depth": 1,
        "data.augment": False,
        "data.normalization": "official",
        "optim.lr_backbone": 1e-4,
        "optim.lr_hypernet": 1e-3,
        "optim.lr_prototypes": 1e-3,
        "optim.weight_decay": 0.01,
    },
}
DEFAULT_VARIANTS = [
    "full",
    "ce_only",
    "ce+sm",
    "ce+sp",
    "proto_5",
    "proto_16",
    "proto_20",
    "init_random",
]


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
