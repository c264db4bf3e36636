"""The sweep driver shared by ``sweeps/cifar100_search.py`` and ``sweeps/tinyimagenet_search.py``.

Ray Tune + OptunaSearch (TPE; single- or multi-objective, study persisted in an Optuna RDB beside the
MLflow store) behind a ConcurrencyLimiter, ASHA with one milestone per task, one MLflow parent run
per sweep and one child run per trial. ``--resume`` continues an interrupted sweep.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pah_core.config import ConfigError, load_config

from .space import PAPER_DEFAULTS, search_space
from .trial import DRIVER_CPUS, TrialPlumbing, trial_driver

REPO = Path(__file__).resolve().parents[1]
SWEEP_STATE = "pah_sweep.json"

# Presets: overrides on top of the dataset's shipped config.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cifar100": {
        # Real CIFAR-100, minutes on 2 CPU cores: 4 of 10 tasks, 50 images per class, 1 epoch.
        "smoke": {
            "data.train_per_class": 50,
            "data.test_per_class": 20,
            "data.val_fraction": 0.0,
            "schedule.epochs_per_task": 1,
            "schedule.max_tasks": 4,
        },
        "paper": {},
    },
    "tinyimagenet": {
        "smoke": {
            "data.train_per_class": 20,
            "data.test_per_class": 10,
            "data.val_fraction": 0.0,
            "schedule.epochs_per_task": 1,
            "schedule.max_tasks": 3,
        },
        "paper": {},
    },
}
DEFAULT_SAMPLES = {"smoke": 4, "paper": 64}


class SweepError(RuntimeError):
    pass


def common_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags every sweep kind shares: data, resources, storage, tracking, resume."""
    p.add_argument(
        "--preset",
        choices=["smoke", "paper"],
        default="smoke",
        help="smoke: real data, minutes on 2 CPU cores; paper: the paper's protocol",
    )
    p.add_argument("--config", help="base config (default: configs/<dataset>_pah.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the base config for every trial (repeatable)",
    )
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
    return p


def resource_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Where trials run and on what: Ray address, workers and their CPUs/GPUs, the data folder."""
    p.add_argument("--workers-per-trial", type=int, default=1)
    p.add_argument(
        "--cpus-per-worker",
        type=float,
        default=1.0 - DRIVER_CPUS,
        help="CPUs per Train worker (default 0.99: a 1-worker trial plus its driver take one core)",
    )
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.add_argument(
        "--max-concurrent", type=int, help="trials in flight (default: as many as the cluster fits)"
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


def parser(dataset: str) -> argparse.ArgumentParser:
    p = common_arguments(
        argparse.ArgumentParser(
            prog=f"python sweeps/{dataset}_search.py",
            description=f"PAH hyperparameter search on {dataset} (Ray Tune + Optuna + ASHA, MLflow tracking).",
        )
    )
    p.add_argument("--num-samples", type=int, help="trials to run (default: 4 smoke, 64 paper)")
    p.add_argument("--objectives", choices=["acc", "acc,forgetting"], default="acc")
    p.add_argument(
        "--grace-tasks",
        type=int,
        default=1,
        help="ASHA: tasks every trial trains before it may stop",
    )
    p.add_argument(
        "--points",
        help="JSON file: a list of {config key: value} points to evaluate after the paper defaults",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the Optuna sampler")
    return p


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise SweepError(f"--seeds {text!r}: give a comma-separated list of integers, e.g. 0,1,2")
    return seeds


def best_config_of_sweep(mlflow_uri: str, experiment: str, sweep: str) -> dict[str, Any]:
    """The searched keys of an earlier sweep's best trial (from its parent run's best_config.json)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = (
        []
        if exp is None
        else client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.sweep = '{sweep}' and tags.`pah.role` = 'sweep'",
            max_results=1,
        )
    )
    if not runs:
        raise SweepError(
            f"--from-sweep {sweep!r}: no such sweep in experiment {experiment!r} at {mlflow_uri}"
        )
    import mlflow.artifacts

    try:
        best = mlflow.artifacts.load_dict(f"{runs[0].info.artifact_uri}/best_config.json")
    except Exception as e:  # noqa: BLE001
        raise SweepError(
            f"--from-sweep {sweep!r}: it has no best_config.json (did it finish a trial?)"
        ) from e
    return dict(best["config"])


