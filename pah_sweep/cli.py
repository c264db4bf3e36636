"""The sweeps' command lines: the argument groups every sweep kind shares, flag types that refuse
impossible values at parse time, and the parsing of list flags and of ``--points``.

All of it runs before anything starts (Ray, MLflow, a sweep folder): a bad flag is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .trial import DRIVER_CPUS, OBJECTIVE_CHOICES


class SweepError(RuntimeError):
    """A bad input, or a state the user must fix: the entry points print it as one line, exit 2."""


# Presets: overrides on top of the dataset's shipped config, per dataset (the --dataset choices).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cifar100": {
        # Real CIFAR-100, minutes on 2 CPU cores: 4 of 10 tasks, 50 images per class, 1 epoch.
        "smoke": {
            "data.train_per_class": 50,
            "data.test_per_class": 20,
            "data.val_fraction": 0.1,
            "schedule.epochs_per_task": 1,
            "schedule.max_tasks": 4,
        },
        # `make demo`: about two minutes of search on 2 CPU cores, enough training per task that
        # fine-tuning visibly forgets and PAH does not: 4 of 10 tasks, 200 images per class (180
        # to train), a small CNN, 3 epochs of batch 32 (chance 10%); the fine-tune reference's
        # numbers are in docs/results/demo/finetune_reference.json.
        "demo": {
            "data.train_per_class": 200,
            "data.test_per_class": 50,
            "data.val_fraction": 0.1,
            "model.backbone": "small_cnn",
            "schedule.epochs_per_task": 3,
            "schedule.max_tasks": 4,
            "optim.batch_size": 32,
        },
        "paper": {},
    },
    "tinyimagenet": {
        "smoke": {
            "data.train_per_class": 20,
            "data.test_per_class": 10,
            "data.val_fraction": 0.1,
            "schedule.epochs_per_task": 1,
            "schedule.max_tasks": 3,
        },
        "demo": {
            "data.train_per_class": 100,
            "data.val_fraction": 0.1,
            "schedule.epochs_per_task": 3,
            "schedule.max_tasks": 3,
        },
        "paper": {},
    },
}
DEFAULT_SAMPLES = {"smoke": 4, "demo": 4, "paper": 64}


def _number(kind: type, low: float, low_allowed: bool, allowed: str) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of ``text``, finite and above ``low`` (or equal, if allowed)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {allowed}") from None
        if not math.isfinite(value) or value < low or (value == low and not low_allowed):
            raise argparse.ArgumentTypeError(f"{text} is not allowed: {allowed}")
        return value

    parse.__name__ = allowed  # what argparse names in its own messages
    return parse


count = _number(int, 1, True, "an integer, 1 or more")
positive = _number(float, 0.0, False, "a number above 0")
non_negative = _number(float, 0.0, True, "a number, 0 or more")


def set_argument(p: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable): config overrides, collected in ``args.overrides``."""
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def common_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags every sweep kind shares: data, resources, storage, tracking, resume."""
    p.add_argument(
        "--preset",
        choices=list(DEFAULT_SAMPLES),
        default="smoke",
        help="smoke: real data, a minute or two on 2 CPU cores; demo: a little more, enough to "
        "learn; paper: the paper's protocol",
    )
    p.add_argument("--config", help="base config (default: configs/<dataset>_pah.yaml)")
    set_argument(p, "override the base config for every trial (repeatable)")
    resource_arguments(p)
    p.add_argument(
        "--storage",
        default="ray_results",
        help="folder or s3:// URI for Ray results and checkpoints",
    )
    p.add_argument(
        "--mlflow-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite file mlflow.db in the "
        "working directory; or http://host:port)",
    )
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: pah-<dataset>)")
    p.add_argument(
        "--name",
        default=None,
        help="sweep name (default: pah-<dataset>-<kind>-<preset>-<timestamp>)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the interrupted sweep --name in --storage"
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="Ray's own output too: its status table, the workers' lines, its warnings",
    )
    p.add_argument(
        "--tag",
        dest="tags",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an MLflow tag on the sweep's parent run and every trial's run (repeatable)",
    )
    return p


def parse_tags(items: list[str]) -> dict[str, str]:
    """``--tag KEY=VALUE`` flags as a dict."""
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SweepError(f"--tag {item!r}: write KEY=VALUE, e.g. --tag study=tuned-cpu")
        tags[key.strip()] = value
    return tags


def resource_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Where trials run and on what: Ray address, workers and their CPUs/GPUs, the data folder."""
    p.add_argument("--workers-per-trial", type=count, default=1)
    p.add_argument(
        "--cpus-per-worker",
        type=positive,
        default=1.0 - DRIVER_CPUS,
        help="CPUs per worker (default 0.99: a 1-worker trial plus its driver take one core)",
    )
    p.add_argument("--gpus-per-worker", type=non_negative, default=0.0)
    p.add_argument(
        "--ray-train",
        choices=("auto", "always"),
        default="auto",
        help="auto: a one-worker trial trains in its own Tune process (no Ray Train: ~15 s less "
        "per trial on a small machine; Tune restarts it from its last task checkpoint if it "
        "dies; each task's checkpoint is stored before the next task starts), more workers train "
        "under Ray Train; always: Ray Train for every trial (checkpoints upload while the next "
        "task trains, which pays off with large models on cloud storage; its dashboard views)",
    )
    p.add_argument(
        "--max-concurrent",
        type=count,
        help="trials in flight (default: as many as the cluster fits)",
    )
    p.add_argument(
        "--address", default=None, help="Ray address (default: $RAY_ADDRESS, else a local Ray)"
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="dataset folder (default: $PAH_DATA_ROOT, else ~/.cache/pah/data)",
    )
    return p


