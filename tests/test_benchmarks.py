"""The issue #28 benchmarks' machinery, without timing anything: each script's smallest mode on
tiny synthetic cells writes its JSON with the fields RESULTS.md reads, and the numbers they report
are computed right from given ones (medians, cells per hour, ratios, paired differences)."""

import json

import pytest
import torch

import pah_core.numerics
from benchmarks import common, numerics


def test_interleaved_rounds_rotate_the_order():
    calls = []
    out = common.interleaved(["a", "b", "c"], 2, lambda s: calls.append(s) or len(calls))
    assert calls == ["a", "b", "c", "b", "c", "a"]
    assert out == {"a": [1, 6], "b": [2, 4], "c": [3, 5]}
    assert common.median([3.0, 1.0, 2.0, 10.0]) == 2.5


# -- numerics --------------------------------------------------------------------------------------


def _runs(acc_shift: float) -> dict:
    fp32 = {0: (100.0, 0.50, 0.10), 1: (110.0, 0.52, 0.12), 2: (90.0, 0.49, 0.11)}
    bf16 = {0: (50.0, 0.51, 0.10), 1: (55.0, 0.51, 0.13), 2: (45.0, 0.50, 0.11)}
    row = lambda w, a, f, d=0.0: {"wall_seconds": w, "avg_acc": a + d, "forgetting": f}  # noqa: E731
    return {
        "fp32": {s: row(*v) for s, v in fp32.items()},
        "bf16": {s: row(*v, acc_shift) for s, v in bf16.items()},
    }


def test_runs_against_fp32_paired_by_seed():
    vs = numerics.compare_runs(_runs(0.0))["bf16"]
    assert vs["speedups"] == [2.0, 2.0, 2.0] and vs["median_speedup"] == 2.0
    assert vs["wall_seconds"]["mean"] == pytest.approx(-50.0)
    assert vs["avg_acc_pp"]["mean"] == pytest.approx((1 - 1 + 1) / 3)
    assert vs["faster"] and vs["accuracy_and_forgetting_within_seed_noise"]
    assert vs["default_candidate"]
    # Faster but 5 points less accurate on every seed: resolved, so not a default.
    worse = numerics.compare_runs(_runs(-0.05))["bf16"]
    assert worse["avg_acc_pp"]["high"] < 0 and not worse["default_candidate"]


def test_combinations_the_device_cannot_run_are_skipped(monkeypatch):
    cpu = torch.device("cpu")
    options = {"fp32": {}, "graphs": {"run.compile": "reduce-overhead"}, "compiled": {"run.compile": "default"}}  # fmt: skip
    todo, skipped = numerics.usable(list(options), cpu, options)
    assert todo == ["fp32", "compiled"] and "captures CUDA graphs" in skipped["graphs"]
    monkeypatch.setattr(pah_core.numerics, "bf16_supported", lambda device: False)
    _, skipped = numerics.usable(["fp32", "bf16"], cpu)
    assert "no native bfloat16" in skipped["bf16"]


def test_numerics_smallest_mode_writes_its_json(tmp_path):
    args = ["--synthetic", "--combos", "fp32,channels_last", "--steps", "1", "--rounds", "1"]
    args += ["--options", "fp32,channels_last", "--seeds", "0", "--threads", "1"]
    numerics.main([*args, "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "numerics.json").read_text())
    step = saved["step"]["rows"]
    assert set(step) == {"fp32", "channels_last"} and step["fp32"]["speedup"] == 1.0
    vs = saved["runs"]["vs_fp32"]["channels_last"]
    per_run = saved["runs"]["per_run"]
    fp32, cl = per_run["fp32"]["0"]["wall_seconds"], per_run["channels_last"]["0"]["wall_seconds"]
    assert vs["speedups"] == [pytest.approx(fp32 / cl)]
    assert vs["default_candidate"] is False  # one seed decides nothing