def absolute_storage(storage: str) -> str:
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())


def default_mlflow_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def check_tracking_uri_or_default(uri: str | None) -> str:
    from pah_core.mlflow_reporter import check_tracking_uri

    return check_tracking_uri(uri or default_mlflow_uri())


def optuna_storage_url(mlflow_uri: str, sweep_dir: Path) -> str:
    """The Optuna study lives beside an sqlite MLflow store, else in the sweep folder."""
    if mlflow_uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(mlflow_uri[len('sqlite:///') :]).with_name('optuna.db')}"
    return f"sqlite:///{sweep_dir / 'optuna.db'}"


def check_resources(cluster: dict[str, float], workers: int, cpus: float, gpus: float) -> int:
    """How many trials fit at once; a clear error (with the arithmetic) when not even one does."""
    need_cpu = DRIVER_CPUS + workers * cpus
    need_gpu = workers * gpus
    have_cpu, have_gpu = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    problems = []
    if need_cpu > have_cpu + 1e-9:
        problems.append(
            f"one trial needs {DRIVER_CPUS} (trial driver) + {workers} worker(s) x {cpus:g} CPU = {need_cpu:g} CPUs, "
            f"but the cluster has {have_cpu:g}"
        )
    if need_gpu > have_gpu + 1e-9:
        problems.append(
            f"one trial needs {workers} worker(s) x {gpus:g} GPU = {need_gpu:g} GPUs, but the cluster has {have_gpu:g}"
        )
    if problems:
        raise SweepError(
            "this sweep cannot start: "
            + "; ".join(problems)
            + ". Lower --workers-per-trial, --cpus-per-worker or --gpus-per-worker, or add nodes."
        )
    fits = math.floor(have_cpu / need_cpu + 1e-9)
    if need_gpu > 0:
        fits = min(fits, math.floor(have_gpu / need_gpu + 1e-9))
    return max(1, fits)


