"""Single-run CLI: ``python -m pah_core.train --config configs/smoke.yaml [key=value ...] --out DIR``.

Writes DIR/results.json (config, accuracy matrix, avg_acc, forgetting, BWT, timings, parameter
counts) and DIR/checkpoints/task_NN/state.pt at each task boundary; ``--resume`` continues from there.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
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
        "--overwrite",
        action="store_true",
        help="replace the run already in OUT (its results.json and checkpoints are deleted)",
    )
    p.add_argument(
        "--list-methods", action="store_true", help="list the available methods and exit"
    )
    return p


# Pseudo-filesystems: writing a run there fails late or does something else entirely.
_NOT_STORAGE = ("/proc", "/sys", "/dev")


class OutputError(ValueError):
    pass


def check_output_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse an --out that cannot hold a run, or that holds one the user did not ask to touch;
    checked before any data is loaded or anything is written."""
    if any(out == Path(p) or Path(p) in out.parents for p in _NOT_STORAGE):
        raise OutputError(
            f"--out {out} is under a system pseudo-filesystem: choose a normal folder"
        )
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is an existing file, not a folder: choose another --out")
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise OutputError(f"--out {out}: {existing} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: {existing} is not writable by this user")
    held = [p.name for p in (out / "results.json", out / "checkpoints") if p.exists()]
    if held and not (resume or overwrite):
        raise OutputError(
            f"--out {out} already holds a run ({', '.join(held)}): pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )
    if resume and overwrite:
        raise OutputError("--resume and --overwrite contradict each other: choose one")


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

    from pah_core.device import DeviceError, pick_device
    from pah_core.numerics import Numerics, NumericsError

    out = Path(args.out).resolve()
    try:
        check_output_dir(out, args.resume or bool(args.resume_from), args.overwrite)
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        # Before the dataset loads: a missing GPU, or bf16 it cannot do, is known at once.
        Numerics.of(cfg.run, pick_device(cfg.run.device))
    except (DeviceError, NumericsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        lock = claim_output_dir(out)
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        # Again under the lock: a run that ended between the first check and the lock has left
        # its results, which this run must not replace unasked.
        check_output_dir(out, args.resume or bool(args.resume_from), args.overwrite)
        return _run(args, cfg, out)
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        lock.release()


def claim_output_dir(out: Path):
    """One writer per --out: its lock (pah_core.locks), taken before anything in it is touched, so
    a second run, a --resume or an --overwrite of a run still training is refused, naming it. A
    folder created here only to hold the lock is removed again when the run leaves nothing."""
    from pah_core.locks import LockError, lock_folder

    created = not out.exists()
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        lock = lock_folder(out, f"--out {out}")
    except LockError as e:
        raise OutputError(str(e)) from None
    if created:
        release = lock.release

        def release_and_tidy() -> None:
            release()
            with contextlib.suppress(OSError):  # only when empty: a run that wrote nothing
                out.rmdir()

        lock.release = release_and_tidy
    return lock


def _run(args, cfg, out: Path) -> int:
    from pah_core.checkpoints import CheckpointError
    from pah_core.data import DataError, TaskStream, load_source
    from pah_core.engine import Engine
    from pah_core.reporters import ConsoleReporter, JSONReporter

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
        stream = TaskStream(load_source(cfg.data, args.data_root), cfg.data, cfg.run.seed)
        if args.overwrite:  # only now: a bad config or missing data leaves the old run intact
            (out / "results.json").unlink(missing_ok=True)
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
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