# How a search spends its trials (--hpo-protocol), each with its source.
HPO_PROTOCOLS = {
    "end_of_training": "each trial trains the whole stream (the usual end-of-training HPO)",
    "first_task": "trials train and validate on task 1 only; the choice then runs the whole stream "
    "(Lee, Hellan, Ericsson, Crowley & Storkey, 'Hyperparameter Selection in Continual Learning', "
    "arXiv 2404.06466, recommend it)",
    "first_k": "trials train and validate on the first --first-k tasks; the choice then runs on a "
    "stream of the other tasks, whose classes no trial saw (A-GEM, Chaudhry et al., ICLR 2019)",
}


def protocol_overrides(protocol: str, k: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config overrides of a protocol's trials and of its final runs, on top of --set."""
    # Trials that stop before the stream's end never fill the full T x T matrix that forward
    # transfer needs: evaluating the tasks they never train (eval_future) would be time for nothing.
    if protocol == "first_task":
        return {"schedule.max_tasks": 1, "schedule.eval_future": False}, {}
    if protocol == "first_k":
        return {"schedule.max_tasks": k, "schedule.eval_future": False}, {"data.skip_tasks": k}
    return {}, {}


def search_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The Optuna search's own flags: how many trials, what to optimise, ASHA, extra points."""
    p.add_argument(
        "--method",
        default="pah",
        help="the method to tune (default pah): any registered method that declares a search "
        "space in its file under pah_core/methods/ (pah, lwf, ewc, si, agem, hnet, finetune, "
        "joint); its published defaults are the first trial",
    )
    p.add_argument(
        "--num-samples", type=count, help="trials to run (default: 4 smoke, 4 demo, 64 paper)"
    )
    p.add_argument(
        "--startup-trials",
        type=count,
        help="TPE's random start-up trials, the defaults' trial included (default: a quarter of "
        "--num-samples, 1 to 10), fewer than the trials, so that the sampler models the rest",
    )
    p.add_argument(
        "--objectives",
        choices=OBJECTIVE_CHOICES,
        default="acc",
        help="what Optuna optimises: task-IL accuracy (acc), forgetting, class-IL accuracy "
        "(cil_acc, under schedule.task_inference's rule); two give a Pareto set (default acc)",
    )
    p.add_argument(
        "--grace-tasks",
        type=count,
        default=None,
        help="ASHA: tasks every trial trains before it may stop (default: the first task after "
        "which every searched parameter has acted, 2 where a distillation weight is searched; at "
        "most the tasks run)",
    )
    p.add_argument(
        "--points",
        help="JSON file: a list of {config key: value} points to evaluate after the method's published defaults",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the Optuna sampler")
    p.add_argument(
        "--hpo-protocol",
        choices=list(HPO_PROTOCOLS),
        default="end_of_training",
        help="; ".join(f"{k}: {v}" for k, v in HPO_PROTOCOLS.items()),
    )
    p.add_argument(
        "--first-k", type=count, default=3, help="first_k: the tasks the search trains (default 3)"
    )
    p.add_argument(
        "--final-seeds",
        type=count,
        help="after the search, run the selected configuration over the whole stream with these "
        "many fresh seeds, as a sweep of their own (default: 0 for end_of_training, 3 otherwise)",
    )
    return p


def grid_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A grid's own flags (the dataset, the seeds), then the common ones."""
    p.add_argument("--dataset", choices=sorted(PRESETS), default="cifar100")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds (default 0,1,2)")
    return common_arguments(p)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise SweepError(f"--seeds {text!r}: give a comma-separated list of integers, e.g. 0,1,2")
    return seeds


def parse_names(text: str, allowed: Iterable[str], flag: str) -> list[str]:
    """Comma-separated names, each one of ``allowed``; at least one."""
    allowed = list(allowed)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise SweepError(f"{flag} {text!r}: name at least one, from {', '.join(allowed)}")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise SweepError(f"{flag}: unknown {unknown}; choose from {', '.join(allowed)}")
    return names


def load_points(path: str, searched: Iterable[str]) -> list[dict[str, Any]]:
    """The --points file: a JSON list of {searched config key: value} objects."""
    file = Path(path)
    if not file.is_file():
        raise SweepError(f"--points {path}: no such file")
    try:
        points = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SweepError(f"--points {path}: not valid JSON ({e})") from None
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise SweepError(f"--points {path}: expected a JSON list of {{config key: value}} objects")
    keys = set(searched)
    for p in points:
        unknown = set(p) - keys
        if unknown:
            raise SweepError(
                f"--points: {sorted(unknown)} are not searched keys; searched: {sorted(keys)}"
            )
    return points


def study_arguments(
    p: argparse.ArgumentParser, workdir: str, experiment: str, out: str | None
) -> argparse.ArgumentParser:
    """The flags of a study driver (compare_protocols.py, compare_methods.py): where it trains
    and records, where its export and report go, resume, report only."""
    p.add_argument("--workdir", default=workdir, help="MLflow store and Ray results")
    p.add_argument("--experiment", default=experiment)
    p.add_argument("--out", default=out, help=f"export and report folder (default: {out})")
    p.add_argument("--resume", action="store_true", help="continue the study in --workdir")
    p.add_argument("--report-only", action="store_true", help="export and report, train nothing")
    p.add_argument("--verbose", action="store_true", help="Ray's own output too")
    set_argument(p, "a config override for every sweep of the study (repeatable)")
    return p


def open_workdir(workdir: Path, resume: bool) -> None:
    """A study's --workdir: a new one, or with --resume the one holding the study."""
    if (workdir / "mlflow.db").exists() and not resume:
        raise SweepError(
            f"{workdir} holds a study: pass --resume to continue it, or another --workdir"
        )
    workdir.mkdir(parents=True, exist_ok=True)
