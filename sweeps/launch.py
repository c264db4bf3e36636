"""From flags to a finished sweep, the steps every sweep kind (search, grid) shares:

    plan:    validate the flags, the configs, the MLflow store, the storage, the name, --resume
    launch:  check the data -> start or join Ray -> fit the resources -> record (folder, parent run)
    execute: build (or restore) the Tuner -> fit -> summary onto the parent run

Nothing is written before the record step, so a bad input leaves no trace (a resume takes the
sweep's lock first: one driver per sweep). The record step creates the sweep folder exclusively,
so two sweeps started with one name end in one clear error. A failure after it marks the parent
run FAILED, and removes the sweep folder when this process created it and Tune wrote nothing into
it yet, so the name stays free.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pah_core.config import Config, load_config
from pah_core.locks import FolderLock
from pah_core.search_space import Param, describe
from pah_core.tracking import SQLITE, optuna_storage_beside
from pah_core.typed_dicts import parse_overrides

from . import REPO
from .claim import check_sweep_dir, claim_sweep_dir, release_sweep_dir
from .cli import PRESETS, SweepError, parse_tags
from .console import quiet_ray, trial_lines
from .interrupts import StopSignals, full_disk, mark_unfinished, trial_statuses
from .leaderboard import describe_sweep
from .record import (
    SweepState,
    absolute_storage,
    check_name,
    check_tracking_uri_or_default,
    create_parent_run,
    fail_parent_run,
    finish_parent_run,
    reopen_parent_run,
)
from .resources import check_ray_address, check_resources, init_ray
from .study_figures import log_study_figures
from .summary import print_summary, summarise
from .trial import (
    PRIVATE_UMASK,
    TRIAL_RETRIES,
    TUNE,
    TrialPlumbing,
    trainable,
    trial_runner,
)
from .trust import load_key, sign_sweep


@dataclass(kw_only=True)
class Plan:
    """A sweep validated: what it runs and where it records it. Nothing is started or written yet."""

    name: str
    kind: str  # search, ablation, baselines
    dataset: str
    base: Config
    n_run: int  # tasks each trial runs
    num_samples: int
    storage: str
    sweep_dir: Path
    state: SweepState  # pah_sweep.json to be (or as) written, parent run id still unknown
    resume: bool
    variants: dict[str, dict[str, Any]]
    started: float
    verbose: bool = False  # Ray's own console output (status table, worker lines, its warnings)
    space: dict[str, Param] = field(default_factory=dict)  # a search's, as sampled (sweeps.space)
    lock: FolderLock | None = None  # the sweep's one-writer lock, once taken
    created_dir: bool = False  # this process created the sweep folder (clean-up may remove it)
    status_before: str | None = None  # a resumed sweep's parent status before this resume

    @property
    def mlflow_uri(self) -> str:
        return self.state.mlflow_uri

    @property
    def experiment(self) -> str:
        return self.state.experiment

    @property
    def objectives(self) -> list[str]:
        return self.state.objectives

    @property
    def runner(self) -> str:
        return self.state.trial_runner

    @property
    def reuse_actors(self) -> bool:
        """A ``tune`` trial's process serves the next trial (torch imported, data cached by the OS):
        Tune resets it rather than start another."""
        return self.runner == TUNE


@dataclass(kw_only=True)
class Setup:
    """A sweep launched: its plan, and what each trial is given (the parent run's id too)."""

    plan: Plan
    max_concurrent: int
    plumbing: TrialPlumbing

    @property
    def parent_run_id(self) -> str:
        return self.plumbing.parent_run_id


def plan_sweep(
    dataset: str,
    args: argparse.Namespace,
    *,
    num_samples: int,
    kind: str = "search",
    base_overrides: dict[str, Any] | None = None,
    variants: dict[str, dict[str, Any]] | None = None,
    points: list[dict[str, Any]] | None = None,
    protocol_overrides: dict[str, Any] | None = None,
) -> Plan:
    """Every check that needs neither the data nor Ray: the base config with each variant and
    point, the MLflow store, the storage, the name, and a --resume against what was started."""
    started = time.perf_counter()
    parse_tags(getattr(args, "tags", []))  # a malformed --tag fails before anything starts
    check_ray_address(args.address)
    base_path = Path(args.config) if args.config else REPO / "configs" / f"{dataset}_pah.yaml"
    # The HPO protocol's overrides (a search's first_task: one task per trial) win over --set.
    overrides = {
        **(base_overrides or {}),
        **parse_overrides(args.overrides),
        **(protocol_overrides or {}),
    }
    preset = PRESETS[dataset][args.preset]
    base = load_config(base_path, {**preset, **overrides})
    if kind == "search" and base.data.val_fraction <= 0:
        raise SweepError(
            "a search selects on the validation splits, and data.val_fraction is 0: set it above "
            "0 (e.g. --set data.val_fraction=0.1), so that no trial is chosen on test data"
        )
    for extra in [*(variants or {}).values(), *(points or [])]:
        load_config(base_path, {**preset, **overrides, **extra})  # each trial's config is valid
    storage = absolute_storage(args.storage)
    if "://" not in storage and Path(storage).is_file():
        raise SweepError(f"--storage {storage} is a file: pass a folder (or an s3:// URI)")
    name = check_name(
        args.name or f"pah-{dataset}-{kind}-{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    state = SweepState(
        mlflow_uri=check_tracking_uri_or_default(args.mlflow_uri),
        experiment=args.experiment or f"pah-{dataset}",
        dataset=dataset,
        preset=args.preset,
        objectives=getattr(args, "objectives", "acc").split(","),
        kind=kind,
        overrides=overrides,
        config=args.config or "",
        trial_runner=trial_runner(args.workers_per_trial, getattr(args, "ray_train", "auto")),
    )
    plan = Plan(
        name=name,
        kind=kind,
        dataset=dataset,
        base=base,
        n_run=base.tasks_to_run,
        num_samples=num_samples,
        storage=storage,
        sweep_dir=Path(storage) / name,
        state=state,
        resume=args.resume,
        verbose=getattr(args, "verbose", False),
        variants=dict(variants or {}),
        started=started,
    )
    check_sweep_dir(plan)
    return plan


def launch(plan: Plan, args: argparse.Namespace, tags: dict[str, str] | None = None) -> Setup:
    """Check the data, start or join Ray, fit the resources; only then write the sweep's record.

    ``tags`` go on the parent run and on every trial's run, after (and over) the standard ones."""
    from pah_core.data import DataError, TaskStream, load_source, resolve_data_root
    from pah_core.mlflow_reporter import git_sha

    data_root = str(resolve_data_root(args.data_root or plan.base.data.root))
    try:  # a missing dataset fails here, once, not in every trial
        stream = TaskStream(
            load_source(plan.base.data, data_root), plan.base.data, plan.base.run.seed
        )
    except DataError as e:
        raise SweepError(str(e)) from None
    spec = stream.spec
    if plan.kind == "search" and len(stream.val_split(0)) == 0:
        d = plan.base.data
        raise SweepError(
            f"a search selects on the validation splits, and data.val_fraction = {d.val_fraction} "
            f"of {d.train_per_class or 'all'} training images per class rounds to none: raise "
            "data.val_fraction or data.train_per_class"
        )

    import ray

    # Everything a sweep writes (its folder, Tune's copies, the stores, the state files) is
    # owner-only, as a single run's output is: before Ray starts, so that a local Ray's workers
    # inherit it too.
    os.umask(PRIVATE_UMASK)
    logs = init_ray(args.address, plan.verbose)
    if not plan.verbose:
        quiet_ray()
        if logs:
            print(f"[sweep] worker output and Ray's logs: {logs} (--verbose shows them here)")
    fits = check_resources(
        ray.cluster_resources(), args.workers_per_trial, args.cpus_per_worker, args.gpus_per_worker
    )
    tags = {
        "git_sha": git_sha(REPO),
        "dataset_fingerprint": spec.fingerprint,
        "preset": args.preset,
        "sweep_kind": plan.kind,
        **parse_tags(getattr(args, "tags", [])),
        **(tags or {}),
    }
    plumbing = TrialPlumbing(
        base_config=plan.base.to_dict(),
        data_root=data_root,
        storage_path=plan.storage,
        mlflow_uri=plan.mlflow_uri,
        experiment=plan.experiment,
        parent_run_id=record(plan, tags),
        sweep_name=plan.name,
        workers=args.workers_per_trial,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        tags=tags,
        variants=plan.variants,
        runner=plan.runner,
    )
    wanted = fits if args.max_concurrent is None else min(args.max_concurrent, fits)
    return Setup(plan=plan, max_concurrent=wanted, plumbing=plumbing)


def record(plan: Plan, tags: dict[str, str]) -> str:
    """The sweep folder (created here, exclusively) and its lock, the parent run, the state
    file; a resume reopens the parent."""
    if plan.resume:
        parent_run_id = SweepState.read(plan.sweep_dir).parent_run_id
        plan.status_before = reopen_parent_run(plan.mlflow_uri, parent_run_id)
        return parent_run_id
    claim_sweep_dir(plan)
    sweep_config = {
        "base_config": plan.base.to_dict(),
        "argv": sys.argv,
        "search_space": describe(plan.space),
    }
    try:
        parent_run_id = create_parent_run(
            plan.mlflow_uri,
            plan.experiment,
            plan.name,
            {"objectives": ",".join(plan.objectives), **tags},
            sweep_config,
        )
    except BaseException:
        release_sweep_dir(plan)
        raise
    try:
        replace(plan.state, parent_run_id=parent_run_id).write(plan.sweep_dir)
        load_key(create=True)  # the key that signs the sweep's state (sweeps.trust)
    except BaseException as e:
        abandon(plan, parent_run_id, e)
        raise
    return parent_run_id


def abandon(plan: Plan, parent_run_id: str, error: BaseException) -> None:
    """After a failure: the parent run FAILED (never left RUNNING; KILLED when interrupted; the
    status it had when a resume of it failed), and the sweep folder removed when this process
    created it and Tune wrote nothing into it, so that the name is free again."""
    status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
    if plan.resume and plan.status_before in ("FINISHED", "KILLED") and status == "FAILED":
        status = plan.status_before  # a failed resume never flips a finished sweep
    try:
        fail_parent_run(plan.mlflow_uri, parent_run_id, error, status)
    except Exception as e:  # noqa: BLE001 - the original error is the one to report
        print(f"[sweep] could not mark the parent run {status}: {e}", file=sys.stderr)
    release_sweep_dir(plan)


def execute(
    setup: Setup,
    make_tuner: Callable[[Any, Setup], Any],
    param_space: dict[str, Any] | None = None,
) -> int:
    """Run (or restore) the Tuner that ``make_tuner(trainable, setup)`` builds, then summarise.

    ``param_space``: the Tuner's param space, when it holds functions (``tune.sample_from``): Tune
    stores them as placeholders, and a restored sweep resolves them only from the space passed
    again (else a trial not started yet gets the placeholder as its value)."""
    from ray import tune

    plan = setup.plan
    trials = trainable(setup.plumbing)
    # Tune snapshots the sweep's state (its trials, the searcher's) at most every 10 s by default;
    # a driver killed in between forgets the trials started since, and --resume runs their slots
    # again as new trials. One-worker trials start right after one another: every second (cheap:
    # the snapshot is written locally, its upload to cloud storage keeps Tune's own pace).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    print(
        f"[sweep] {plan.name}: {plan.num_samples} trial(s), {setup.max_concurrent} at a time, "
        f"objectives {plan.objectives}, {plan.n_run} task(s) each; MLflow {plan.mlflow_uri} "
        f"(experiment {plan.experiment!r})",
        flush=True,
    )
    stopped = StopSignals()  # from here a signal ends in a KILLED parent, never a RUNNING one
    try:
        with stopped:
            if plan.resume:
                tuner = tune.Tuner.restore(
                    str(plan.sweep_dir),
                    trainable=trials,
                    param_space=param_space,
                    resume_unfinished=True,
                    resume_errored=False,
                    restart_errored=False,
                )
            else:
                tuner = make_tuner(trials, setup)
            sign_sweep(plan.sweep_dir, load_key(create=False))  # tuner.pkl is written by now
            results = tuner.fit()
    except BaseException as e:
        why = full_disk(plan, e)
        abandon(plan, setup.parent_run_id, SweepError(why) if why else e)
        if why:
            raise SweepError(why) from None
        raise
    summary = summarise(results, plan.objectives, plan.n_run, early_stopping=plan.kind == "search")
    interrupted = mark_unfinished(
        summary, trial_statuses(plan), plan.num_samples, bool(stopped.signal)
    )
    summary["interrupted"] = interrupted
    summary["experiment_id"] = finish_parent_run(
        plan.mlflow_uri, setup.parent_run_id, summary, plan.experiment
    )
    optuna = optuna_storage_url(plan) if plan.kind == "search" else None
    if optuna:
        log_study_figures(plan.mlflow_uri, setup.parent_run_id, optuna, plan.name, plan.objectives)
    summary["links"] = describe_sweep(plan.mlflow_uri, setup.parent_run_id, summary, optuna)
    print_summary(summary, time.perf_counter() - plan.started, plan.mlflow_uri, optuna)
    if plan.lock is not None:
        plan.lock.release()
    if interrupted:
        name = signal.Signals(stopped.signal).name if stopped.signal else "a stop"
        print(
            f"[sweep] {plan.name} was interrupted ({name}) before every trial ended: its parent "
            "run is KILLED, nothing was selected from it; --resume continues it",
            file=sys.stderr,
        )
        return 128 + (stopped.signal or signal.SIGINT)
    return 0


def optuna_storage_url(plan: Plan) -> str:
    """A search's Optuna study: beside an sqlite MLflow store, else in the sweep's folder."""
    return optuna_storage_beside(plan.mlflow_uri) or f"{SQLITE}{plan.sweep_dir / 'optuna.db'}"


def run_config(plan: Plan):
    from ray import tune

    from .trust_tune import TuneStateSigner

    return tune.RunConfig(
        name=plan.name,
        storage_path=plan.storage,
        # A TUNE trial keeps its newest task checkpoint (a ResNet-18's is ~130 MB) and restarts
        # from it when its process dies; a TRAIN trial's worker group is restarted by Ray Train
        # instead (trial_driver), not twice over.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES if plan.runner == TUNE else 0),
        verbose=1 if plan.verbose else 0,
        callbacks=[
            *([] if plan.verbose else [trial_lines(plan.n_run, plan.kind == "search")]),
            TuneStateSigner(plan.sweep_dir),
        ],
    )


def trial_name(trial) -> str:
    # Deterministic names: the trial id is how a resumed sweep finds its MLflow child run again.
    return f"trial_{trial.trial_id}"
