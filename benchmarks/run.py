"""Run every benchmark on the real CIFAR-100 and write their JSON under benchmarks/out/.

    python benchmarks/run.py [--quick] [--data-root DIR]

--quick fits in under 10 minutes on 2 CPU cores. Each script also runs on its own; the targets and
the latest numbers are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import host_syncs, loader_throughput, ray_bench, trainer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data-root")
    args = p.parse_args(argv)
    root = ["--data-root", args.data_root] if args.data_root else []
    quick = ["--quick"] if args.quick else []
    started = time.perf_counter()
    loader_throughput.main([*root, "--repeats", "1" if args.quick else "3"])
    trainer.main([*quick, *root])
    host_syncs.main([*quick, *root])
    ray_bench.main([*quick, *root])
    print(
        f"\nall benchmarks: {time.perf_counter() - started:.0f} s; JSON in {Path(__file__).resolve().parent / 'out'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
