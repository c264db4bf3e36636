"""What every benchmark script shares: interleaved rounds, medians, the machine, where results go.

The harness's rules (benchmarks/RESULTS.md): every comparison is measured side by side in one run,
in rounds that visit every setting once in an order rotated round by round, and reported as
medians and ratios of that run; the JSON keeps every round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

OUT = Path(__file__).resolve().parent / "out"
T = TypeVar("T")


def save(name: str, results: dict[str, Any], folder: str | Path | None = None) -> Path:
    """Write ``<folder>/<name>.json`` (default ``benchmarks/out/``) and say where."""
    folder = Path(folder) if folder is not None else OUT
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")
    return path


def io_flags(p: argparse.ArgumentParser) -> None:
    """The flags every #28 benchmark takes: where the data is, tiny synthetic data for the tests,
    and where the JSON goes."""
    p.add_argument("--data-root")
    p.add_argument("--synthetic", action="store_true", help="tiny synthetic data (tests)")
    p.add_argument("--out", help="folder for the JSON (default benchmarks/out)")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def interleaved(
    settings: Sequence[str], rounds: int, measure: Callable[[str], T]
) -> dict[str, list[T]]:
    """``measure(setting)`` for every setting in each of ``rounds`` rounds; round r starts at
    setting r (mod n), so the first place (a cold cache, the machine's drift) falls on each setting
    in turn. Returns each setting's results, round by round."""
    out: dict[str, list[T]] = {s: [] for s in settings}
    n = len(settings)
    for r in range(rounds):
        for i in range(n):
            s = settings[(r + i) % n]
            out[s].append(measure(s))
    return out


def cores() -> int:
    """The cores this process may run on (the affinity mask where there is one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name as Linux reports it ("" elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine() -> dict[str, Any]:
    """Where a benchmark ran, for its JSON: date, machine, cores, torch and its CPU capability."""
    import torch

    from pah_core.numerics import bf16_supported

    # The CPU's model and its bf16: ratios measured on one CPU do not carry to another (bf16 was
    # 1.5x faster on an AVX512-BF16 machine and is refused on one without native bf16).
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_model": cpu_model(),
        "cores": cores(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": bf16_supported(torch.device("cpu")),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
