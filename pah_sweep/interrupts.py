"""A sweep stopped by a signal (SIGTERM handled as Ctrl-C, what an interrupted sweep's summary
says: its unfinished trials, nothing selected from it), or by a full disk."""

from __future__ import annotations

import errno
import json
import shutil
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .plan import Plan


class StopSignals:
    """Around the Tuner (its restore and fit): SIGTERM (``ray job stop``, a scheduler, ``kill``)
    stops a sweep as Ctrl-C does: Tune's SIGINT handler ends the run gracefully and saves its
    state. Which signal came is kept: Tune returns from an interrupted run as from a finished one.
    A signal before Tune's handler is installed raises KeyboardInterrupt (the parent: KILLED)."""

    def __init__(self) -> None:
        self.signal: int = 0

    def _on_term(self, signum, frame) -> None:
        self.signal = signum
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    def _on_int(self, signum, frame) -> None:
        # Before Tune installs its own handler, and again after it restored this one.
        self.signal = signum
        raise KeyboardInterrupt

    def __enter__(self) -> StopSignals:
        self._saved = {s: signal.signal(s, h) for s, h in ((signal.SIGTERM, self._on_term),)}
        self._int_before = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._on_int)
        return self

    def __exit__(self, *exc) -> None:
        interrupted = signal.getsignal(signal.SIGINT) == self._on_int
        if interrupted and not self.signal and exc[0] is None:
            # Tune's handler ran (it puts back the handler it found, this one) and returned.
            self.signal = signal.SIGINT
        signal.signal(signal.SIGINT, self._int_before)
        for s, h in self._saved.items():
            signal.signal(s, h)


def trial_statuses(plan: Plan) -> dict[str, str] | None:
    """Each trial's Tune status (trial id -> TERMINATED, ERROR, RUNNING, ...) as Tune's last
    snapshot of the sweep holds it, which is what ``--resume`` continues from: Tune stops the
    interrupted trials after that snapshot, and the ResultGrid then calls them TERMINATED, as it
    does the trials ASHA stopped. Read as plain JSON (the snapshot's pickled parts are never
    decoded); None when there is no readable snapshot."""
    if "://" in plan.storage:
        return None
    snapshots = sorted(plan.sweep_dir.glob("experiment_state-*.json"))
    try:
        trials = json.loads(snapshots[-1].read_text())["trial_data"]
        states = [json.loads(entry[0]) for entry in trials]
        return {str(t["trial_id"]): str(t["status"]) for t in states}
    except (IndexError, OSError, ValueError, KeyError, TypeError):
        return None


def mark_unfinished(
    summary: dict[str, Any], statuses: dict[str, str] | None, wanted: int, signalled: bool
) -> bool:
    """Trials that an interrupt left unfinished are "not finished", never "stopped early (ASHA)",
    and no best trial or Pareto set is taken from a partial sweep; whether the sweep is
    unfinished (a signal stopped it, a trial did not end, or it has fewer trials than it was to
    run). Without ``statuses``, after a signal, every trial short of its tasks is unfinished."""
    ended = ("TERMINATED", "ERROR")
    unfinished = [
        t
        for t in summary["trials"]
        if t["status"] != "error"
        and (
            statuses.get(t["trial"], "TERMINATED") not in ended
            if statuses is not None
            else signalled and t["tasks_done"] < summary["n_run"]
        )
    ]
    for t in unfinished:
        t["status"] = "not finished"
    partial = signalled or bool(unfinished) or len(summary["trials"]) < wanted
    if partial:
        summary["best"], summary["pareto"] = None, []
    return partial


# Below this, a storage folder is full for a sweep's purposes: a task checkpoint, a snapshot of
# Tune's state or an error file no longer fits.
FULL_BYTES = 16 * 2**20


def full_disk(plan: Plan, error: BaseException) -> str | None:
    """Why a sweep failed when its storage filled up, in one line with what to do; None when the
    disk is not the cause. Tune's own error is often a consequence (an error file cut short, then
    unreadable), so the free space of --storage is checked as well as the error chain."""
    chain, e = [], error
    while e is not None and len(chain) < 20:
        chain.append(e)
        e = e.__cause__ or e.__context__
    enospc = any(getattr(x, "errno", None) == errno.ENOSPC for x in chain)
    try:
        free = shutil.disk_usage(plan.storage).free if "://" not in plan.storage else None
    except OSError:
        free = None
    if not enospc and (free is None or free >= FULL_BYTES):
        return None
    room = "" if free is None else f" ({free // 1024} KB free)"
    last = (str(error).strip().splitlines() or [""])[-1][:200]
    return (
        f"the storage {plan.storage} is full{room}: sweep {plan.name!r} stopped "
        f"({type(error).__name__}: {last}). Free space there, then start it again under another "
        "--name (trials that failed on the full disk are not retried by --resume)"
    )
