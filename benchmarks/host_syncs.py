"""Host syncs per training step, before and after (issue #16 point 5), side by side in one process.

Before: each PAH step brought every loss to the host (``float()`` per loss) and checked the loss
with ``torch.isfinite`` (one more sync). After: losses stay on the device, the engine's
``LossLog`` sums them and reads them once per ``LOG_EVERY`` steps. Both loops run the same
``train_batch`` on the same real CIFAR-100 batches at task 5 (ImageNet-stem ResNet-18, batch 64),
in alternating rounds; on CPU a sync costs little, on CUDA each one stalls the GPU's queue.

    python benchmarks/host_syncs.py [--quick] [--data-root DIR] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save  # noqa: E402
from benchmarks.trainer import method_at_task  # noqa: E402
from pah_core.config import load_config  # noqa: E402
from pah_core.data import BatchLoader, TaskStream, load_cifar100, resolve_data_root  # noqa: E402
from pah_core.losslog import LOG_EVERY, LossLog  # noqa: E402


def per_step_syncs(method, batches, t: int) -> int:
    """The old loop: a finiteness check and a float per loss, every step."""
    syncs = 0
    for x, y in batches:
        stats = method.train_batch(x, y, t)
        if not torch.isfinite(stats["loss"]):
            raise FloatingPointError("diverged")
        syncs += 1
        floats = {k: float(v) for k, v in stats.items()}
        syncs += len(floats)
    return syncs


def interval_syncs(method, batches, t: int) -> int:
    """The engine's loop now: one read (one sync) per LOG_EVERY steps and one at the end."""
    log, syncs = LossLog(method.name, t, 0), 0
    for i, (x, y) in enumerate(batches, start=1):
        log.add(method.train_batch(x, y, t))
        if i % LOG_EVERY == 0:
            log.read()
            syncs += 1
    log.read_epoch()
    return syncs + 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data-root")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps, rounds, t = (LOG_EVERY, 3, 4) if args.quick else (2 * LOG_EVERY, 5, 4)
    cfg = load_config(
        "configs/cifar100_pah.yaml", {"run.device": args.device, "run.progress": False}
    )
    stream = TaskStream(
        load_cifar100(resolve_data_root(args.data_root), False), cfg.data, cfg.run.seed
    )
    method, norm = method_at_task(cfg, stream, t, device)
    loader = BatchLoader(stream.task(t).train, 64, norm, device, shuffle=True, seed=0)
    batches = [b for _, b in zip(range(steps), loader, strict=False)]
    cuda = device.type == "cuda"
    times: dict[str, list[float]] = {"per_step": [], "interval": []}
    syncs: dict[str, int] = {}
    per_step_syncs(method, batches[:2], t)  # warm-up
    for _ in range(rounds):
        for name, loop in (("per_step", per_step_syncs), ("interval", interval_syncs)):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            syncs[name] = loop(method, batches, t)
            if cuda:
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - start) / steps)
    before, after = statistics.median(times["per_step"]), statistics.median(times["interval"])
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()} {platform.processor()}, torch threads {args.threads}",
        "device": str(device),
        "task": t + 1,
        "steps_per_round": steps,
        "rounds": rounds,
        "syncs_per_step_before": syncs["per_step"] / steps,
        "syncs_per_step_after": syncs["interval"] / steps,
        "ms_per_step_before": 1000 * before,
        "ms_per_step_after": 1000 * after,
        "speedup": before / after,
        "ms_per_step_rounds": {k: [1000 * v for v in vs] for k, vs in times.items()},
    }
    print(
        f"PAH step at task {t + 1} on {device}: {results['syncs_per_step_before']:.2f} -> "
        f"{results['syncs_per_step_after']:.2f} host syncs per step; "
        f"{results['ms_per_step_before']:.1f} -> {results['ms_per_step_after']:.1f} ms "
        f"(x{results['speedup']:.3f}, median of {rounds} alternating rounds)"
    )
    save("host_syncs", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
