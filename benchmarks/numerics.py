"""Numerics (issue #28, point 2): bf16 autocast, channels_last and a compiled backbone, each
measured against fp32 on the PAH step at task 10 and on whole runs, side by side in one run.

1. The step: PAH's training step at task 10 (teacher and 90 old prototypes in place, batch 64 of
   real task-10 images) for each combination, interleaved rounds, medians; the first call (which
   compiles) timed apart.
2. Whole runs: the ``cpu`` protocol at 1 epoch per task (10 tasks, full CIFAR-100 unless
   ``--fraction``), one process per run, fp32 and each option on the same seeds, the options'
   order rotated seed by seed. Per option against fp32, paired by seed: the engine's wall time
   (speed-up, and the paired difference with its 95% t-interval), final accuracy and forgetting
   (paired differences in points, ``analysis.stats.paired``). An option is a default candidate
   only where its runs are faster (the wall-time interval below 0) and neither accuracy nor
   forgetting resolves from fp32 (seed noise); making it the default is a reviewed config change.

    python benchmarks/numerics.py [--quick] [--data-root DIR] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.stats import paired  # noqa: E402
from benchmarks.cells import CONFIG, Cell, base_overrides, run_together  # noqa: E402
from benchmarks.common import cores, interleaved, io_flags, machine, median, save  # noqa: E402
from benchmarks.trainer import method_at_task, seconds_per_call  # noqa: E402
from pah_core.config import load_config  # noqa: E402
from pah_core.data import TaskStream, load_source  # noqa: E402
from pah_core.numerics import Numerics, NumericsError  # noqa: E402

OPTIONS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "bf16": {"run.precision": "bf16"},
    "channels_last": {"run.channels_last": True},
    "compile": {"run.compile": "default"},
    "bf16+channels_last": {"run.precision": "bf16", "run.channels_last": True},
    "bf16+channels_last+compile": {
        "run.precision": "bf16",
        "run.channels_last": True,
        "run.compile": "default",
    },
}
STEP_COMBOS = list(OPTIONS)
# bf16+channels_last: the fastest cell shape of study_throughput (1.56x), so its accuracy is the
# question a default turns on.
RUN_OPTIONS = ["fp32", "bf16", "channels_last", "compile", "bf16+channels_last"]
# Compiling ResNet-18 takes minutes on 2 cores, once per process: quick mode leaves it out.
QUICK_STEP_COMBOS = ["fp32", "bf16", "channels_last", "bf16+channels_last"]
QUICK_RUN_OPTIONS = ["fp32", "bf16", "channels_last", "bf16+channels_last"]


def names(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in items if s not in OPTIONS]
    if unknown or not items:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(OPTIONS)}")
    return items


def seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated integers") from None


def usable(
    combos: list[str], device: torch.device, options: dict[str, dict[str, Any]] = OPTIONS
) -> tuple[list[str], dict[str, str]]:
    """The combinations this device can run, and why the others are left out (pah_core.numerics'
    own check: bf16 without native support, CUDA graphs off CUDA)."""
    skipped = {}
    for c in combos:
        try:
            Numerics.of(load_config(None, overrides_list(options[c])).run, device)
        except NumericsError as e:
            skipped[c] = str(e)
    return [c for c in combos if c not in skipped], skipped


def overrides_list(values: dict[str, Any]) -> list[str]:
    from benchmarks.cells import as_text

    return [f"{k}={as_text(v)}" for k, v in values.items()]


def bench_steps(
    base: dict[str, Any], combos: list[str], device: torch.device, t: int, steps: int, rounds: int,
    data_root: str | None = None, options: dict[str, dict[str, Any]] = OPTIONS,
) -> dict[str, Any]:  # fmt: skip
    """PAH's step at task t+1 under each combination (``options``' overrides; the first is the
    reference), interleaved; ms per step, images/s, the speed-up over the first, and the first
    call's seconds (compilation)."""
    cuda = device.type == "cuda"
    steps_of, first_call = {}, {}
    # Every compiled combination compiles the same backbone forward (one code object), each under
    # its own guards (grad mode, autocast, layout): past dynamo's per-function limit (8) the later
    # ones would run eager and read as compiled. One run compiles one combination only.
    dynamo = torch._dynamo.config
    dynamo.recompile_limit = max(dynamo.recompile_limit, 8 * len(combos))
    # The shipped config, as the cells run it (validation splits included).
    src = load_source(load_config(CONFIG, overrides_list(base)).data, data_root)
    for combo in combos:
        cfg = load_config(CONFIG, overrides_list({**base, **options[combo], "method.name": "pah"}))
        stream = TaskStream(src, cfg.data, cfg.run.seed)
        t_here = min(t, len(stream) - 1)
        method, norm = method_at_task(cfg, stream, t_here, device)
        task = stream.task(t_here)
        n = min(64, len(task.train))
        x, y = norm(task.train.x[:n].to(device)), task.train.y[:n].to(device)
        step = functools.partial(method.train_batch, x, y, t_here)
        started = time.perf_counter()
        step()
        first_call[combo] = time.perf_counter() - started
        steps_of[combo] = step
    times = interleaved(combos, rounds, lambda c: seconds_per_call(steps_of[c], steps, cuda))
    ref = median(times[combos[0]])
    rows = {
        c: {
            "ms_per_step": 1000 * median(v),
            "images_per_second": n / median(v),
            "speedup": ref / median(v),
            "first_call_seconds": first_call[c],
            "rounds_ms": [1000 * s for s in v],
        }
        for c, v in times.items()
    }
    return {
        "task": t_here + 1,
        "batch": n,
        "steps_per_round": steps,
        "reference": combos[0],
        "rows": rows,
    }


