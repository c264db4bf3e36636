"""Evaluation's share of a run (issue #28, point 3), measured or read from runs that recorded it.

A run's evaluation: each task boundary's test and validation passes (``eval_seconds``; with
``eval_future`` every task's test images) and ``eval_future``'s pass over the untrained model. Its
share = evaluation seconds / (the tasks' seconds + the untrained pass); the tasks' seconds hold
their training and their boundary's evaluation.

    python benchmarks/eval_share.py [--quick]          measure: a shortened cpu-protocol cell's
        share, and one boundary at task 10 (every task's test split, the seen validation splits)
        timed side by side: the evaluation before #28 (benchmarks/eval_reference.py), today's,
        today's with larger eval batches, and under bf16 / channels_last
    python benchmarks/eval_share.py --mlflow URI --experiment NAME [--sweep NAME ...]
        the share of every finished run in an MLflow store (runs since eval_seconds was logged)
    python benchmarks/eval_share.py --results A/results.json B/results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import eval_reference  # noqa: E402
from benchmarks.cells import CONFIG, Cell, as_text, base_overrides, run_together  # noqa: E402
from benchmarks.common import cores, interleaved, io_flags, machine, median, save  # noqa: E402


def share(eval_seconds: list[float], seconds: list[float], untrained: float = 0.0) -> dict:
    """Evaluation's share of a run from its per-task seconds. Pure: numbers in, numbers out."""
    if not eval_seconds or len(eval_seconds) != len(seconds):
        return {"share": None, "why": "the run did not record eval_seconds for every task"}
    total = sum(seconds) + untrained
    evaluated = sum(eval_seconds) + untrained
    return {
        "share": evaluated / total if total > 0 else None,
        "eval_seconds": evaluated,
        "run_seconds": total,
        "per_task": [e / s if s > 0 else None for e, s in zip(eval_seconds, seconds, strict=True)],
    }


def of_results(results: dict[str, Any]) -> dict[str, Any]:
    return share(
        results.get("eval_seconds_per_task") or [],
        results.get("seconds_per_task") or [],
        results.get("untrained_eval_seconds") or 0.0,
    )


