"""Retake the README's screenshots of a demo store in a real headless browser.

    python docs/screenshots/take.py --mlflow-uri runs/mlflow.db [--experiment pah-demo]
                                    [--sweep NAME] [--out docs/screenshots]

Starts ``mlflow ui`` (and ``optuna-dashboard`` when installed) on free localhost ports against the
store ``make demo`` wrote, opens the pages the README shows in headless Chromium
(``apt-get install chromium``), writes one PNG per page into ``--out`` and stops the servers.
The sweep is the store's newest search sweep unless ``--sweep`` names one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # runs from a plain checkout too

from pah_core.tracking import (  # noqa: E402
    check_tracking_uri,
    optuna_storage_beside,
    quote,
    ui_page,
)

# Seconds a page (a JavaScript app) gets to show its data, then to settle before and after the
# actions on it.
RENDER_S, SETTLE_S = 90.0, 2.0
SERVER_START_S = 120.0
WINDOW = (1500, 950)


@dataclass(frozen=True)
class Shot:
    file: str
    page: str  # the URL after the server's address
    window: tuple[int, int] = WINDOW
    actions: str = ""  # JavaScript run in the page before the picture
    # A JavaScript condition that holds once the page shows what it is taken for.
    ready: str = "document.readyState === 'complete'"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = SERVER_START_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server for {url} exited with code {proc.returncode}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=2).close()
            return
        time.sleep(0.5)
    raise SystemExit(f"no answer from {url} within {timeout:.0f} s")


@contextlib.contextmanager
def serving(argv: list[str], health: str) -> Iterator[None]:
    """A server started in its own process group (its workers too), stopped at the end."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_http(health, proc)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise SystemExit("no chromium on PATH: apt-get install -y chromium")
    return found


# What each page needs before its picture (JavaScript run in the page): MLflow's assistant panel
# closed, the parent run's description expanded and in view, the sweeps in the runs table unfolded.
CLOSE_ASSISTANT = (
    "document.querySelector('[data-component-id=\"mlflow.assistant.chat_panel.close\"]')?.click();"
)
EXPAND_DESCRIPTION = (
    "document.querySelector('button[aria-label=\"Expand description\"]')?.click();"
    "setTimeout(() => [...document.querySelectorAll('h1,h2,h3,h4,span,div')]"
    ".find(e => e.textContent.trim() === 'Description')?.scrollIntoView(), 500);"
)
UNFOLD_SWEEPS = (
    "document.querySelectorAll('button[data-component-id*=\"runnamecellrenderer\"]')"
    ".forEach(b => b.click());"
)


async def _cdp(ws, calls: itertools.count, method: str, **params) -> dict:
    """One Chrome DevTools Protocol call, its result (events in between are skipped)."""
    call = next(calls)
    await ws.send_json({"id": call, "method": method, "params": params})
    async for msg in ws:
        data = json.loads(msg.data)
        if data.get("id") == call:
            if "error" in data:
                raise RuntimeError(f"{method}: {data['error']}")
            return data["result"]
    raise RuntimeError(f"{method}: the browser closed the connection")


async def _shoot(port: int, url: str, out: Path, shot: Shot) -> None:
    import aiohttp  # installed with ray[default]

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json") as r:
            page = next(t for t in await r.json() if t["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            calls = itertools.count(1)
            await _cdp(
                ws,
                calls,
                "Emulation.setDeviceMetricsOverride",
                width=shot.window[0],
                height=shot.window[1],
                deviceScaleFactor=1,
                mobile=False,
            )
            await _cdp(ws, calls, "Page.navigate", url=url)
            # The UI fetches its data from JavaScript: wait until the page shows it.
            deadline = time.monotonic() + RENDER_S
            while time.monotonic() < deadline:
                done = await _cdp(ws, calls, "Runtime.evaluate", expression=f"!!({shot.ready})")
                if done["result"].get("value"):
                    break
                await asyncio.sleep(0.5)
            else:
                print(f"[screenshots] {url}: not ready after {RENDER_S:.0f} s, taken anyway")
            await asyncio.sleep(SETTLE_S)
            await _cdp(ws, calls, "Runtime.evaluate", expression=CLOSE_ASSISTANT + shot.actions)
            await asyncio.sleep(SETTLE_S)
            png = await _cdp(ws, calls, "Page.captureScreenshot", format="png")
    out.write_bytes(base64.b64decode(png["data"]))


def screenshot(browser: str, url: str, out: Path, shot: Shot, profile: Path) -> None:
    """One page as a PNG, once ready and after its actions; a fresh browser profile each time, so
    that no earlier UI state (expanded rows, columns chosen) shows."""
    with tempfile.TemporaryDirectory(dir=profile) as home:
        proc = subprocess.Popen(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                f"--user-data-dir={home}",
                f"--window-size={shot.window[0]},{shot.window[1]}",
                "about:blank",
            ],
            env={**os.environ, "HOME": home},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(home) / "DevToolsActivePort"  # Chromium writes its port there
            deadline = time.monotonic() + SERVER_START_S
            while not port_file.is_file() or not port_file.read_text().strip():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"{browser} did not start its DevTools endpoint")
                time.sleep(0.2)
            port = int(port_file.read_text().split()[0])
            asyncio.run(_shoot(port, url, out, shot))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"[screenshots] {out}  <- {url}")


