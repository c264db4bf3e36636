"""Study throughput: completed cells per hour for each cells x threads setting that fits the cores,
side by side in one run (issue #28, point 1).

A round runs the same number of cells (default: one per core) under every setting, in an order
rotated round by round: setting CxT runs them C at a time, each with T torch threads, wave after
wave. Each cell is a process running a (shortened) ``cpu``-protocol cell (``benchmarks/cells.py``:
every step the protocol's, fewer of them). Reports cells per hour (median over rounds), each
setting against today's default (one thread per cell, as many cells as cores), the best setting,
and the ``MEASURED_CONCURRENCY`` entry (``pah_sweep/resources.py``) that would make it the sweeps'
default on this many cores; changing that table is a reviewed commit, not this script's.

A setting may name numerics too, ``CxT:OPTION`` with an option of ``benchmarks/numerics.py``
(``2x1:bf16+channels_last``): today's cell and a candidate one, side by side in one run (the
issue's target: a cell at least 1.3x cheaper than today).

    python benchmarks/study_throughput.py [--quick] [--fraction F] [--rounds N] [--settings 2x1,1x2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cells import Cell, base_overrides, run_in_waves  # noqa: E402
from benchmarks.common import cores, interleaved, io_flags, machine, median, save  # noqa: E402
from benchmarks.numerics import OPTIONS  # noqa: E402


def settings_for(n_cores: int) -> list[str]:
    """Every CxT with C * T = the cores, most cells first (today's default, n x 1, first)."""
    return [f"{n_cores // t}x{t}" for t in range(1, n_cores + 1) if n_cores % t == 0]


def parse_setting(text: str) -> tuple[int, int, dict[str, Any]]:
    """``CxT`` or ``CxT:OPTION``: cells at once, threads each, the option's config overrides."""
    shape, _, option = text.partition(":")
    cells, sep, threads = shape.partition("x")
    if not (sep and cells.isdigit() and threads.isdigit() and int(cells) > 0 and int(threads) > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: write CELLSxTHREADS, e.g. 2x1 (or 2x1:bf16)")
    if option and option not in OPTIONS:
        raise argparse.ArgumentTypeError(f"{text!r}: numerics options are {', '.join(OPTIONS)}")
    return int(cells), int(threads), dict(OPTIONS.get(option, {}))


def settings_list(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    for s in items:
        parse_setting(s)
    if not items:
        raise argparse.ArgumentTypeError("name at least one setting, e.g. 2x1,1x2")
    return items


def summarize(rounds: dict[str, list[dict[str, Any]]], n_cells: int, baseline: str) -> dict:
    """Per setting: every round's wall seconds, the median, cells per hour, and the ratio to
    ``baseline``'s cells per hour; the best setting. Pure: numbers in, numbers out."""
    rows = {}
    for setting, runs in rounds.items():
        walls = [r["wall_seconds"] for r in runs]
        rows[setting] = {
            "wall_seconds": walls,
            "median_wall_seconds": median(walls),
            "cells_per_hour": n_cells * 3600 / median(walls),
        }
    base = rows[baseline]["cells_per_hour"] if baseline in rows else None
    for row in rows.values():
        row["vs_default"] = row["cells_per_hour"] / base if base else None
    best = max(rows, key=lambda s: rows[s]["cells_per_hour"])
    return {"rows": rows, "best": best, "default": baseline}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 rounds of cells at 4%% of the images")
    p.add_argument("--fraction", type=float, help="share of the images per class (default 0.2)")
    p.add_argument("--rounds", type=int, help="rounds (default 3; quick 2)")
    p.add_argument("--settings", type=settings_list, help="CxT list (default: all for the cores)")
    p.add_argument("--cells-per-round", type=int, help="cells each setting runs per round")
    p.add_argument(
        "--numerics",
        choices=list(OPTIONS),
        help="also run every setting with this numerics option (as CxT:OPTION)",
    )
    p.add_argument("--method", default="pah")
    io_flags(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    n_cores = cores()
    fraction = args.fraction or (0.04 if args.quick else 0.2)
    rounds = args.rounds or (2 if args.quick else 3)
    settings = args.settings or settings_for(n_cores)
    n_cells = args.cells_per_round or max(parse_setting(s)[0] for s in settings)
    if not args.settings and args.numerics:
        settings += [f"{s}:{args.numerics}" for s in settings]
    overrides = {**base_overrides(fraction, args.synthetic), "method.name": args.method}

    def measure(setting: str) -> dict[str, Any]:
        at_once, threads, numerics = parse_setting(setting)
        make = lambda i: Cell({**overrides, **numerics, "run.seed": i}, threads)  # noqa: E731
        run = run_in_waves(n_cells, at_once, make, args.data_root)
        print(f"  {setting}: {n_cells} cells in {run['wall_seconds']:.0f} s", flush=True)
        return run

    print(
        f"study throughput: {settings} on {n_cores} cores, {n_cells} cells per round, {rounds} rounds"
    )
    measured = interleaved(settings, rounds, measure)
    results = {
        "benchmark": "study_throughput",
        **machine(),
        "quick": args.quick,
        "cell": {"fraction": fraction, "synthetic": args.synthetic, "overrides": overrides},
        "cells_per_round": n_cells,
        "rounds": measured,
        **summarize(measured, n_cells, f"{n_cores}x1"),
    }
    # The sweeps' table is about cells x threads: the best setting without numerics.
    plain = [s for s in results["rows"] if ":" not in s]
    if plain:
        best = max(plain, key=lambda s: results["rows"][s]["cells_per_hour"])
        at, th, _ = parse_setting(best)
        results["suggested_entry"] = f"MEASURED_CONCURRENCY[{n_cores}] = ({at}, {th})"
    print_table(results)
    save("study_throughput", results, args.out)
    return results


def print_table(results: dict[str, Any]) -> None:
    print("\nsetting  cells/hour  vs default  median wall (s)")
    for setting, row in results["rows"].items():
        vs = f"{row['vs_default']:.2f}x" if row["vs_default"] else "-"
        print(
            f"{setting:8} {row['cells_per_hour']:10.1f}  {vs:>10}  {row['median_wall_seconds']:.0f}"
        )
    print(f"best: {results['best']}")
    if "suggested_entry" in results:
        print(
            f"cells x threads for the sweeps: {results['suggested_entry']} (pah_sweep/resources.py)"
        )


if __name__ == "__main__":
    main()
