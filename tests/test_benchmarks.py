"""The issue #28 benchmarks' machinery, without timing anything: each script's smallest mode on
tiny synthetic cells writes its JSON with the fields RESULTS.md reads, and the numbers they report
are computed right from given ones (medians, cells per hour, ratios, paired differences)."""

import importlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

import pah_core.numerics
from benchmarks import common, eval_share, gpu, numerics, run, study_throughput
from tests.helpers import sqlite_store

ROOT = Path(__file__).resolve().parents[1]


def test_interleaved_rounds_rotate_the_order():
    calls = []
    out = common.interleaved(["a", "b", "c"], 2, lambda s: calls.append(s) or len(calls))
    assert calls == ["a", "b", "c", "b", "c", "a"]
    assert out == {"a": [1, 6], "b": [2, 4], "c": [3, 5]}
    assert common.median([3.0, 1.0, 2.0, 10.0]) == 2.5


def test_run_wires_every_benchmark_of_its_sets():
    for name in run.SETS["all"]:
        assert callable(importlib.import_module(f"benchmarks.{name}").main), name
    assert set(run.SETS["throughput"]) == {"study_throughput", "numerics", "eval_share"}


# -- study throughput -----------------------------------------------------------------------------


def test_the_settings_that_fit_the_cores():
    assert study_throughput.settings_for(2) == ["2x1", "1x2"]
    assert study_throughput.settings_for(4) == ["4x1", "2x2", "1x4"]
    # A setting may carry numerics: today's cell and a candidate side by side.
    assert study_throughput.parse_setting("2x1") == (2, 1, {})
    assert study_throughput.parse_setting("1x2:bf16") == (1, 2, {"run.precision": "bf16"})
    for bad in ("2x0", "2x1:fp16", "x2"):
        with pytest.raises(SystemExit):
            study_throughput.parser().parse_args(["--settings", bad])


def test_cells_per_hour_from_given_rounds():
    rounds = {
        "2x1": [{"wall_seconds": 100.0}, {"wall_seconds": 120.0}, {"wall_seconds": 110.0}],
        "1x2": [{"wall_seconds": 150.0}, {"wall_seconds": 140.0}, {"wall_seconds": 160.0}],
    }
    s = study_throughput.summarize(rounds, 2, "2x1")
    assert s["rows"]["2x1"]["cells_per_hour"] == pytest.approx(2 * 3600 / 110)
    assert s["rows"]["1x2"]["cells_per_hour"] == pytest.approx(2 * 3600 / 150)
    assert s["rows"]["1x2"]["vs_default"] == pytest.approx(110 / 150)
    assert s["best"] == "2x1" and s["rows"]["2x1"]["vs_default"] == 1.0


