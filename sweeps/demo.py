"""The demo (`make demo`): a small real PAH search on CIFAR-100 that learns, against a fine-tune
reference under the same protocol, and a few lines on what just happened.

    python sweeps/demo.py [--storage runs/ray_results] [--mlflow-uri runs/mlflow.db] [--verbose]
                          [--run-reference | --write-reference]

1. ``sweeps/cifar100_search.py --preset demo``: 4 Optuna trials (the paper's defaults first), two
   at a time, ASHA stopping weak ones at task boundaries; 4 tasks of 10 classes, 200 images per
   class, a small CNN, 3 epochs per task (pah_sweep/presets.py's "demo" preset).
2. The fine-tune reference: the same protocol and seed, no protection against forgetting. Read from
   the shipped ``docs/results/demo/finetune_reference.json`` when that was trained under exactly
   the config the demo would train (it saves a minute of the demo); ``--run-reference`` trains it
   here (``sweeps/baselines.py --methods finetune --preset demo``), as does a shipped file of
   another config. ``--write-reference`` trains only the reference and writes the shipped file
   (after a change to the preset or the base config).
3. The summary, read back from the sweeps' MLflow parent runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from pah_core.config import load_config, own_method_keys, with_added_keys  # noqa: E402
from pah_core.tracking import load_run_json, optuna_storage_beside, ui_commands  # noqa: E402
from pah_core.typed_dicts import flatten  # noqa: E402
from pah_sweep import REPO, search  # noqa: E402
from pah_sweep.presets import PRESETS  # noqa: E402
from pah_sweep.record import (  # noqa: E402
    check_tracking_uri_or_default,
    mlflow_client,
    sweep_parent_filter,
)
from pah_sweep.spec import GridSpec, SearchSpec, SweepSpec, add_flags, as_spec, from_args  # noqa: E402
from pah_sweep.summary import LINK_WORDS  # noqa: E402
from sweeps import baselines  # noqa: E402

PRESET = "demo"
CHANCE = 0.10  # 10 classes per task, the task id given
REFERENCE = REPO / "docs" / "results" / "demo" / "finetune_reference.json"


def reference_config() -> dict[str, Any]:
    """The config the fine-tune reference trains: the demo preset, the base config's seed (the
    search's trials' seed), fine-tuning; as JSON would give it back."""
    overrides = {**PRESETS["cifar100"][PRESET], "method.name": "finetune"}
    cfg = load_config(REPO / "configs" / "cifar100_pah.yaml", overrides)
    return json.loads(json.dumps(cfg.to_dict()))


def shipped_reference(config: dict[str, Any]) -> dict[str, Any] | None:
    """The shipped fine-tune reference, if it was trained under exactly ``config``."""
    if not REFERENCE.is_file():
        return None
    shipped = json.loads(REFERENCE.read_text())
    # Other methods' options are no part of the run (a reference written before runs recorded
    # their own method's options only lists every method's); keys added since it was written
    # count as the values it ran under.
    recorded = with_added_keys(flatten(shipped.get("config") or {}))
    same = own_method_keys(recorded) == own_method_keys(with_added_keys(flatten(config)))
    return shipped if same else None


def parent_summary(mlflow_uri: str, experiment: str, sweep: str) -> dict[str, Any]:
    """A finished sweep's trials and best trial, as its parent run holds them."""
    from pah_core.mlflow_reporter import find_run
    from pah_sweep.leaderboard import sweep_links

    client = mlflow_client(mlflow_uri)
    exp = client.get_experiment_by_name(experiment)
    (parent,) = client.search_runs([exp.experiment_id], filter_string=sweep_parent_filter(sweep))
    best = load_run_json(mlflow_uri, parent.info.run_id, "best_config.json")
    best_run = find_run(client, exp.experiment_id, f"{sweep}/{best['trial']}")
    if best_run is not None:  # its run name says which trial it is (pah_sweep.names)
        best["name"] = best_run.info.run_name
    best_id = None if best_run is None else best_run.info.run_id
    return {
        "experiment_id": exp.experiment_id,
        "parent_run_id": parent.info.run_id,
        "trials": load_run_json(mlflow_uri, parent.info.run_id, "trials.json"),
        "best": best,
        "links": sweep_links(mlflow_uri, exp.experiment_id, parent.info.run_id, best_id),
    }


def final_lines(
    pah: dict[str, Any], finetune: dict[str, Any], n_run: int, reference: str = ""
) -> list[str]:
    """What the user just saw, in a few lines: the paper-defaults trial and the best trial against
    the fine-tune reference (``finetune``: its avg_acc and forgetting; ``reference``: where it
    comes from, when not from this demo), and the compute ASHA saved."""

    def shown(t: dict[str, Any]) -> str:
        if t.get("avg_acc") is None or t.get("forgetting") is None:
            return f"no result ({t.get('status', 'failed')})"
        return f"acc {100 * t['avg_acc']:.1f}%, forgetting {100 * t['forgetting']:.1f}%"

    trials = pah["trials"]
    # The search evaluates the paper's defaults first: Tune's first trial.
    defaults = trials[0]
    best = pah["best"]
    trained = sum(int(t["tasks_done"]) for t in trials)
    stopped = [t for t in trials if t["status"] == "stopped early (ASHA)"]
    full = len(trials) * n_run
    return [
        f"PAH, paper defaults:  {shown(defaults)} after {defaults['tasks_done']} tasks "
        f"(10 classes each; chance {100 * CHANCE:.0f}%)",
        f"PAH, best of {len(trials)} trials ({best.get('name', best['trial'])}):  {shown(best)}",
        f"fine-tune reference{f' ({reference})' if reference else ''}:  {shown(finetune)}",
        f"ASHA stopped {len(stopped)} of {len(trials)} trials early: {trained} of {full} "
        f"trial-tasks trained ({100 * (1 - trained / full):.0f}% of the training saved)",
    ]