def pareto_front(points: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Non-dominated (id, accuracy up, forgetting down) points, best accuracy first."""
    front = [
        p
        for p in points
        if not any(q[1] >= p[1] and q[2] <= p[2] and (q[1] > p[1] or q[2] < p[2]) for q in points)
    ]
    return sorted(front, key=lambda p: -p[1])


def _init_ray(address: str | None) -> None:
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return
    # Trials import pah_core and sweeps from this checkout, installed or not.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path}
    # Ray Train gives a worker group 60 s to start. On a small machine every trial starts several
    # Python processes that import torch, and the raylet starts only as many at once as there are
    # cores, so concurrent trials can miss that deadline. A user's own setting wins.
    env["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = os.environ.get(
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "600"
    )
    # The per-task long table is appended to (MLflow downloads it first): no progress bar per task.
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = os.environ.get(
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"
    )
    runtime_env = {"env_vars": env}
    if address:
        ray.init(address=address, runtime_env=runtime_env)
    else:
        # The dashboard hosts the State API, which Ray Train needs to release the workers of a trial
        # that Tune stopped (ASHA); without it their CPUs stay reserved and later trials never start.
        ray.init(num_cpus=os.cpu_count(), runtime_env=runtime_env)


def main(dataset: str, argv: list[str] | None = None) -> int:
    args = parser(dataset).parse_args(argv)
    try:
        setup = prepare(dataset, args, num_samples=args.num_samples or DEFAULT_SAMPLES[args.preset])
        return execute(setup, lambda trainable, s: _optuna_tuner(trainable, s, args))
    except (SweepError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


@dataclass
class Setup:
    """Everything a sweep decided before its first trial."""

    args: argparse.Namespace
    name: str
    storage: str
    sweep_dir: Path
    mlflow_uri: str
    experiment: str
    objectives: list[str]
    n_run: int
    num_samples: int
    max_concurrent: int
    plumbing: TrialPlumbing
    started: float


def prepare(
    dataset: str,
    args: argparse.Namespace,
    num_samples: int,
    kind: str = "search",
    base_overrides: dict[str, Any] | None = None,
    variants: dict[str, dict[str, Any]] | None = None,
    tags: dict[str, str] | None = None,
) -> Setup:
    """Validate the config and the data, start or join Ray, check resources, open the parent run.

    ``tags`` go on the parent run and on every trial's run, after (and over) the standard ones."""
    from pah_core.config import parse_overrides
    from pah_core.data import TaskStream, load_source, resolve_data_root
    from pah_core.mlflow_reporter import git_sha

    started = time.perf_counter()
    base_path = Path(args.config) if args.config else REPO / "configs" / f"{dataset}_pah.yaml"
    overrides = {
        **PRESETS[dataset][args.preset],
        **(base_overrides or {}),
        **parse_overrides(args.overrides),
    }
    base = load_config(base_path, overrides)  # validated before anything starts
    for extra in (variants or {}).values():
        load_config(base_path, {**overrides, **extra})  # every variant too
    n_run = base.tasks_to_run
    data_root = str(resolve_data_root(args.data_root or base.data.root))
    storage = absolute_storage(args.storage)
    name = args.name or f"pah-{dataset}-{kind}-{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    sweep_dir = Path(storage) / name
    mlflow_uri = check_tracking_uri_or_default(args.mlflow_uri)
    experiment = args.experiment or f"pah-{dataset}"
    objectives = getattr(args, "objectives", "acc").split(",")
    if args.workers_per_trial < 1:
        raise SweepError(f"--workers-per-trial = {args.workers_per_trial}: use 1 or more")

    # Check the data before Ray starts: a missing dataset should fail here, not in every trial.
    spec = TaskStream(load_source(base.data, data_root), base.data).spec

    import ray

    _init_ray(args.address)
    fits = check_resources(
        ray.cluster_resources(), args.workers_per_trial, args.cpus_per_worker, args.gpus_per_worker
    )
    max_concurrent = min(args.max_concurrent or fits, fits)

    state_file = sweep_dir / SWEEP_STATE
    if args.resume:
        if not state_file.is_file():
            raise SweepError(f"--resume: no sweep {name!r} in {storage} (missing {state_file})")
        parent_run_id = json.loads(state_file.read_text())["parent_run_id"]
    else:
        if sweep_dir.exists():
            raise SweepError(
                f"sweep {name!r} already exists in {storage}: pass --resume to continue it, or another --name"
            )
        parent_run_id = _start_parent_run(
            mlflow_uri, experiment, name, args, base, spec.fingerprint, kind, tags or {}
        )
        sweep_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "parent_run_id": parent_run_id,
            "mlflow_uri": mlflow_uri,
            "experiment": experiment,
            "dataset": dataset,
            "preset": args.preset,
            "objectives": objectives,
            "kind": kind,
        }
        state_file.write_text(json.dumps(state, indent=2))

    plumbing = TrialPlumbing(
        base_config=base.to_dict(),
        data_root=data_root,
        storage_path=storage,
        mlflow_uri=mlflow_uri,
        experiment=experiment,
        parent_run_id=parent_run_id,
        sweep_name=name,
        workers=args.workers_per_trial,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        tags={
            "git_sha": git_sha(REPO),
            "dataset_fingerprint": spec.fingerprint,
            "preset": args.preset,
            "sweep_kind": kind,
            **(tags or {}),
        },
        variants=dict(variants or {}),
    )
    return Setup(
        args,
        name,
        storage,
        sweep_dir,
        mlflow_uri,
        experiment,
        objectives,
        n_run,
        num_samples,
        max_concurrent,
        plumbing,
        started,
    )