def summarize(shares: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The median, lowest and highest share over runs that have one."""
    values = [s["share"] for s in shares.values() if s.get("share") is not None]
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": median(values), "min": min(values), "max": max(values)}


def from_mlflow(uri: str, experiment: str, sweeps: list[str] | None) -> dict[str, Any]:
    """Every finished run of ``experiment`` (of ``sweeps`` when given): its share, from the
    per-task metrics ``eval_seconds`` and ``seconds`` and the metric ``untrained_eval_seconds``."""
    from analysis.store import MlflowSource, children, client_for, resolve_uri, select_sweeps

    source = MlflowSource(client_for(resolve_uri(uri)))
    exp = source.experiment(experiment)
    runs = children(exp, select_sweeps(exp, sweeps)) if sweeps else exp.runs
    runs = [r for r in runs if r.status == "FINISHED"]
    for key in ("eval_seconds", "seconds"):
        source.histories(runs, key)
    per_run = {}
    for r in runs:
        steps = sorted(r.history["seconds"])
        evals = [r.history["eval_seconds"].get(s) for s in steps]
        per_run[r.run_id] = {
            "method": r.method,
            "sweep": r.sweep,
            "variant": r.variant,
            "seed": r.seed,
            **share(
                [] if None in evals else evals,
                [r.history["seconds"][s] for s in steps],
                r.metric("untrained_eval_seconds") or 0.0,
            ),
        }
    # By sweep too: a search's 3-task trials and a final sweep's 7-task cells of one method
    # evaluate different numbers of tasks per boundary.
    groups: dict[str, dict[str, dict[str, Any]]] = {"method": {}, "sweep": {}}
    for rid, s in per_run.items():
        for by, g in groups.items():
            g.setdefault(str(s[by]), {})[rid] = s
    return {
        "source": {"mlflow": uri, "experiment": experiment, "sweeps": sweeps},
        "runs": per_run,
        **{f"by_{by}": {k: summarize(v) for k, v in g.items()} for by, g in groups.items()},
        "all": summarize(per_run),
    }


# One boundary at task 10, side by side: (config overrides, which evaluation).
VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "before #28": ({}, "reference"),
    "now": ({}, "now"),
    "now, eval batch 1000": ({"schedule.eval_batch_size": 1000}, "now"),
    "now, eval batch 2000": ({"schedule.eval_batch_size": 2000}, "now"),
    "now, bf16": ({"run.precision": "bf16"}, "now"),
    "now, channels_last": ({"run.channels_last": True}, "now"),
}


def engine_at_task(overrides: dict[str, Any], src, t: int):
    """An engine whose method has begun tasks 0..t (teacher, old prototypes), untrained: what a
    boundary after task t evaluates, at the protocol's sizes."""
    from pah_core.config import load_config
    from pah_core.data import TaskStream
    from pah_core.engine import Engine

    # The shipped config, as the cells run it: its validation splits are evaluated too.
    cfg = load_config(CONFIG, [f"{k}={as_text(v)}" for k, v in overrides.items()])
    engine = Engine(cfg, TaskStream(src, cfg.data, cfg.run.seed))
    t = min(t, len(engine.stream) - 1)
    for j in range(t + 1):
        engine.method.begin_task(engine.stream.task(j), engine.normalize)
    return engine, t


def bench_boundary(
    base: dict[str, Any], variants: list[str], rounds: int, data_root: str | None
) -> dict[str, Any]:
    """Seconds of one boundary after task 10 (eval_future: every task's test split; the seen
    validation splits) per variant, interleaved rounds, medians; today's counts checked equal to
    the evaluation's before #28."""
    import time

    from pah_core.config import load_config
    from pah_core.data import load_source
    from pah_core.numerics import bf16_supported

    data = load_config(CONFIG, [f"{k}={as_text(v)}" for k, v in base.items()]).data
    src = load_source(data, data_root)
    variants = ["before #28", "now", *[v for v in variants if v not in ("before #28", "now")]]
    if not bf16_supported(torch.device("cpu")):
        variants = [v for v in variants if "bf16" not in v]
    engines: dict[str, Any] = {}
    for v in variants:
        key = json.dumps(VARIANTS[v][0], sort_keys=True)
        engines.setdefault(key, engine_at_task({**base, **VARIANTS[v][0]}, src, 9))

    def boundary(v: str):
        engine, t = engines[json.dumps(VARIANTS[v][0], sort_keys=True)]
        tasks = engine.evaluated_tasks(t)
        if VARIANTS[v][1] == "reference":
            return eval_reference.boundary(engine, t, tasks, engine.has_val)
        return engine.evaluator.boundary(t, tasks, engine.has_val)

    (now, now_val), (old, old_val) = boundary("now"), boundary("before #28")
    same = np.array_equal(now, old) and (now_val is None or np.array_equal(now_val, old_val))
    for v in variants:  # warm-up: oneDNN's kernels for each batch shape
        boundary(v)

    def seconds(v: str) -> float:
        started = time.perf_counter()
        boundary(v)
        return time.perf_counter() - started

    times = interleaved(variants, rounds, seconds)
    before = median(times["before #28"]) if "before #28" in times else None
    rows = {
        v: {"seconds": median(s), "rounds": s, "vs_before": before / median(s) if before else None}
        for v, s in times.items()
    }
    return {"rows": rows, "now_counts_equal_before": same}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """A shortened cpu-protocol cell's share (today's code), and one boundary side by side."""
    threads = args.threads or cores()
    torch.set_num_threads(threads)
    fraction = args.fraction or (0.04 if args.quick else 0.2)
    cell_overrides = base_overrides(fraction, args.synthetic)
    print(f"eval share: one cell at {fraction:g} of the images, {threads} threads")
    # The same cell evaluating, of the future tasks, only the next one (what forward transfer
    # reads): its share beside today's default, one cell after the other.
    next_only = {**cell_overrides, "schedule.eval_future_tasks": "next"}
    cell, cell_next = (
        run_together([Cell(o, threads)], args.data_root)["cells"][0]
        for o in (cell_overrides, next_only)
    )

    def cell_share(c: dict[str, Any]) -> dict[str, Any]:
        return share(c["eval_seconds_per_task"], c["seconds_per_task"], c["untrained_eval_seconds"])

    run_share = cell_share(cell)
    variants = args.variants or list(VARIANTS)
    print(f"eval share: one boundary after task 10, {variants}")
    rounds = args.rounds or (3 if args.quick else 5)
    boundary = bench_boundary(base_overrides(1.0, args.synthetic), variants, rounds, args.data_root)
    ratio = boundary["rows"]["now"]["vs_before"]
    s = run_share["share"]
    # What the share was with the evaluation before #28, from this run's share and the ratio of
    # the two evaluations measured side by side (derived, not measured on a run).
    before = s * ratio / (1 - s + s * ratio) if s is not None and ratio else None
    return {
        "cell": {"fraction": fraction, "threads": threads, "overrides": cell_overrides, **cell},
        "share_now": run_share,
        "share_next_future_task_only": {"overrides": next_only, **cell_share(cell_next)},
        "boundary": boundary,
        "share_before_derived": before,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a cell at 4%% of the images, 3 rounds")
    p.add_argument("--fraction", type=float, help="the cell's share of the images (default 0.2)")
    p.add_argument("--rounds", type=int, help="boundary rounds (default 5; quick 3)")
    p.add_argument(
        "--variants", type=lambda t: [v.strip() for v in t.split(",")], help=f"of {list(VARIANTS)}"
    )
    p.add_argument("--threads", type=int, help="torch threads (default: every core)")
    p.add_argument("--mlflow", help="read the runs of an MLflow store instead of measuring")
    p.add_argument("--experiment", help="with --mlflow: the experiment")
    p.add_argument("--sweep", action="append", help="with --mlflow: only this sweep (repeatable)")
    p.add_argument("--results", nargs="+", help="read these results.json instead of measuring")
    io_flags(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser()
    args = p.parse_args(argv)
    unknown = [v for v in args.variants or [] if v not in VARIANTS]
    if unknown:
        p.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if args.mlflow and not args.experiment:
        p.error("--mlflow needs --experiment")
    results: dict[str, Any] = {"benchmark": "eval_share", **machine(), "quick": args.quick}
    if args.mlflow:
        results.update(from_mlflow(args.mlflow, args.experiment, args.sweep))
    elif args.results:
        per = {f: of_results(json.loads(Path(f).read_text())) for f in args.results}
        results.update({"runs": per, "all": summarize(per)})
    else:
        results.update(measure(args))
    print_results(results)
    save("eval_share", results, args.out)
    return results


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def print_results(results: dict[str, Any]) -> None:
    if "share_now" in results:
        print(
            f"\nevaluation's share of the cell (today's code): {pct(results['share_now']['share'])}"
        )
        nxt = results["share_next_future_task_only"]["share"]
        print(f"... with schedule.eval_future_tasks=next: {pct(nxt)}")
        b = results["boundary"]
        print(
            f"one boundary after task 10 (counts equal to before #28: {b['now_counts_equal_before']}):"
        )
        for v, r in b["rows"].items():
            vs = f"{r['vs_before']:.2f}x" if r["vs_before"] else "-"
            print(f"  {v:24} {r['seconds']:7.2f} s   speed-up vs before: {vs}")
        print(
            f"share with the evaluation before #28 (derived): {pct(results['share_before_derived'])}"
        )
        return
    for by in ("by_method", "by_sweep"):
        for m, s in results.get(by, {}).items():
            print(
                f"  {m:24} n={s['n']}  median {pct(s.get('median'))}  [{pct(s.get('min'))}, {pct(s.get('max'))}]"
            )
    a = results["all"]
    print(f"all runs: n={a['n']}, median share {pct(a.get('median'))}")


if __name__ == "__main__":
    main()
