"""A sweep folder as one process's: claimed exclusively when new, locked (one driver), checked
before a resume (its parent run, its signed state), and released or removed only when this
process created it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from pah_core.locks import LockError, lock_folder

from .errors import SweepError
from .record import SWEEP_STATE, SweepState, check_parent_run
from .trial import TRAIN
from .trust import TrustError, verify_sweep

if TYPE_CHECKING:
    from .plan import Plan


def check_sweep_dir(plan: Plan) -> None:
    """A new sweep needs a free name; a resumed one its folder, its Tune state and its settings."""
    if not plan.resume:
        if plan.sweep_dir.exists():
            raise SweepError(
                f"sweep {plan.name!r} already exists in {plan.storage}: pass --resume to continue "
                "it, or another --name"
            )
        return
    if "://" in plan.storage:
        raise SweepError(
            f"--resume from {plan.storage}: the state of a sweep in a bucket cannot be verified "
            "before Tune unpickles it (pah_sweep.trust), so it is not resumed: resume sweeps kept in "
            "a shared folder, or start another --name"
        )
    state_file = plan.sweep_dir / SWEEP_STATE
    if not state_file.is_file():
        raise SweepError(
            f"--resume: no sweep {plan.name!r} in {plan.storage} (missing {state_file})"
        )
    stored = SweepState.read(plan.sweep_dir)
    if stored.trial_runner is None:  # started before the runner was recorded: under Ray Train
        plan.state.trial_runner = TRAIN
    plan.state.check_resume(stored, plan.name)
    take_lock(plan)
    try:
        check_resumable(plan, stored)
    except BaseException:
        plan.lock.release()
        raise


def take_lock(plan: Plan) -> None:
    try:
        plan.lock = lock_folder(plan.sweep_dir, f"sweep {plan.name!r} ({plan.sweep_dir})")
    except LockError as e:
        raise SweepError(str(e)) from None


def check_resumable(plan: Plan, stored: SweepState) -> None:
    """Under the lock, before Ray starts: the parent run is this sweep's, every file Tune will
    unpickle is signed by this user's key, and there is a Tune experiment to restore."""
    from pah_core.tracking import TrackingError, check_store

    try:
        check_store(plan.mlflow_uri, must_exist=True)
    except TrackingError as e:
        raise SweepError(f"--resume: {e}") from None
    plan.status_before = check_parent_run(
        plan.mlflow_uri, plan.experiment, plan.name, stored.parent_run_id
    )
    try:
        verify_sweep(plan.sweep_dir)
    except TrustError as e:
        raise SweepError(str(e)) from None
    from ray import tune

    if not tune.Tuner.can_restore(str(plan.sweep_dir)):
        raise SweepError(f"--resume: {plan.sweep_dir} holds no restorable Tune experiment")


def claim_sweep_dir(plan: Plan) -> None:
    """Create the sweep folder, failing if it exists: the name is this process's from here on,
    and a same-name sweep started meanwhile is one clear error, with nothing of it touched."""
    Path(plan.storage).mkdir(parents=True, exist_ok=True)
    try:
        plan.sweep_dir.mkdir(mode=0o700)
    except FileExistsError:
        raise SweepError(
            f"sweep {plan.name!r} was created in {plan.storage} by another process after this "
            "one checked the name (two sweeps started with one name?): nothing was started; "
            "pass --resume to continue it once it stops, or choose another --name"
        ) from None
    plan.created_dir = True
    take_lock(plan)


def release_sweep_dir(plan: Plan) -> None:
    """The lock released, and the sweep folder removed when this process created it and it holds
    nothing but the lock (Tune wrote nothing: the name is free again)."""
    if plan.lock is not None:
        plan.lock.release()
    if plan.created_dir and plan.sweep_dir.is_dir():
        from ray import tune

        if not tune.Tuner.can_restore(str(plan.sweep_dir)):
            shutil.rmtree(plan.sweep_dir, ignore_errors=True)