def execute(setup: Setup, make_tuner, param_space: dict[str, Any] | None = None) -> int:
    """Run (or restore) the Tuner that ``make_tuner(trainable, setup)`` builds, then summarise.

    ``param_space``: the Tuner's param space, when it holds functions (``tune.sample_from``): Tune
    stores them as placeholders, and a restored sweep resolves them only from the space passed
    again (else a trial not started yet gets the placeholder as its value)."""
    from ray import tune

    s = setup
    trainable = tune.with_resources(
        tune.with_parameters(trial_driver, plumbing=s.plumbing), {"cpu": DRIVER_CPUS}
    )
    print(
        f"[sweep] {s.name}: {s.num_samples} trial(s), {s.max_concurrent} at a time, objectives {s.objectives}, "
        f"{s.n_run} task(s) each; MLflow {s.mlflow_uri} (experiment {s.experiment!r})",
        flush=True,
    )
    if s.args.resume:
        path = str(s.sweep_dir)
        if not tune.Tuner.can_restore(path):
            raise SweepError(f"--resume: {path} holds no restorable Tune experiment")
        tuner = tune.Tuner.restore(
            path,
            trainable=trainable,
            param_space=param_space,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
    else:
        tuner = make_tuner(trainable, s)
    results = tuner.fit()
    summary = _summarise(results, s.objectives, s.n_run)
    _finish_parent_run(s.mlflow_uri, s.plumbing.parent_run_id, summary, s.experiment)
    _print_summary(summary, time.perf_counter() - s.started, s.mlflow_uri)
    return 0


def run_config(s: Setup):
    from ray import tune

    return tune.RunConfig(
        name=s.name,
        storage_path=s.storage,
        failure_config=tune.FailureConfig(max_failures=0),
        verbose=1,
    )


def _optuna_tuner(trainable, s: Setup, args: argparse.Namespace):
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    points = [dict(PAPER_DEFAULTS)]
    if args.points:
        extra = json.loads(Path(args.points).read_text())
        if not isinstance(extra, list) or not all(isinstance(p, dict) for p in extra):
            raise SweepError(
                f"--points {args.points}: expected a JSON list of {{config key: value}} objects"
            )
        space_keys = set(search_space())
        points += [{**PAPER_DEFAULTS, **p} for p in extra]
        for p in points:
            unknown = set(p) - space_keys
            if unknown:
                raise SweepError(
                    f"--points: {sorted(unknown)} are not searched keys; searched: {sorted(space_keys)}"
                )
    two = len(s.objectives) == 2
    searcher = OptunaSearch(
        metric=["objective_acc", "objective_forgetting"] if two else "objective_acc",
        mode=["max", "min"] if two else "max",
        points_to_evaluate=points,
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        storage=optuna.storages.RDBStorage(optuna_storage_url(s.mlflow_uri, s.sweep_dir)),
        study_name=s.name,
    )
    scheduler = ASHAScheduler(
        time_attr="tasks_done",
        metric="objective_acc",
        mode="max",
        max_t=s.n_run,
        grace_period=min(args.grace_tasks, s.n_run),
        reduction_factor=2,
    )
    return tune.Tuner(
        trainable,
        param_space=search_space(),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent),
            scheduler=scheduler,
            num_samples=s.num_samples,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=run_config(s),
    )


