"""One GPU (issue #28, point 4): trials packed on it against one at a time, and PAH's step eager
against compiled and CUDA-graph-captured, side by side in one run. ``benchmarks/gpu.sh`` runs it
in one command on a machine with a GPU.

1. Packing: k cells on the one GPU at once (each its own process, as k trials with 1/k of a GPU
   each: Ray's fractional GPUs only set CUDA_VISIBLE_DEVICES and share the device the same way),
   for each k of ``--pack``, rounds interleaved. Each cell is a shortened ``cpu``-protocol cell
   (``benchmarks/cells.py``) on CUDA with cores/k CPU threads. Reported: trials per GPU-hour
   (k x 3600 / the round's wall time), images per second (the k cells' training images over the
   wall time, evaluation and start-up included) and each against k = 1.
2. The step: PAH's training step at task 10 (``benchmarks/numerics.py``'s measurement) eager in
   fp32 and bf16, compiled, and compiled with CUDA graphs (``run.compile=reduce-overhead``):
   ms per step, images per second, the speed-up over eager fp32. Combinations the device cannot
   run (CUDA graphs off CUDA, bf16 without support) are listed as skipped.

    python benchmarks/gpu.py [--quick] [--pack 1,2,4] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cells import Cell, base_overrides, run_together  # noqa: E402
from benchmarks.common import cores, interleaved, io_flags, machine, median, save  # noqa: E402
from benchmarks.numerics import bench_steps, usable  # noqa: E402

STEP_OPTIONS: dict[str, dict[str, Any]] = {
    "eager fp32": {},
    "eager bf16": {"run.precision": "bf16"},
    "compiled fp32": {"run.compile": "default"},
    "CUDA graphs fp32": {"run.compile": "reduce-overhead"},
    "CUDA graphs bf16": {"run.compile": "reduce-overhead", "run.precision": "bf16"},
    "CUDA graphs bf16 channels_last": {
        "run.compile": "reduce-overhead",
        "run.precision": "bf16",
        "run.channels_last": True,
    },
}

# A lent GPU has minutes: --quick compiles twice (CUDA graphs), not four times.
QUICK_COMBOS = ["eager fp32", "eager bf16", "CUDA graphs fp32", "CUDA graphs bf16"]


def pack_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(k < 1 for k in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: trials per GPU, integers >= 1, e.g. 1,2,4")
    return sorted(set(sizes))


def combos(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in items if s not in STEP_OPTIONS]
    if unknown or not items:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(STEP_OPTIONS)}")
    return items


def pack_summary(rounds: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per pack size k: trials per GPU-hour and images per second (medians over rounds), and
    each against k = 1 (or the smallest k). Pure: numbers in, numbers out."""
    rows: dict[str, dict[str, Any]] = {}
    for k, runs in sorted(rounds.items()):
        walls = [r["wall_seconds"] for r in runs]
        images = [sum(c["train_images"] for c in r["cells"]) / r["wall_seconds"] for r in runs]
        rows[str(k)] = {
            "wall_seconds": walls,
            "trials_per_gpu_hour": k * 3600 / median(walls),
            "images_per_second": median(images),
        }
    first = rows[str(min(rounds))]
    for row in rows.values():
        row["trials_vs_one"] = row["trials_per_gpu_hour"] / first["trials_per_gpu_hour"]
        row["images_vs_one"] = row["images_per_second"] / first["images_per_second"]
    return {"rows": rows, "best": max(rows, key=lambda k: rows[k]["trials_per_gpu_hour"])}


def bench_pack(
    sizes: list[int], rounds: int, overrides: dict[str, Any], device: str, data_root
) -> dict[str, Any]:
    n_cores = cores()

    def measure(k_text: str) -> dict[str, Any]:
        k = int(k_text)
        cells = [Cell({**overrides, "run.seed": i}, max(1, n_cores // k), device) for i in range(k)]
        run = run_together(cells, data_root)
        print(f"  {k} trial(s) on the GPU at once: {run['wall_seconds']:.0f} s", flush=True)
        return run

    measured = interleaved([str(k) for k in sizes], rounds, measure)
    summary = pack_summary({int(k): v for k, v in measured.items()})
    return {"rounds": measured, **summary}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 round, cells at 10%% of the images")
    p.add_argument("--device", default="cuda", help="cuda (cpu: the tests' dry run)")
    p.add_argument("--pack", type=pack_sizes, help="trials on the GPU at once (default 1,2,4)")
    p.add_argument("--rounds", type=int, help="packing rounds (default 2; quick 1)")
    p.add_argument("--fraction", type=float, help="the cells' share of the images (default 0.5)")
    p.add_argument(
        "--combos", type=combos, help=f"step combinations (default all: {list(STEP_OPTIONS)})"
    )
    p.add_argument("--steps", type=int, help="steps per round (default 50; quick 20)")
    p.add_argument("--step-rounds", type=int, help="step rounds (default 5; quick 3)")
    p.add_argument("--skip-pack", action="store_true")
    p.add_argument("--skip-steps", action="store_true")
    io_flags(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser()
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("no CUDA device here: run it where a GPU is (benchmarks/gpu.sh), or --device cpu")
    q = args.quick
    results: dict[str, Any] = {"benchmark": "gpu", **machine(), "device": str(device), "quick": q}
    if not args.skip_pack:
        fraction = args.fraction or (0.1 if q else 0.5)
        overrides = base_overrides(fraction, args.synthetic)
        sizes = args.pack or [1, 2, 4]
        print(f"gpu: {sizes} trials at once, cells at {fraction:g} of the images")
        pack = bench_pack(
            sizes, args.rounds or (1 if q else 2), overrides, args.device, args.data_root
        )
        results["pack"] = {"fraction": fraction, "overrides": overrides, **pack}
    if not args.skip_steps:
        wanted = args.combos or (QUICK_COMBOS if q else list(STEP_OPTIONS))
        wanted = ["eager fp32", *[c for c in wanted if c != "eager fp32"]]
        todo, skipped = usable(wanted, device, STEP_OPTIONS)
        steps, rounds = args.steps or (20 if q else 50), args.step_rounds or (3 if q else 5)
        base = base_overrides(1.0, args.synthetic)
        step = bench_steps(base, todo, device, 9, steps, rounds, args.data_root, STEP_OPTIONS)
        results["step"] = {**step, "skipped": skipped}
    print(table(results))
    save("gpu", results, args.out)
    return results


def table(results: dict[str, Any]) -> str:
    """The results as the lines RESULTS.md quotes. Pure: the JSON in, text out."""
    lines = []
    if "pack" in results:
        lines += [
            "trials at once | trials per GPU-hour | vs 1 | images/s | vs 1",
            "---|---|---|---|---",
        ]
        for k, r in results["pack"]["rows"].items():
            lines.append(
                f"{k} | {r['trials_per_gpu_hour']:.1f} | {r['trials_vs_one']:.2f}x | "
                f"{r['images_per_second']:.0f} | {r['images_vs_one']:.2f}x"
            )
    if "step" in results:
        s = results["step"]
        lines += [
            "",
            f"PAH step at task {s['task']} (batch {s['batch']}) | ms | images/s | vs {s['reference']}",
            "---|---|---|---",
        ]
        for c, r in s["rows"].items():
            lines.append(
                f"{c} | {r['ms_per_step']:.1f} | {r['images_per_second']:.0f} | {r['speedup']:.2f}x"
            )
        lines += [f"{c} | skipped: {why} | | " for c, why in s["skipped"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
