"""Loader throughput: images/s for one CIFAR-100 training epoch, without and with augmentation.

    python benchmarks/loader_throughput.py [--data-root DIR] [--batch-size 64] [--repeats 3]

Prints a table and writes benchmarks/out/loader_throughput.json. Each epoch normalises every batch
to float32 on the device (the work the trainer sees); augmentation adds the batched random crop
with 4-pixel padding and the horizontal flip.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save  # noqa: E402
from pah_core.data import Augment, BatchLoader, Normalize, Split, load_cifar100, resolve_data_root  # noqa: E402


def epoch_rate(loader: BatchLoader, epoch: int) -> float:
    loader.set_epoch(epoch)
    n = 0
    start = time.perf_counter()
    last = None
    for batch in loader:
        last = batch[0]
        n += int(batch[1].shape[0])
    if last is not None:
        last.sum().item()  # wait for the last batch (matters on GPU, where work is asynchronous)
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "out" / "loader_throughput.json")
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    src = load_cifar100(resolve_data_root(args.data_root), download=False)
    split = Split(src.train_x, src.train_y)
    norm = Normalize(src.official_mean, src.official_std, device)
    rows = {}
    for name, aug in (("plain", None), ("augmented", Augment(crop_padding=4, flip=True))):
        loader = BatchLoader(
            split, args.batch_size, norm, device, shuffle=True, augment=aug, seed=0
        )
        epoch_rate(loader, -1)  # warm-up: first touch of the tensors, allocator growth
        rates = [epoch_rate(loader, e) for e in range(args.repeats)]
        rows[name] = {"images_per_second_median": sorted(rates)[len(rates) // 2], "runs": rates}
    result = {
        "benchmark": "loader_throughput",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()} {platform.processor() or ''} torch threads {args.threads}".strip(),
        "device": str(device),
        "torch": torch.__version__,
        "dataset": "cifar100 train (50,000 images)",
        "batch_size": args.batch_size,
        **rows,
        "augmentation_cost_ratio": rows["plain"]["images_per_second_median"]
        / rows["augmented"]["images_per_second_median"],
    }
    print(f"{'loader':<12}{'images/s (median of ' + str(args.repeats) + ' epochs)':>36}")
    for name in ("plain", "augmented"):
        print(f"{name:<12}{rows[name]['images_per_second_median']:>36,.0f}")
    print(f"augmentation costs {result['augmentation_cost_ratio']:.2f}x (plain / augmented)")
    save("loader_throughput", result)
    return result


if __name__ == "__main__":
    main()