def parse_names(text: str, allowed, flag: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise SweepError(f"{flag}: unknown {unknown}; choose from {', '.join(allowed)}")
    return names


def run_grid(
    dataset: str,
    args: argparse.Namespace,
    kind: str,
    variants: dict[str, dict[str, Any]],
    seeds: list[int],
    base_overrides: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    seeds_outer: bool = False,
) -> int:
    """Named variants (groups of config overrides) x seeds as a grid; every cell runs to the end.

    Cells start in grid order: every seed of the first variant, then the next variant; with
    ``seeds_outer``, every variant for the first seed, then the next seed, so that a grid cut short
    holds whole seeds."""
    setup = prepare(
        dataset,
        args,
        num_samples=len(variants) * len(seeds),
        kind=kind,
        base_overrides=base_overrides,
        variants=variants,
        tags=tags,
    )
    space = grid_space(list(variants), seeds, seeds_outer)
    return execute(setup, lambda trainable, s: grid_tuner(trainable, s, space), space)


def grid_space(variants: list[str], seeds: list[int], seeds_outer: bool = False) -> dict[str, Any]:
    """The param space of a variants x seeds grid (``trial_driver`` reads "variant" and "run.seed").

    Tune nests grid_search keys in the sorted order of their names, the first key varying fastest
    (``parse_spec_vars`` sorts them): "run.seed" < "variant", so a plain grid runs every seed of a
    variant before the next variant. For seeds outermost the seed grid goes under "wave", which
    sorts after "variant", and "run.seed" is read from it."""
    from ray import tune

    if not seeds_outer:
        return {"variant": tune.grid_search(variants), "run.seed": tune.grid_search(seeds)}
    return {
        "variant": tune.grid_search(variants),
        "wave": tune.grid_search(seeds),
        "run.seed": tune.sample_from(_seed_of_wave),
    }


def _seed_of_wave(spec) -> int:
    return spec.config.wave


def grid_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--dataset", choices=sorted(PRESETS), default="cifar100")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds (default 0,1,2)")
    return common_arguments(p)


def grid_tuner(trainable, s: Setup, param_space: dict[str, Any]):
    """A plain grid (no searcher, no early stopping): every cell runs to the end."""
    from ray import tune

    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            num_samples=1,
            max_concurrent_trials=s.max_concurrent,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=run_config(s),
    )


def _trial_name(trial) -> str:
    # Deterministic names: the trial id is how a resumed sweep finds its MLflow child run again.
    return f"trial_{trial.trial_id}"


def _start_parent_run(mlflow_uri, experiment, name, args, base, fingerprint, kind, tags) -> str:
    from mlflow.tracking import MlflowClient

    from pah_core.mlflow_reporter import RUN_KEY_TAG, get_or_create_experiment, git_sha

    client = MlflowClient(tracking_uri=mlflow_uri)
    exp_id = get_or_create_experiment(client, experiment)
    run = client.create_run(
        exp_id,
        run_name=name,
        tags={
            RUN_KEY_TAG: f"{name}/parent",
            "sweep": name,
            "pah.role": "sweep",
            "sweep_kind": kind,
            "git_sha": git_sha(REPO),
            "dataset_fingerprint": fingerprint,
            "preset": args.preset,
            "objectives": ",".join(getattr(args, "objectives", "acc").split(",")),
            **tags,
        },
    )
    rid = run.info.run_id
    client.log_dict(
        rid,
        {"base_config": base.to_dict(), "argv": sys.argv, "search_space": sorted(search_space())},
        "sweep_config.json",
    )
    return rid


def _summarise(results, objectives: list[str], n_run: int) -> dict[str, Any]:
    trials, failures = [], []
    for r in results:
        m = r.metrics or {}
        cfg = {k: v for k, v in (r.config or {}).items() if "." in k}
        trial_id = m.get("trial_id") or (
            Path(r.path).name.removeprefix("trial_") if r.path else "?"
        )
        row = {
            "trial": trial_id,
            "variant": (r.config or {}).get("variant"),
            "tasks_done": int(m.get("tasks_done", 0)),
            "avg_acc": m.get("avg_acc"),
            "forgetting": m.get("forgetting"),
            "config": cfg,
            "status": "finished",
        }
        if r.error is not None:
            lines = [ln for ln in str(r.error).strip().splitlines() if ln.strip()]
            cause = next(
                (ln for ln in reversed(lines) if "Error" in ln),
                lines[-1] if lines else repr(r.error),
            )
            row["status"] = "error"
            row["error"] = cause.strip()
            failures.append(row)
        elif row["tasks_done"] < n_run:
            row["status"] = "stopped early (ASHA)"
        trials.append(row)
    complete = [t for t in trials if t["status"] == "finished" and t["tasks_done"] >= n_run]
    best = max(complete, key=lambda t: t["avg_acc"], default=None)
    front = (
        pareto_front([(t["trial"], t["avg_acc"], t["forgetting"]) for t in complete])
        if len(objectives) == 2
        else []
    )
    by_id = {t["trial"]: t for t in complete}
    return {
        "trials": trials,
        "failures": failures,
        "best": best,
        "pareto": [by_id[p[0]] for p in front],
        "n_run": n_run,
    }


