"""Study cells as the throughput benchmarks run them: each one ``python -m pah_core.train`` in its
own process (as a sweep trial is one process), with its torch threads, several at once.

A cell is one run of the ``cpu`` protocol (``pah_sweep.study.PROTOCOLS``: full CIFAR-100, 10 tasks,
ResNet-18, batch 64, 3 epochs, eval_future, checkpoints at every task), optionally shortened: a
``fraction`` of the images per class, train and test alike, so every step is the protocol's step
(same batch, model, tasks, teacher and prototypes) and evaluation keeps its share; only the number
of steps and evaluated images shrinks. ``SYNTHETIC`` is the test suite's seconds-long stand-in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "cifar100_pah.yaml"
# Real CIFAR-100 per class: 500 training (10% of them validation), 100 test images.
TRAIN_PER_CLASS, TEST_PER_CLASS = 500, 100
# The tests' cells: 2 tasks of synthetic images, a small CNN (seconds; no dataset needed).
SYNTHETIC: dict[str, Any] = {
    "data.dataset": "synthetic",
    "data.n_tasks": 2,
    "data.classes_per_task": 3,
    "data.val_fraction": 0.2,
    "model.backbone": "small_cnn",
    "model.prototype_size": 4,
    "optim.batch_size": 16,
    "schedule.epochs_per_task": 1,
    "schedule.eval_future": True,
}


def cpu_protocol(fraction: float = 1.0) -> dict[str, Any]:
    """The ``cpu`` protocol's overrides, with ``fraction`` of the images per class."""
    from pah_sweep.study import PROTOCOLS

    overrides = dict(PROTOCOLS["cpu"].overrides)
    if fraction < 1.0:
        overrides["data.train_per_class"] = max(4, round(TRAIN_PER_CLASS * fraction))
        overrides["data.test_per_class"] = max(1, round(TEST_PER_CLASS * fraction))
    return overrides


# The reference every numerics option is measured against: fp32, NCHW, eager, as cells ran before
# issue #28 (the cpu protocol has run channels_last since), so that "fp32" and "2x1" keep meaning
# one thing in every JSON; an option or a setting adds its own keys on top.
REFERENCE_NUMERICS: dict[str, Any] = {
    "run.precision": "fp32",
    "run.channels_last": False,
    "run.compile": None,
}


def base_overrides(fraction: float, synthetic: bool) -> dict[str, Any]:
    return {**(SYNTHETIC if synthetic else cpu_protocol(fraction)), **REFERENCE_NUMERICS}


def as_text(value: Any) -> str:
    """A config override's value as ``pah_core.train`` parses it (YAML)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@dataclass
class Cell:
    overrides: dict[str, Any]
    threads: int
    device: str = "cpu"
    env: dict[str, str] = field(default_factory=dict)


def command(cell: Cell, out: Path, data_root: str | None) -> list[str]:
    overrides = {
        **cell.overrides,
        "run.threads": cell.threads,
        "run.device": cell.device,
        "run.progress": False,
    }
    args = [sys.executable, "-m", "pah_core.train", "--config", str(CONFIG), "--out", str(out)]
    args += [f"{k}={as_text(v)}" for k, v in overrides.items()]
    return args + (["--data-root", data_root] if data_root else [])


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """What the benchmarks read of a cell's results.json."""
    keys = ("wall_seconds", "seconds_per_task", "eval_seconds_per_task", "untrained_eval_seconds")
    out = {k: results.get(k) for k in keys}
    out["train_images"] = results.get("train_images")
    out["train_images_per_second"] = results.get("train_images_per_second")
    out["avg_acc"] = results.get("avg_acc")
    out["forgetting"] = results.get("forgetting")
    out["tasks_completed"] = results.get("tasks_completed")
    return out


def cell_env(cell: Cell) -> dict[str, str]:
    """This checkout on the path, and every thread pool at the cell's threads."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    threads = str(cell.threads)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        **cell.env,
    }


def run_together(cells: Sequence[Cell], data_root: str | None = None) -> dict[str, Any]:
    """Start every cell at once and wait for all: the wall time from the first start to the last
    exit, and each cell's process seconds and results. A failed cell stops the benchmark, with
    the end of its output."""
    with tempfile.TemporaryDirectory(prefix="pah-cells-") as tmp:
        procs = []
        started = time.perf_counter()
        for i, cell in enumerate(cells):
            out, log = Path(tmp) / f"cell{i}", Path(tmp) / f"cell{i}.log"
            with log.open("w") as f:
                args = command(cell, out, data_root)
                p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=cell_env(cell))
            procs.append((p, out, log, time.perf_counter()))
        done = []
        for p, out, log, start in procs:
            code = p.wait()
            seconds = time.perf_counter() - start
            if code != 0:
                raise RuntimeError(f"a cell failed (exit {code}):\n{log.read_text()[-3000:]}")
            results = json.loads((out / "results.json").read_text())
            done.append({"process_seconds": seconds, **summary(results)})
        return {"wall_seconds": time.perf_counter() - started, "cells": done}


def run_in_waves(
    n_cells: int, at_once: int, make: Any, data_root: str | None = None
) -> dict[str, Any]:
    """``n_cells`` cells (``make(i)`` builds cell i), ``at_once`` at a time, wave after wave: the
    total wall time and every cell's summary."""
    waves, wall = [], 0.0
    for first in range(0, n_cells, at_once):
        wave = run_together(
            [make(i) for i in range(first, min(n_cells, first + at_once))], data_root
        )
        waves.append(wave)
        wall += wave["wall_seconds"]
    return {"wall_seconds": wall, "cells": [c for w in waves for c in w["cells"]]}
