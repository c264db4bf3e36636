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

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pah_core.search_space import describe
from pah_core.tracking import SQLITE, optuna_storage_beside

from . import REPO
from .claim import claim_sweep_dir, release_sweep_dir
from .console import quiet_ray, trial_lines
from .errors import SweepError
from .interrupts import StopSignals, full_disk, mark_unfinished, trial_statuses
from .leaderboard import describe_sweep
from .plan import Plan
from .record import (
    SweepState,
    create_parent_run,
    fail_parent_run,
    finish_parent_run,
    reopen_parent_run,
)
from .resources import Concurrency, init_ray, sweep_concurrency
from .spec import SweepSpec
from .study_figures import log_study_figures
from .summary import print_summary, summarise
from .trial import (
    PRIVATE_UMASK,
    TRIAL_RETRIES,
    TUNE,
    TrialPlumbing,
    trainable,
)
from .trust import load_key, sign_sweep


@dataclass(kw_only=True)
class Setup:
    """A sweep launched: its plan, and what each trial is given (the parent run's id too)."""

    plan: Plan
    max_concurrent: int
    plumbing: TrialPlumbing
    concurrency: Concurrency

    @property
    def parent_run_id(self) -> str:
        return self.plumbing.parent_run_id


def launch(plan: Plan, spec: SweepSpec, tags: dict[str, str] | None = None) -> Setup:
    """Check the data, start or join Ray, fit the resources; only then write the sweep's record.

    ``tags`` go on the parent run and on every trial's run, after (and over) the standard ones."""
    from pah_core.mlflow_reporter import git_sha

    data_root, stream_spec = check_data(plan, spec)
    import ray

    # Everything a sweep writes (its folder, Tune's copies, the stores, the state files) is
    # owner-only, as a single run's output is: before Ray starts, so that a local Ray's workers
    # inherit it too.
    os.umask(PRIVATE_UMASK)
    logs = init_ray(spec.address, plan.verbose)
    if not plan.verbose:
        quiet_ray()
        if logs:
            print(f"[sweep] worker output and Ray's logs: {logs} (--verbose shows them here)")
    # Cells x threads (--concurrency): what fits, the CPUs each trial asks for, recorded as tags.
    conc, cpus_per_worker = sweep_concurrency(
        spec.concurrency,
        ray.cluster_resources(),
        spec.workers_per_trial,
        spec.cpus_per_worker,
        spec.gpus_per_worker,
    )
    tags = {
        "git_sha": git_sha(REPO),
        "dataset_fingerprint": stream_spec.fingerprint,
        "preset": spec.preset,
        "sweep_kind": plan.kind,
        **conc.tags(),
        **spec.tags,
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
        workers=spec.workers_per_trial,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=spec.gpus_per_worker,
        tags=tags,
        variants=plan.variants,
        runner=plan.runner,
    )
    cells = conc.cells if spec.max_concurrent is None else min(spec.max_concurrent, conc.cells)
    return Setup(plan=plan, max_concurrent=cells, plumbing=plumbing, concurrency=conc)


def check_data(plan: Plan, spec: SweepSpec):
    """The data folder and the stream's spec: a missing dataset fails here, once, not in every
    trial; a search needs validation images."""
    from pah_core.data import DataError, TaskStream, load_source, resolve_data_root

    data_root = str(resolve_data_root(spec.data_root or plan.base.data.root))
    try:
        stream = TaskStream(
            load_source(plan.base.data, data_root), plan.base.data, plan.base.run.seed
        )
    except DataError as e:
        raise SweepError(str(e)) from None
    if plan.kind == "search" and len(stream.val_split(0)) == 0:
        d = plan.base.data
        raise SweepError(
            f"a search selects on the validation splits, and data.val_fraction = {d.val_fraction} "
            f"of {d.train_per_class or 'all'} training images per class rounds to none: raise "
            "data.val_fraction or data.train_per_class"
        )
    return data_root, stream.spec


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
        load_key(create=True)  # the key that signs the sweep's state (pah_sweep.trust)
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
    plan = setup.plan
    trials = trainable(setup.plumbing)
    # Tune snapshots the sweep's state (its trials, the searcher's) at most every 10 s by default;
    # a driver killed in between forgets the trials started since, and --resume runs their slots
    # again as new trials. One-worker trials start right after one another: every second (cheap:
    # the snapshot is written locally, its upload to cloud storage keeps Tune's own pace).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    print(
        f"[sweep] {plan.name}: {plan.num_samples} trial(s), {setup.max_concurrent} at a time "
        f"(cells x threads {setup.concurrency}, {setup.concurrency.why}), objectives {plan.objectives}, {plan.n_run} task(s) each; MLflow {plan.mlflow_uri} "
        f"(experiment {plan.experiment!r})",
        flush=True,
    )
    stopped = StopSignals()  # from here a signal ends in a KILLED parent, never a RUNNING one
    results = fit(setup, trials, make_tuner, param_space, stopped)
    return finish(setup, results, stopped)


def fit(setup: Setup, trials, make_tuner, param_space, stopped: StopSignals):
    """The Tuner built (or restored from the sweep's signed state) and run, under ``stopped``'s
    signal handlers; a failure marks the parent FAILED (a full disk says so)."""
    from ray import tune

    plan = setup.plan
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
            return tuner.fit()
    except BaseException as e:
        why = full_disk(plan, e)
        abandon(plan, setup.parent_run_id, SweepError(why) if why else e)
        if why:
            raise SweepError(why) from None
        raise


def finish(setup: Setup, results, stopped: StopSignals) -> int:
    """The summary onto the parent run (its leaderboard, Optuna's figures), the console's last
    lines, the lock released; 128 + the signal for a sweep a signal interrupted."""
    plan = setup.plan
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
