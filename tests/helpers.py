"""Small real objects for tests: a synthetic stream and a small CNN; local ports and servers."""

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from pah_core.config import load_config
from pah_core.data import TaskStream, load_source


def tiny_config(*overrides: str):
    return load_config(
        None,
        [
            "data.dataset=synthetic",
            "data.n_tasks=3",
            "data.classes_per_task=4",
            "model.backbone=small_cnn",
            "model.prototype_size=6",
            "model.hyper_width=8",
            "optim.batch_size=16",
            "schedule.epochs_per_task=2",
            "run.progress=false",
            *overrides,
        ],
    )


def tiny_stream(cfg):
    return TaskStream(load_source(cfg.data), cfg.data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic_auth(user: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def http_get(url: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> bytes:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    """Until ``url`` answers; fails with the server's log when it exits or never answers."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"{proc.args} exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            http_get(url, timeout=5)
            return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")