def the_sweep(client, experiment: str, sweep: str | None):
    """The parent run of ``sweep``, else of the experiment's newest search sweep."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment {experiment!r} in this store")
    which = f" and tags.sweep = {quote(sweep)}" if sweep else " and tags.sweep_kind = 'search'"
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`pah.role` = 'sweep'{which}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise SystemExit(f"no search sweep in experiment {experiment!r}")
    return runs[0]


def mlflow_shots(client, parent) -> list[Shot]:
    """The pages the README shows: the runs table, the parent's leaderboard, the best trial and
    its pictures."""
    import mlflow.artifacts

    from pah_sweep.leaderboard import LEADERBOARD_FILE

    exp = parent.info.experiment_id
    rows = mlflow.artifacts.load_dict(f"{parent.info.artifact_uri}/{LEADERBOARD_FILE}")
    best = next(r for r in rows if r["best"])["run_id"]
    tall = (WINDOW[0], 1500)

    def artifact(name: str) -> str:
        return "/#" + ui_page(exp, best).removeprefix("#").replace(
            f"/runs/{best}", f"/runs/{best}/artifactPath/{name}"
        )

    image = "[...document.images].some(i => i.complete && i.naturalWidth > 200)"
    sweep = _has(parent.data.tags["sweep"])
    return [
        Shot("runs.png", "/" + ui_page(exp), actions=UNFOLD_SWEEPS, ready=sweep),
        Shot(
            "parent.png",
            "/" + ui_page(exp, parent.info.run_id),
            tall,
            EXPAND_DESCRIPTION,
            ready=_has("ranked by validation score"),
        ),
        Shot("pah_run.png", "/" + ui_page(exp, best), tall, ready=_has("objective/val_acc")),
        Shot("acc_matrix.png", artifact("acc_matrix.png"), ready=image),
        Shot("prototypes.png", artifact("prototypes.png"), ready=image),
        Shot("forgetting_curves.png", artifact("forgetting_curves.png"), ready=image),
    ]


def _has(text: str) -> str:
    """The condition that the page shows ``text``."""
    return f"document.body.innerText.includes({json.dumps(text)})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python docs/screenshots/take.py", description=__doc__)
    p.add_argument("--mlflow-uri", default="runs/mlflow.db", help="the demo's sqlite store")
    p.add_argument("--experiment", default="pah-demo")
    p.add_argument("--sweep", help="the search sweep to show (default: the newest)")
    p.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    args = p.parse_args(argv)
    from mlflow.tracking import MlflowClient

    uri = check_tracking_uri(args.mlflow_uri)
    client = MlflowClient(tracking_uri=uri)
    parent = the_sweep(client, args.experiment, args.sweep)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="pah-shots-") as profile:
        port = free_port()
        mlflow = [str(bin_dir / "mlflow"), "ui", "--backend-store-uri", uri]
        mlflow += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        base = f"http://127.0.0.1:{port}"
        with serving(mlflow, f"{base}/health"):
            for shot in mlflow_shots(client, parent):
                screenshot(browser, base + shot.page, out / shot.file, shot, Path(profile))
        study = optuna_storage_beside(uri)
        dashboard = bin_dir / "optuna-dashboard"
        if study and dashboard.exists():
            port = free_port()
            argv = [str(dashboard), study, "--host", "127.0.0.1", "--port", str(port)]
            base = f"http://127.0.0.1:{port}"
            with serving(argv, f"{base}/api/studies"):
                sweep = parent.data.tags["sweep"]
                study_id = study_number(study, sweep)
                url = f"{base}/dashboard/studies/{study_id}"
                shot = Shot("optuna.png", url, ready=f"{_has(sweep)} && {_has('History')}")
                screenshot(browser, url, out / shot.file, shot, Path(profile))
    return 0


def study_number(storage: str, name: str) -> int:
    """The dashboard's id of study ``name`` (its URL names it by id)."""
    import optuna

    return optuna.storages.RDBStorage(storage).get_study_id_from_name(name)


if __name__ == "__main__":
    sys.exit(main())