def bench_runs(
    base: dict[str, Any], options: list[str], run_seeds: list[int], threads: int, data_root,
    failed: dict[str, dict[int, str]],
) -> dict[str, dict[int, dict[str, Any]]]:  # fmt: skip
    """One run per option and seed (a process each, one at a time), the options' order rotated
    seed by seed; each run's summary (benchmarks.cells.summary) and process seconds. A run that
    fails goes into ``failed`` (option -> seed -> the end of its output) instead."""
    out: dict[str, dict[int, dict[str, Any]]] = {o: {} for o in options}
    for i, seed in enumerate(run_seeds):
        for j in range(len(options)):
            option = options[(i + j) % len(options)]
            cell = Cell({**base, **OPTIONS[option], "run.seed": seed}, threads)
            try:
                run = run_together([cell], data_root)["cells"][0]
            except RuntimeError as e:
                # One option failing (a compiler missing, say) must not lose the hour the others
                # took: it is recorded and left out of the comparison.
                failed.setdefault(option, {})[seed] = str(e)[-2000:]
                print(f"  seed {seed} {option}: FAILED\n{str(e)[-600:]}")
                continue
            out[option][seed] = run
            print(f"  seed {seed} {option}: {run['wall_seconds']:.0f} s, acc {run['avg_acc']:.4f}")
    return out


