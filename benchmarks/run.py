"""Run a set of benchmarks on the real CIFAR-100 and write their JSON under benchmarks/out/.

    python benchmarks/run.py [--quick] [--data-root DIR] [--set core|throughput|all]

core (default): loader, trainer, host syncs, Ray; --quick fits in under 10 minutes on 2 CPU cores.
throughput (issue #28): study throughput (cells x threads), numerics, evaluation's share; each
--quick is meant to fit in under 10 minutes on 2 cores, so the set takes about half an hour.
benchmarks/gpu.sh runs the GPU one where a GPU is. Each script also runs on its own; the targets
and the latest numbers are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import (  # noqa: E402
    eval_share,
    host_syncs,
    loader_throughput,
    numerics,
    ray_bench,
    study_throughput,
    trainer,
)

SETS = {
    "core": ("loader_throughput", "trainer", "host_syncs", "ray_bench"),
    "throughput": ("study_throughput", "numerics", "eval_share"),
}
SETS["all"] = SETS["core"] + SETS["throughput"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data-root")
    p.add_argument("--set", choices=sorted(SETS), default="core", dest="which")
    args = p.parse_args(argv)
    root = ["--data-root", args.data_root] if args.data_root else []
    quick = ["--quick"] if args.quick else []
    scripts = {
        "loader_throughput": lambda: loader_throughput.main(
            [*root, "--repeats", "1" if args.quick else "3"]
        ),
        "trainer": lambda: trainer.main([*quick, *root]),
        "host_syncs": lambda: host_syncs.main([*quick, *root]),
        "ray_bench": lambda: ray_bench.main([*quick, *root]),
        "study_throughput": lambda: study_throughput.main([*quick, *root]),
        "numerics": lambda: numerics.main([*quick, *root]),
        "eval_share": lambda: eval_share.main([*quick, *root]),
    }
    started = time.perf_counter()
    for name in SETS[args.which]:
        began = time.perf_counter()
        scripts[name]()
        print(f"[run] {name}: {time.perf_counter() - began:.0f} s", flush=True)
    print(
        f"\nbenchmarks ({args.which}): {time.perf_counter() - started:.0f} s; JSON in "
        f"{Path(__file__).resolve().parent / 'out'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
