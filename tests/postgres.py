"""A real PostgreSQL server for tests: Debian's binaries, a throw-away cluster on 127.0.0.1, stopped
by PID. .ci/run installs the `postgresql` package when it is missing."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import free_port


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs as root, so the server runs as the package's user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def postgres_server(workdir: Path, database: str = "mlflow") -> Iterator[str]:
    """Yields ``postgresql://pah@127.0.0.1:PORT/<database>`` (trust auth on loopback only). The
    cluster lives in its own folder under /tmp (pytest's folders are root-only, and the server
    runs as the postgres user), removed afterwards; ``workdir`` holds the server's log."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql")
    workdir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="pah-pg-"))
    data, sock = home / "pgdata", home / "sock"
    for d in (data, sock):
        d.mkdir()
    if os.geteuid() == 0:
        for d in (home, data, sock):
            shutil.chown(d, "postgres")
    port = free_port()
    log = workdir / "postgres.log"
    init = subprocess.run(
        _as_postgres(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "pah", "--auth=trust", "-E", "UTF8"]
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if init.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}")
    proc = subprocess.Popen(
        _as_postgres(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={sock}",
                "-c",
                "max_connections=100",
            ]
        ),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        while True:
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        subprocess.run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "pah", database],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield f"postgresql://pah@127.0.0.1:{port}/{database}"
    finally:
        # The postmaster's PID: runuser execs it in the same process, so proc.pid is the server.
        pid_file = data / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # fast shutdown
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)