def compare_runs(runs: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Each option against fp32, paired by seed. Pure: numbers in, numbers out."""
    base = runs["fp32"]

    def by_seed(option: str, key: str, scale: float = 1.0) -> dict[str, float]:
        return {str(s): scale * r[key] for s, r in runs[option].items()}

    out = {}
    for option in runs:
        if option == "fp32":
            continue
        common = sorted(set(runs[option]) & set(base))
        speedups = [base[s]["wall_seconds"] / runs[option][s]["wall_seconds"] for s in common]
        d = {
            "wall_seconds": paired(
                by_seed(option, "wall_seconds"), by_seed("fp32", "wall_seconds")
            ),
            "avg_acc_pp": paired(by_seed(option, "avg_acc", 100), by_seed("fp32", "avg_acc", 100)),
            "forgetting_pp": paired(
                by_seed(option, "forgetting", 100), by_seed("fp32", "forgetting", 100)
            ),
        }
        faster = d["wall_seconds"].resolved and d["wall_seconds"].mean < 0
        unchanged = not d["avg_acc_pp"].resolved and not d["forgetting_pp"].resolved
        out[option] = {
            "seeds": common,
            "speedups": speedups,
            "median_speedup": median(speedups) if speedups else None,
            **{k: {**vars(v), "text": v.interval(), "signs": v.signs()} for k, v in d.items()},
            "faster": faster,
            "accuracy_and_forgetting_within_seed_noise": unchanged,
            "default_candidate": bool(faster and unchanged and len(common) >= 2),
        }
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="no compile; shorter runs, 2 seeds")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, help="torch threads (default: every core)")
    p.add_argument("--combos", type=names, help=f"step combinations (default {STEP_COMBOS})")
    p.add_argument("--options", type=names, help=f"run options (default {RUN_OPTIONS})")
    p.add_argument("--seeds", type=seeds, help="run seeds (default 0,1,2; quick 0,1)")
    p.add_argument("--fraction", type=float, help="share of the images per class (default 1)")
    p.add_argument("--steps", type=int, help="steps per round (default 20; quick 5)")
    p.add_argument("--rounds", type=int, help="step rounds (default 5; quick 3)")
    p.add_argument("--skip-runs", action="store_true", help="the step only")
    io_flags(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    device = torch.device(args.device)
    threads = args.threads or cores()
    torch.set_num_threads(threads)
    q = args.quick
    fraction = args.fraction or (0.1 if q else 1.0)
    step_base = base_overrides(1.0, args.synthetic)
    wanted = args.combos or (QUICK_STEP_COMBOS if q else STEP_COMBOS)
    combos, skipped = usable(["fp32", *[c for c in wanted if c != "fp32"]], device)
    results: dict[str, Any] = {
        "benchmark": "numerics",
        **machine(),
        "device": str(device),
        "threads": threads,
        "quick": q,
        "skipped": skipped,
    }
    print(f"numerics: the PAH step at task 10, {combos}")
    steps, rounds = args.steps or (5 if q else 20), args.rounds or (3 if q else 5)
    results["step"] = bench_steps(step_base, combos, device, 9, steps, rounds, args.data_root)
    if not args.skip_runs:
        wanted = args.options or (QUICK_RUN_OPTIONS if q else RUN_OPTIONS)
        options, _ = usable(["fp32", *[o for o in wanted if o != "fp32"]], device)
        run_base = {
            **base_overrides(fraction, args.synthetic),
            "schedule.epochs_per_task": 1,
            "run.device": args.device,
        }
        run_seeds = args.seeds or ([0, 1] if q else [0, 1, 2])
        print(f"numerics: whole runs at 1 epoch per task, {options} x seeds {run_seeds}")
        failed: dict[str, dict[int, str]] = {}
        runs = bench_runs(run_base, options, run_seeds, threads, args.data_root, failed)
        results["runs"] = {
            "fraction": fraction,
            "overrides": run_base,
            "per_run": {o: {str(s): r for s, r in v.items()} for o, v in runs.items()},
            "failed": {o: {str(s): e for s, e in v.items()} for o, v in failed.items()},
            "vs_fp32": compare_runs({o: v for o, v in runs.items() if v}),
        }
    print_tables(results)
    save("numerics", results, args.out)
    return results


def print_tables(results: dict[str, Any]) -> None:
    step = results["step"]
    print(f"\nPAH step at task {step['task']} (batch {step['batch']}), medians:")
    print("combination                   ms/step  images/s  speed-up  first call (s)")
    for c, r in step["rows"].items():
        up = f"{r['speedup']:.2f}x"
        print(
            f"{c:28} {r['ms_per_step']:8.1f}  {r['images_per_second']:8.0f}  {up:>8}"
            f"  {r['first_call_seconds']:.1f}"
        )
    for c, why in results["skipped"].items():
        print(f"{c:28} skipped: {why}")
    if "runs" not in results:
        return
    print("\nwhole runs vs fp32, paired by seed (option - fp32; 95% t-interval):")
    print(
        "option          speed-up  wall s                 accuracy pp            forgetting pp          default?"
    )
    for o, r in results["runs"]["vs_fp32"].items():
        up = f"{r['median_speedup']:.2f}x" if r["median_speedup"] else "-"
        print(
            f"{o:15} {up:>8}  {r['wall_seconds']['text']:22} {r['avg_acc_pp']['text']:22} "
            f"{r['forgetting_pp']['text']:22} {'candidate' if r['default_candidate'] else 'no'}"
        )


if __name__ == "__main__":
    main()