def test_study_throughput_smallest_mode_writes_its_json(tmp_path):
    args = ["--synthetic", "--settings", "1x1", "--rounds", "1", "--cells-per-round", "1"]
    study_throughput.main([*args, "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "study_throughput.json").read_text())
    row = saved["rows"]["1x1"]
    assert row["cells_per_hour"] == pytest.approx(3600 / row["median_wall_seconds"])
    assert saved["best"] == "1x1" and saved["suggested_entry"].endswith("= (1, 1)")
    (cell,) = saved["rounds"]["1x1"][0]["cells"]
    assert cell["tasks_completed"] == 2 and len(cell["eval_seconds_per_task"]) == 2


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


def test_every_option_is_measured_against_plain_fp32_whatever_the_protocol_runs():
    from benchmarks.cells import base_overrides
    from pah_sweep.study import PROTOCOLS

    assert PROTOCOLS["cpu"].overrides["run.channels_last"] is True  # the default #28 chose
    for synthetic in (False, True):
        base = base_overrides(1.0, synthetic)
        assert (base["run.precision"], base["run.channels_last"], base["run.compile"]) == (
            "fp32",
            False,
            None,
        )


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
    # Which CPU made the numbers: a ratio from one CPU is no claim about another.
    assert saved["cpu_model"] == common.cpu_model() and isinstance(saved["cpu_native_bf16"], bool)


# -- evaluation's share ----------------------------------------------------------------------------


def test_the_share_from_given_seconds():
    s = eval_share.share([1.0, 2.0], [10.0, 10.0], untrained=1.0)
    assert s["share"] == pytest.approx(4 / 21) and s["per_task"] == [0.1, 0.2]
    assert eval_share.share([], [10.0])["share"] is None
    assert eval_share.summarize(
        {"a": {"share": 0.1}, "b": {"share": 0.3}, "c": {"share": None}}
    ) == {
        "n": 2,
        "median": 0.2,
        "min": 0.1,
        "max": 0.3,
    }


def test_the_share_of_results_files_and_of_an_mlflow_store(tmp_path):
    from mlflow.entities import Metric

    f = tmp_path / "results.json"
    f.write_text(json.dumps({"seconds_per_task": [8, 12], "eval_seconds_per_task": [2, 3]}))
    eval_share.main(["--results", str(f), "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "eval_share.json").read_text())
    assert saved["all"]["median"] == pytest.approx(5 / 20)

    uri, client, exp_id = sqlite_store(tmp_path, "e")
    rid = client.create_run(exp_id, tags={"method": "pah", "sweep": "s-final"}).info.run_id
    metrics = [Metric("seconds", s, 0, t) for t, s in enumerate((10.0, 30.0))]
    metrics += [Metric("eval_seconds", s, 0, t) for t, s in enumerate((1.0, 3.0))]
    client.log_batch(rid, metrics=metrics)
    client.set_terminated(rid, "FINISHED")
    read = eval_share.from_mlflow(uri, "e", None)
    assert read["runs"][rid]["share"] == pytest.approx(4 / 40)
    assert read["by_method"]["pah"]["median"] == pytest.approx(0.1)
    assert read["by_sweep"]["s-final"]["n"] == 1


def test_eval_share_smallest_mode_writes_its_json(tmp_path):
    args = ["--synthetic", "--rounds", "1", "--variants", "now", "--threads", "1"]
    eval_share.main([*args, "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "eval_share.json").read_text())
    assert 0 < saved["share_now"]["share"] < 1
    # The same cell evaluating only the next future task: its share measured too.
    nxt = saved["share_next_future_task_only"]
    assert nxt["overrides"]["schedule.eval_future_tasks"] == "next"
    assert 0 < nxt["share"] < 1
    assert saved["boundary"]["now_counts_equal_before"] is True
    assert set(saved["boundary"]["rows"]) == {"before #28", "now"}


# -- one GPU ---------------------------------------------------------------------------------------


def test_gpu_arguments():
    p = gpu.parser()
    assert p.parse_args(["--pack", "4,1,2,2"]).pack == [1, 2, 4]
    for bad in (["--pack", "0"], ["--pack", "a"], ["--combos", "warp"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)


def test_packing_and_the_table_from_given_numbers():
    def cells(k, images):
        return [{"train_images": images} for _ in range(k)]

    rounds = {
        1: [{"wall_seconds": 100.0, "cells": cells(1, 5000)}],
        2: [{"wall_seconds": 120.0, "cells": cells(2, 5000)}],
    }
    s = gpu.pack_summary(rounds)
    assert s["rows"]["1"]["trials_per_gpu_hour"] == pytest.approx(36.0)
    assert s["rows"]["2"]["trials_per_gpu_hour"] == pytest.approx(60.0)
    assert s["rows"]["2"]["trials_vs_one"] == pytest.approx(60 / 36)
    assert s["rows"]["2"]["images_per_second"] == pytest.approx(10000 / 120)
    assert s["best"] == "2"
    step = {
        "task": 10,
        "batch": 64,
        "reference": "eager fp32",
        "rows": {"eager fp32": {"ms_per_step": 23.0, "images_per_second": 2782.6, "speedup": 1.0}},
        "skipped": {"CUDA graphs fp32": "needs CUDA"},
    }
    lines = gpu.table({"pack": s, "step": step}).splitlines()
    assert "2 | 60.0 | 1.67x | 83 | 1.67x" in lines
    assert "eager fp32 | 23.0 | 2783 | 1.00x" in lines
    assert "CUDA graphs fp32 | skipped: needs CUDA | | " in lines


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_gpu_dry_run_on_cpu_and_the_wrapper_without_a_gpu(tmp_path):
    with pytest.raises(SystemExit):
        gpu.main(["--out", str(tmp_path)])  # cuda asked for, none here
    args = ["--device", "cpu", "--synthetic", "--pack", "1", "--rounds", "1", "--steps", "1"]
    args += ["--step-rounds", "1", "--combos", "eager fp32,CUDA graphs fp32"]
    gpu.main([*args, "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["pack"]["rows"]["1"]["trials_vs_one"] == 1.0
    assert set(saved["step"]["rows"]) == {"eager fp32"}
    assert "CUDA graphs fp32" in saved["step"]["skipped"]
    env = {**os.environ, "PYTHON": str(Path(os.sys.executable))}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(tmp_path), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 3 and "no CUDA device visible" in done.stderr
    assert "torch" in (tmp_path / "out" / "machine.txt").read_text()
