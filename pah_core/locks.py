"""One writer per run folder (``pah_core.train --out``) and per sweep folder: a lock file.

The lock is a file created with ``O_CREAT | O_EXCL``, which is atomic on local filesystems and on
NFSv3+ (the shared folders a cluster uses); ``flock``/``fcntl`` locks are not reliable there. It
names its holder (host, pid, the pid's start time, when, the command), so a refusal can say who
holds it. A lock is stale only when it is provably dead: same host, and the pid is gone or is now
another process (its start time differs). A lock from another host is never broken silently: the
message names the file to remove once the user knows that host's process is gone.

Standard library only (``pah_core`` imports without Ray or MLflow).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = ".pah-lock"
# A breaker (the lock that guards breaking a stale lock) older than this was left by a process
# killed in the few milliseconds it is held.
_BREAKER_STALE_S = 60.0


class LockError(RuntimeError):
    """The folder has a live writer; the message names it and what to do."""


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux): it tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5), after "comm"


def _alive(pid: int, ticks: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    now = _start_ticks(pid)
    return ticks is None or now is None or now == ticks


@dataclass
class Holder:
    host: str
    pid: int
    ticks: str | None
    since: float
    command: str

    @classmethod
    def me(cls) -> Holder:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _start_ticks(pid), time.time(), " ".join(sys.argv))

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} on host {self.host} since {when} ({self.command[:200]})"

    def dead(self) -> bool:
        return self.host == socket.gethostname() and not _alive(self.pid, self.ticks)


def _read(path: Path) -> Holder | None:
    """The holder a lock file names; None when it is unreadable (being written, or damaged)."""
    try:
        data = json.loads(path.read_text())
        return Holder(
            str(data["host"]),
            int(data["pid"]),
            data.get("ticks"),
            float(data["since"]),
            str(data.get("command", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


_HELD: dict[Path, FolderLock] = {}


class FolderLock:
    """The lock of one folder, held by this process until ``release`` (or its exit)."""

    def __init__(self, folder: Path, what: str):
        self.path = Path(folder) / LOCK_FILE
        self.what = what
        self.holder = Holder.me()

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(self.holder.__dict__, f)
        return True

    def _break_stale(self, stale: Holder) -> None:
        """Remove the stale lock, unless another process replaced it meanwhile: under a breaker
        lock, so that two processes breaking the same stale lock cannot remove each other's new
        one."""
        breaker = self.path.with_name(LOCK_FILE + ".break")
        try:
            fd = os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                if time.time() - breaker.stat().st_mtime > _BREAKER_STALE_S:
                    breaker.unlink()
            except OSError:
                pass
            return
        os.close(fd)
        try:
            if _read(self.path) == stale:
                self.path.unlink(missing_ok=True)
        finally:
            breaker.unlink(missing_ok=True)

    def acquire(self) -> FolderLock:
        """Take the lock, breaking a stale one; LockError naming a live holder."""
        if self.path in _HELD:  # this process already holds it (a plan made twice)
            return _HELD[self.path]
        for _ in range(5):
            if self._create():
                _HELD[self.path] = self
                atexit.register(self.release)
                return self
            holder = _read(self.path)
            if holder is None:  # being written right now, or damaged: look again
                time.sleep(0.2)
                holder = _read(self.path)
                if holder is None:
                    raise LockError(
                        f"{self.what} is locked by {self.path}, which cannot be read: if no "
                        f"process uses it, remove {self.path}"
                    )
            if holder.dead():
                self._break_stale(holder)
                continue
            fix = (
                f"wait for it to end, or stop it (kill {holder.pid})"
                if holder.host == socket.gethostname()
                else f"wait for it to end; if that process is gone, remove {self.path}"
            )
            raise LockError(f"{self.what} is in use by {holder.describe()}: {fix}")
        raise LockError(f"{self.what}: could not take the lock {self.path}; try again")

    def release(self) -> None:
        if _HELD.get(self.path) is not self:
            return
        del _HELD[self.path]
        if _read(self.path) == self.holder:  # never remove a lock this process does not hold
            self.path.unlink(missing_ok=True)


def lock_folder(folder: Path, what: str) -> FolderLock:
    """``folder``'s lock for this process (``what`` names the folder in messages)."""
    return FolderLock(folder, what).acquire()
