"""Single-run CLI: ``python -m pah_core.train --config configs/smoke.yaml [key=value ...] --out DIR``.

Writes DIR/results.json (config, accuracy matrix, avg_acc, forgetting, BWT, timings, parameter
counts) and DIR/checkpoints/task_NN/state.pt at each task boundary; ``--resume`` continues from there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pah_core.config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pah_core.train", description=__doc__.splitlines()[0]
    )
    p.add_argument("--config", help="YAML config (see configs/); omitted: the built-in defaults")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. model.hyper_width=64",
    )
    p.add_argument("--out", help="output folder for results.json and checkpoints")
    p.add_argument(
        "--data-root", help="dataset folder (default: $PAH_DATA_ROOT, else ~/.cache/pah/data)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint under OUT/checkpoints",
    )
    p.add_argument(
        "--resume-from", metavar="CHECKPOINT", help="continue from this task_NN checkpoint folder"
    )
    p.add_argument(
        "--list-methods", action="store_true", help="list the available methods and exit"
    )
    return p


def _latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / "checkpoints").glob("task_*/state.pt"))
    return found[-1].parent if found else None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list_methods:
        from pah_core.methods import registered_methods

        for name, cls in sorted(registered_methods().items()):
            print(f"{name:10s} {cls.summary}")
        return 0
    if not args.out:
        print(
            "error: --out DIR is required (where results.json and checkpoints go)", file=sys.stderr
        )
        return 2
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2

    from pah_core.data import DataError, TaskStream, load_source
    from pah_core.engine import CheckpointError, Engine
    from pah_core.reporters import ConsoleReporter, JSONReporter

    out = Path(args.out).resolve()
    resume = Path(args.resume_from) if args.resume_from else None
    if args.resume and resume is None:
        resume = _latest_checkpoint(out)
        if resume is None:
            print(
                f"error: --resume given but no checkpoint under {out / 'checkpoints'}",
                file=sys.stderr,
            )
            return 2
    try:
        stream = TaskStream(load_source(cfg.data, args.data_root), cfg.data)
        engine = Engine(
            cfg,
            stream,
            reporters=[ConsoleReporter(progress=cfg.run.progress), JSONReporter(out)],
            checkpoint_dir=out / "checkpoints",
        )
        results = engine.run(resume_from=resume)
    except (DataError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"results: {out / 'results.json'}  (avg acc {100 * results['avg_acc']:.2f}%, "
        f"forgetting {100 * results['forgetting']:.2f}%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