def main(argv: list[str] | None = None) -> int:
    # Reading the parent runs' summaries must not draw a progress bar per file.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = parser().parse_args(argv)
    started = time.perf_counter()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = {"search": f"demo-search-{stamp}", "finetune": f"demo-finetune-{stamp}"}
    uri = check_tracking_uri_or_default(args.mlflow_uri)
    config = reference_config()
    shipped = None if args.run_reference else shipped_reference(config)
    spec = from_args(SearchSpec, args, preset=PRESET, mlflow_uri=uri)

    def train_reference() -> dict[str, Any] | None:
        """The fine-tune sweep under the demo's protocol and seed; its best (only) trial."""
        seeds = [config["run"]["seed"]]
        rc = baselines.run(
            as_spec(spec, GridSpec, name=names["finetune"], seeds=seeds), ["finetune"]
        )
        return None if rc != 0 else parent_summary(uri, args.experiment, names["finetune"])["best"]

    if args.write_reference:  # the maintainers' command: the reference alone, then the file
        finetune = train_reference()
        if finetune is None:
            return 1
        write_reference(finetune, config, names["finetune"])
        return 0
    print("[demo] a PAH search (4 trials, 2 at a time, ASHA) on real CIFAR-100", flush=True)
    rc = search.run("cifar100", replace(spec, name=names["search"]))
    if rc != 0:
        return rc
    if shipped is not None:
        finetune, reference = shipped, f"shipped: {REFERENCE.relative_to(REPO)}, same protocol"
    else:
        print("\n[demo] the fine-tune reference, same data, schedule and seed", flush=True)
        finetune, reference = train_reference(), ""
        if finetune is None:
            return 1
    pah = parent_summary(uri, args.experiment, names["search"])
    print(f"\n[demo] done in {time.perf_counter() - started:.0f} s. What you just saw:")
    print_what_happened(pah, finetune, reference, uri)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python sweeps/demo.py", description=__doc__.splitlines()[0])
    # The demo's settings are the preset's: of the sweep flags, only where it records and reads.
    add_flags(
        p,
        SweepSpec,
        only=("storage", "mlflow_uri", "experiment", "data_root", "verbose"),
        defaults={
            "storage": "runs/ray_results",
            "mlflow_uri": "runs/mlflow.db",
            "experiment": "pah-demo",
        },
        helps={
            "storage": "Ray results and checkpoints (default runs/ray_results)",
            "mlflow_uri": "MLflow tracking URI (default runs/mlflow.db)",
            "experiment": "MLflow experiment (default pah-demo)",
            "verbose": "Ray's own output too",
        },
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--run-reference", action="store_true", help="train the fine-tune reference here"
    )
    which.add_argument(
        "--write-reference",
        action="store_true",
        help=f"train only the fine-tune reference and write {REFERENCE.relative_to(REPO)}",
    )
    return p


def print_what_happened(
    pah: dict[str, Any], finetune: dict[str, Any], reference: str, uri: str
) -> None:
    """The demo's last lines: PAH's defaults and best trial against the fine-tune reference,
    what ASHA saved, and where to look."""
    n_run = int(pah["best"]["tasks_done"])  # the best trial is one that ran every task
    for line in final_lines(pah, finetune, n_run, reference):
        print(f"  {line}")
    print("  browse the runs (parent run per sweep, one child per trial):")
    for line in ui_commands(uri, pah["experiment_id"]):
        print(f"    {line}")
    for what, url in pah["links"].items():
        print(f"    {LINK_WORDS[what]}: {url}")
    print(f"  the Optuna study: optuna-dashboard {optuna_storage_beside(uri)}")


def write_reference(finetune: dict[str, Any], config: dict[str, Any], sweep: str) -> None:
    """The fine-tune reference as shipped: its numbers, the exact config, where it came from."""
    from pah_core.mlflow_reporter import git_sha

    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    shipped = {
        "what": "the demo's fine-tune reference (sweeps/demo.py --write-reference)",
        "avg_acc": finetune["avg_acc"],
        "forgetting": finetune["forgetting"],
        "tasks_done": finetune["tasks_done"],
        "sweep": sweep,
        "git_sha": git_sha(REPO),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "config": config,
    }
    REFERENCE.write_text(json.dumps(shipped, indent=2) + "\n")
    print(f"[demo] wrote {REFERENCE}")


if __name__ == "__main__":
    sys.exit(main())
