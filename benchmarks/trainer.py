"""Trainer benchmarks on real CIFAR-100, each comparison measured side by side in one process.

1. PAH training step vs a plain fine-tune step (same backbone, batch 64, fixed threads) at tasks
   1, 5 and 10: images/s and their ratio (target: PAH at most 1.4x the fine-tune step at task 10).
3. Loader throughput vs training throughput (target: at least 20x).
4. Cost of evaluating the accuracy matrix at each task boundary, and its growth with tasks.
6. Peak memory of one run by task count (target: no growth beyond prototypes and the teacher).

    python benchmarks/trainer.py [--quick] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import functools
import gc
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import median, save  # noqa: E402
from pah_core.config import load_config  # noqa: E402
from pah_core.data import BatchLoader, Normalize, TaskStream, load_cifar100, resolve_data_root  # noqa: E402
from pah_core.engine import Engine  # noqa: E402
from pah_core.methods import build_method  # noqa: E402
from pah_core.reporters import Reporter  # noqa: E402


def method_at_task(cfg, stream: TaskStream, t: int, device: torch.device):
    """A method whose tasks 0..t have begun (teacher and old prototypes in place), untrained."""
    method = build_method(cfg, stream.spec, device)
    norm = Normalize(stream.spec.mean, stream.spec.std, device, cfg.run.channels_last)
    for j in range(t + 1):
        method.begin_task(stream.task(j), norm)
    return method, norm


def seconds_per_call(fn, steps: int, cuda: bool) -> float:
    fn()  # warm-up
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def pah_extra_work(method, x: torch.Tensor, t: int) -> dict[str, Any]:
    """The two pieces of work PAH adds to a fine-tune step, as callables: the frozen teacher's
    forward on the batch (for L_sm) and the prototype step (old prototypes through the backbone,
    forward and input-gradient backward, plus the prototype optimiser's step)."""
    net = method.model

    def teacher_forward():
        with torch.no_grad():
            method.teacher.apply_heads(method.teacher.features(x), method._teacher_heads)

    def prototype_step():
        (grad,) = torch.autograd.grad(method.prototype_loss(t), [net.prototypes])
        net.prototypes.grad = grad
        method.opt_proto.step()

    return {"teacher_forward": teacher_forward, "prototype_step": prototype_step}


def bench_step_ratio(src, device, tasks: list[int], steps: int, rounds: int) -> dict[str, Any]:
    """PAH vs fine-tune step time, and PAH's own floor: the fine-tune step plus the teacher forward
    plus the prototype step, each timed alone. PAH at its floor wastes nothing beyond the method's
    own work; the ratio to fine-tune then says what the method costs, not the implementation."""
    rows = []
    cuda = device.type == "cuda"
    for t in tasks:
        times: dict[str, list[float]] = {
            "pah": [],
            "finetune": [],
            "teacher_forward": [],
            "prototype_step": [],
        }
        methods, norm = {}, None
        for name in ("pah", "finetune"):
            cfg = load_config(None, [f"method.name={name}", "run.progress=false"])
            stream = TaskStream(src, cfg.data, cfg.run.seed)
            methods[name], norm = method_at_task(cfg, stream, t, device)
        task = TaskStream(src, load_config(None).data, 1).task(t)
        x = norm(task.train.x[:64].to(device))
        y = task.train.y[:64].to(device)
        extra = pah_extra_work(methods["pah"], x, t) if t > 0 else {}
        for _ in range(rounds):  # interleaved: all see the same machine state
            for name, method in methods.items():
                step = functools.partial(method.train_batch, x, y, t)
                times[name].append(seconds_per_call(step, steps, cuda))
            for name, fn in extra.items():
                times[name].append(seconds_per_call(fn, steps, cuda))
        med = {k: median(v) if v else 0.0 for k, v in times.items()}
        floor = med["finetune"] + med["teacher_forward"] + med["prototype_step"]
        rows.append(
            {
                "task": t + 1,
                "pah_images_per_s": 64 / med["pah"],
                "finetune_images_per_s": 64 / med["finetune"],
                "time_ratio": med["pah"] / med["finetune"],
                "ms": {k: 1000 * v for k, v in med.items()},
                "floor_ratio": floor / med["finetune"],
                "pah_vs_floor": med["pah"] / floor,
            }
        )
        del methods, extra
        gc.collect()
    last = rows[-1]
    return {
        "rows": rows,
        "target": "time ratio at task 10 <= 1.4",
        "met": last["time_ratio"] <= 1.4,
        "floor_note": (
            "floor = fine-tune step + teacher forward + prototype step, timed alone; "
            "pah_vs_floor near 1 means no overhead beyond the method's own work"
        ),
    }


def without_speedups(method, centre_tap: bool, fused: bool) -> None:
    """Undo this repository's two step speed-ups on one method, to measure them side by side."""
    from torch import nn

    from pah_core.models.backbones import CentreTapConv2d

    if not centre_tap:
        for net in (method.model, getattr(method, "teacher", None)):
            for m in net.modules() if net is not None else ():
                if type(m) is CentreTapConv2d:
                    m.__class__ = nn.Conv2d
    if not fused:
        for name in ("opt", "opt_proto"):
            if hasattr(method, name):
                groups = [
                    {k: v for k, v in g.items() if k != "fused"}
                    for g in getattr(method, name).param_groups
                ]
                setattr(method, name, torch.optim.AdamW(groups))


def bench_speedups(src, device, t: int, steps: int, rounds: int) -> dict[str, Any]:
    """Before/after of the fixes, at task t+1, interleaved: plain Conv2d and per-tensor AdamW
    (before) vs centre-tap convolutions and fused AdamW (after), for PAH and fine-tune."""
    variants = [(False, False), (False, True), (True, False), (True, True)]
    methods, norm = {}, None
    for name in ("pah", "finetune"):
        for centre_tap, fused in variants:
            cfg = load_config(None, [f"method.name={name}", "run.progress=false"])
            m, norm = method_at_task(cfg, TaskStream(src, cfg.data, cfg.run.seed), t, device)
            without_speedups(m, centre_tap, fused)
            methods[(name, centre_tap, fused)] = m
    task = TaskStream(src, load_config(None).data, 1).task(t)
    x = norm(task.train.x[:64].to(device))
    y = task.train.y[:64].to(device)
    times: dict[tuple, list[float]] = {k: [] for k in methods}
    for _ in range(rounds):
        for k, m in methods.items():
            step = functools.partial(m.train_batch, x, y, t)
            times[k].append(seconds_per_call(step, steps, device.type == "cuda"))
    rows = []
    for centre_tap, fused in variants:
        pah, ft = (median(times[(n, centre_tap, fused)]) for n in ("pah", "finetune"))
        rows.append(
            {
                "centre_tap_convs": centre_tap,
                "fused_adamw": fused,
                "pah_ms": 1000 * pah,
                "finetune_ms": 1000 * ft,
                "time_ratio": pah / ft,
            }
        )
    before, after = rows[0], rows[-1]
    del methods
    gc.collect()
    return {
        "task": t + 1,
        "rows": rows,
        "pah_speedup": before["pah_ms"] / after["pah_ms"],
        "finetune_speedup": before["finetune_ms"] / after["finetune_ms"],
    }


def bench_loader_vs_training(src, device, train_images_per_s: float) -> dict[str, Any]:
    cfg = load_config(None)
    task = TaskStream(src, cfg.data, cfg.run.seed).task(0)
    norm = Normalize(src.official_mean, src.official_std, device)
    loader = BatchLoader(task.train, 64, norm, device, shuffle=True, seed=0)
    n, start = 0, time.perf_counter()
    for _ in range(3):
        for batch in loader:
            n += int(batch[1].shape[0])
    loader_rate = n / (time.perf_counter() - start)
    return {
        "loader_images_per_s": loader_rate,
        "training_images_per_s": train_images_per_s,
        "ratio": loader_rate / train_images_per_s,
        "target": ">= 20",
        "met": loader_rate / train_images_per_s >= 20,
    }


@torch.no_grad()
def task_il_only(engine: Engine, t: int) -> None:
    """The evaluation before task-agnostic prediction existed: each task through its own head."""
    from pah_core.models import batchnorm_mode

    with batchnorm_mode(engine.method.model, "running"):
        for j in range(t + 1):
            for x, y in engine.evaluator.batches(j, t):
                (engine.method.predict(x, j).argmax(dim=-1) == y).sum()


def bench_eval_cost(src, device, tasks: list[int]) -> dict[str, Any]:
    cfg = load_config(None, ["run.progress=false", "run.checkpoint=false"])
    stream = TaskStream(src, cfg.data, cfg.run.seed)
    engine = Engine(cfg, stream)
    norm = engine.normalize
    for j in range(max(tasks) + 1):
        engine.method.begin_task(stream.task(j), norm)
    rows = []
    for t in tasks:
        engine.evaluator.seen(t)  # warm-up (builds the loaders' device copies)
        start = time.perf_counter()
        engine.evaluator.seen(t)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        task_il_only(engine, t)
        til_seconds = time.perf_counter() - start
        rows.append(
            {
                "task": t + 1,
                "tasks_evaluated": t + 1,
                "seconds": seconds,
                "seconds_per_task_evaluated": seconds / (t + 1),
                "task_il_only_seconds": til_seconds,
                "task_agnostic_overhead": seconds / til_seconds,
            }
        )
    return {
        "rows": rows,
        "note": "evaluation of all seen tasks grows linearly with tasks seen (1,000 test images "
        "each); 'seconds' includes the task-agnostic evaluation (every seen head and every rule "
        "from one backbone pass per image), 'task_il_only_seconds' is the task-IL evaluation alone, "
        "measured right after in the same process",
    }


class PeakRSSProbe(Reporter):
    """Peak resident memory of this process after each task (stdlib only: getrusage)."""

    def task_end(self, e):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        row = {
            "task": e.t + 1,
            "peak_rss_mib": peak / (2**20 if sys.platform == "darwin" else 2**10),
        }
        if torch.cuda.is_available():
            row["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        self.rows.append(row)

    def __init__(self):
        self.rows: list[dict[str, float]] = []


def bench_memory(src, n_tasks: int) -> dict[str, Any]:
    cfg = load_config(
        None,
        [
            # Whole CIFAR-100 tasks (5,000 training and 1,000 test images), one epoch each.
            "schedule.epochs_per_task=1",
            f"schedule.max_tasks={n_tasks}",
            "run.progress=false",
            "run.checkpoint=false",
        ],
    )
    probe = PeakRSSProbe()
    Engine(cfg, TaskStream(src, cfg.data, cfg.run.seed), [probe]).run()
    rows = probe.rows
    growth = rows[-1]["peak_rss_mib"] - rows[1]["peak_rss_mib"] if len(rows) > 2 else 0.0
    proto_mib = 10 * 10 * 100 * 4 / 2**20  # all tasks' prototypes are allocated up front
    # What may grow: the seen tasks' test splits (uint8), which evaluation revisits.
    test_split_mib = (len(rows) - 2) * 1_000 * 3 * 32 * 32 / 2**20
    return {
        "rows": rows,
        "growth_after_task_2_mib": growth,
        "growth_share_of_task_2_peak": growth / rows[1]["peak_rss_mib"] if len(rows) > 2 else 0.0,
        "seen_test_splits_mib": test_split_mib,
        "target": "RSS flat after task 2 (the teacher exists from task 2 on; prototypes are "
        "pre-allocated; the seen tasks' test splits stay): growth under 5% of the task-2 peak",
        "met": len(rows) <= 2 or growth < 0.05 * rows[1]["peak_rss_mib"],
        "prototype_table_mib": proto_mib,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="fewer steps and rounds (minutes on 2 cores)"
    )
    p.add_argument("--data-root")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    src = load_cifar100(resolve_data_root(args.data_root), download=False)
    steps, rounds = (8, 5) if args.quick else (20, 7)
    results: dict[str, Any] = {
        "benchmark": "trainer",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "device": str(device),
        "torch": torch.__version__,
        "quick": args.quick,
        "config": "configs defaults: ResNet-18 (ImageNet stem), batch 64, 10 tasks x 10 classes of CIFAR-100",
    }
    # First, while this process's peak RSS reflects nothing but this run (getrusage's peak only grows).
    results["memory"] = bench_memory(src, 4 if args.quick else 10)
    results["step_ratio"] = bench_step_ratio(src, device, [0, 4, 9], steps, rounds)
    results["speedups"] = bench_speedups(src, device, 9, steps, rounds)
    ft10 = results["step_ratio"]["rows"][-1]["pah_images_per_s"]
    results["loader_vs_training"] = bench_loader_vs_training(src, device, ft10)
    results["eval_cost"] = bench_eval_cost(src, device, [0, 4, 9])
    print_results(results)
    save("trainer", results)
    return results


def print_results(results: dict[str, Any]) -> None:
    print(
        "\n1. training step, images/s (median)        task  PAH    fine-tune  time ratio (target <= 1.4 at task 10)"
    )
    for r in results["step_ratio"]["rows"]:
        print(
            f"{'':44}{r['task']:>4}  {r['pah_images_per_s']:>5.0f}  {r['finetune_images_per_s']:>9.0f}  {r['time_ratio']:>5.2f}"
            f"   (ms: teacher fwd {r['ms']['teacher_forward']:.0f}, prototype step {r['ms']['prototype_step']:.0f};"
            f" floor {r['floor_ratio']:.2f}x, PAH/floor {r['pah_vs_floor']:.2f})"
        )
    sp = results["speedups"]
    print("   before/after at task 10 (ms per step):")
    for r in sp["rows"]:
        print(
            f"   centre-tap convs {r['centre_tap_convs']!s:5}  fused AdamW {r['fused_adamw']!s:5}  "
            f"PAH {r['pah_ms']:6.1f}  fine-tune {r['finetune_ms']:6.1f}  ratio {r['time_ratio']:.2f}"
        )
    print(f"   speed-up: PAH {sp['pah_speedup']:.2f}x, fine-tune {sp['finetune_speedup']:.2f}x")
    lv = results["loader_vs_training"]
    print(
        f"3. loader {lv['loader_images_per_s']:,.0f} img/s vs PAH training at task 10 {lv['training_images_per_s']:,.0f} img/s: "
        f"{lv['ratio']:.0f}x (target >= 20)"
    )
    print(
        "4. evaluation at a task boundary:  "
        + ", ".join(
            f"after task {r['task']}: {r['seconds']:.2f} s" for r in results["eval_cost"]["rows"]
        )
    )
    mem = results["memory"]
    print(
        "6. peak RSS by task (MiB): "
        + ", ".join(f"{r['task']}: {r['peak_rss_mib']:.0f}" for r in mem["rows"])
        + f"; growth after task 2: {mem['growth_after_task_2_mib']:+.0f} MiB"
    )


if __name__ == "__main__":
    main()