def _finish_parent_run(
    mlflow_uri: str, parent_run_id: str, summary: dict[str, Any], experiment: str
) -> None:
    from mlflow.tracking import MlflowClient

    from pah_core.mlflow_reporter import find_run, get_or_create_experiment

    client = MlflowClient(tracking_uri=mlflow_uri)
    client.log_dict(parent_run_id, summary["trials"], "trials.json")
    best = summary["best"]
    if best:
        client.log_dict(parent_run_id, best, "best_config.json")
        client.log_metric(parent_run_id, "best_avg_acc", float(best["avg_acc"]))
        client.log_metric(parent_run_id, "best_forgetting", float(best["forgetting"]))
        for k, v in best["config"].items():
            client.set_tag(parent_run_id, f"best.{k}", str(v))
    if summary["pareto"]:
        client.log_dict(parent_run_id, summary["pareto"], "pareto.json")
        client.log_metric(parent_run_id, "pareto_size", float(len(summary["pareto"])))
    client.log_metric(parent_run_id, "trials_failed", float(len(summary["failures"])))
    # Trials that ASHA stopped (or that crashed before logging their end) still say RUNNING: close them.
    exp_id = get_or_create_experiment(client, experiment)
    sweep = client.get_run(parent_run_id).data.tags.get("sweep")
    for t in summary["trials"]:
        run = find_run(client, exp_id, f"{sweep}/{t['trial']}")
        if run is not None and run.info.status == "RUNNING":
            if t["status"] == "error":
                client.set_tag(run.info.run_id, "error", t.get("error", "")[:5000])
            else:
                client.set_tag(run.info.run_id, "pah.stopped_early", "asha")
            client.set_terminated(
                run.info.run_id, status="FAILED" if t["status"] == "error" else "KILLED"
            )
    client.set_terminated(parent_run_id, status="FINISHED")


def _print_summary(summary: dict[str, Any], seconds: float, mlflow_uri: str) -> None:
    print(
        f"\n[sweep] done in {seconds:.0f} s: {len(summary['trials'])} trial(s), {len(summary['failures'])} failed"
    )
    for t in sorted(summary["trials"], key=lambda t: -(t["avg_acc"] or -1)):
        acc = "-" if t["avg_acc"] is None else f"{100 * t['avg_acc']:.1f}%"
        forg = "-" if t["forgetting"] is None else f"{100 * t['forgetting']:.1f}%"
        extra = f"  {t['error']}" if t.get("error") else ""
        print(
            f"  {t['trial']:>20s}  tasks {t['tasks_done']}/{summary['n_run']}  acc {acc:>6s}  forgetting {forg:>6s}  "
            f"{t['status']}{extra}"
        )
    if summary["best"]:
        print(
            f"[sweep] best: {summary['best']['trial']} acc {100 * summary['best']['avg_acc']:.2f}%"
        )
    if summary["pareto"]:
        print(f"[sweep] Pareto set: {[p['trial'] for p in summary['pareto']]}")
    if mlflow_uri.startswith("sqlite"):
        print(
            f"[sweep] browse: mlflow ui --backend-store-uri {mlflow_uri}  (then open http://127.0.0.1:5000)"
        )
    else:
        print(f"[sweep] browse: {mlflow_uri}")
