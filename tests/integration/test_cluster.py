"""The cluster path (cluster/): a sweep submitted with cluster/submit.sh through `ray job submit` to a
real token-auth Ray head, tracked by a real MLflow server (cluster/mlflow-server.sh), read back over
MLflow's REST API and seen in its web UI by a headless Chromium; plus the manifests' structure and
security defaults. Every server binds 127.0.0.1 and is stopped by PID."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.helpers import basic_auth, free_port, http_get, wait_http
from tests.integration.test_sweeps import SMALL

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
BIN = Path(sys.executable).parent  # the venv's ray and mlflow CLIs
EXPERIMENT = "pahc-e2e"
SWEEP = "pahc-sweep"
SWEEP_ARGS = [
    "--preset",
    "smoke",
    "--num-samples",
    "2",
    "--max-concurrent",
    "1",
    "--name",
    SWEEP,
    "--experiment",
    EXPERIMENT,
    *SMALL,
    "--set",
    "schedule.max_tasks=1",
]


# ---------------------------------------------------------------------------------------------
# Processes: everything the servers start inherits PAHC_TAG, so teardown finds (and kills) exactly
# their process trees by PID, never by name; other people's Ray and MLflow on this host stay up.


def _tagged_pids(tag: str) -> list[int]:
    needle = f"PAHC_TAG={tag}".encode()
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            if needle not in (p / "environ").read_bytes().split(b"\0"):
                continue
            state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":  # a zombie is already dead; its parent has yet to reap it
            pids.append(int(p.name))
    return pids


def _kill_tagged(tag: str, timeout: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process carrying the tag; returns the ones still alive. Those
    that end on SIGTERM (the MLflow server, most of Ray's) do so within ~2 s; the head's raylet,
    GCS server and one Python process of it outlive SIGTERM however long one waits (25 s tried):
    after ``timeout`` seconds, SIGKILL."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        pids = _tagged_pids(tag)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.time() + wait
        while _tagged_pids(tag) and time.time() < deadline:
            time.sleep(0.5)
    return _tagged_pids(tag)


def _listening_addresses(pids: set[int]) -> set[str]:
    """Local addresses of the TCP sockets these processes listen on (from /proc/net/tcp*)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    addrs = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                hexip = f[1].split(":")[0]
                raw = bytes.fromhex(hexip)
                if len(raw) == 4:
                    ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
                else:
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    ip = socket.inet_ntop(socket.AF_INET6, words)
                addrs.add(ip)
    return addrs


# The MLflow server runs with basic auth (mlflow-server.sh's default); these are its admin's.
MLFLOW_USER, MLFLOW_PASSWORD = "admin", uuid.uuid4().hex
AUTH = basic_auth(MLFLOW_USER, MLFLOW_PASSWORD)


def _api(base: str, path: str, body: dict | None = None) -> dict:
    if body is None:
        return json.loads(http_get(base + path, headers=AUTH))
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **AUTH},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def servers(data_root):
    """A real MLflow server (cluster/mlflow-server.sh: sqlite + local artifacts) and a real Ray head
    (`ray start --head`, token auth on), both on 127.0.0.1, in a short temp folder."""
    short = Path(f"/tmp/pahc-{os.getpid()}")  # Ray's socket paths must stay short
    shutil.rmtree(short, ignore_errors=True)
    (short / "home").mkdir(parents=True)
    tag = uuid.uuid4().hex
    env = {
        **os.environ,
        "HOME": str(short / "home"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PAHC_TAG": tag,
        "PAH_DATA_ROOT": str(data_root),
        "PYTHONPATH": str(REPO),
        # Ray replaces --node-ip-address 127.0.0.1 by the host's routable address (so that other
        # nodes can join) and binds its servers there. This switch makes Ray treat the host as a
        # single-node machine and keep everything on the loopback address; nothing else changes
        # for a single node.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # Clients of the MLflow server (the sweep job, the analysis) authenticate as its admin.
        "MLFLOW_TRACKING_USERNAME": MLFLOW_USER,
        "MLFLOW_TRACKING_PASSWORD": MLFLOW_PASSWORD,
    }
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(k, None)
    mlflow_port, dash_port = free_port(), free_port()
    mlflow_log = short / "mlflow.log"
    info = {"short": short, "env": env, "tag": tag}
    mlflow_proc = None
    try:
        # The cluster's token, then the head: `ray start --head` turns token auth on by itself when
        # a token exists (RAY_AUTH_MODE unset), as it will on every cluster from Ray 2.61.
        gen = subprocess.run(
            [str(BIN / "ray"), "get-auth-token", "--generate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert gen.returncode == 0, gen.stderr
        token_file = short / "home" / ".ray" / "auth_token"
        assert token_file.is_file()
        mlflow_proc = subprocess.Popen(
            ["bash", str(CLUSTER / "mlflow-server.sh")],
            env={
                **env,
                "MLFLOW_PORT": str(mlflow_port),
                "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{short / 'mlflow' / 'mlflow.db'}",
                "MLFLOW_ARTIFACTS_DESTINATION": str(short / "mlflow" / "artifacts"),
                "MLFLOW_WORKERS": "1",
                "MLFLOW_BIN": str(BIN / "mlflow"),
                "MLFLOW_AUTH_ADMIN_PASSWORD": MLFLOW_PASSWORD,
            },
            stdout=mlflow_log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        head = subprocess.run(
            [
                str(BIN / "ray"),
                "start",
                "--head",
                "--num-cpus",
                "4",
                "--port",
                str(free_port()),
                "--dashboard-port",
                str(dash_port),
                "--dashboard-host",
                "127.0.0.1",
                "--node-ip-address",
                "127.0.0.1",
                "--ray-client-server-port",
                str(free_port()),
                "--dashboard-agent-listen-port",
                str(free_port()),
                "--temp-dir",
                str(short / "ray"),
                "--disable-usage-stats",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert head.returncode == 0, head.stdout + head.stderr
        info["ray_start_output"] = head.stdout + head.stderr
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        wait_http(f"{mlflow_url}/health", 120, mlflow_proc, mlflow_log)
        info.update(
            mlflow=mlflow_url,
            ray=f"http://127.0.0.1:{dash_port}",
            mlflow_pid=mlflow_proc.pid,
            pids=set(_tagged_pids(tag)),
        )
        yield info
    finally:
        left = _kill_tagged(tag)
        if mlflow_proc is not None:
            mlflow_proc.wait(timeout=10)
        assert not left, f"processes of the test servers still alive: {left}"
        assert mlflow_proc is None or mlflow_proc.returncode is not None
        for pid in info.get("pids", ()):
            assert not Path(f"/proc/{pid}/cmdline").exists() or pid not in _tagged_pids(tag)
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture(scope="module")
def sweep(servers):
    """The sweep, submitted by cluster/submit.sh; returns its output and MLflow experiment id."""
    env = {
        **servers["env"],
        "RAY_ADDRESS": servers["ray"],
        "MLFLOW_TRACKING_URI": servers["mlflow"],
        "PAH_STORAGE": str(servers["short"] / "ray_results"),
    }
    sid = f"pahc-test-{os.getpid()}"
    started = time.time()
    proc = subprocess.run(
        ["bash", str(CLUSTER / "submit.sh"), "--submission-id", sid, "--", *SWEEP_ARGS],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    seconds = time.time() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    status = subprocess.run(
        [str(BIN / "ray"), "job", "status", sid],
        env={**env, "RAY_AUTH_MODE": "token"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    exp = _api(
        servers["mlflow"],
        "/api/2.0/mlflow/experiments/get-by-name?"
        + urllib.parse.urlencode({"experiment_name": EXPERIMENT}),
    )["experiment"]
    return {
        "id": sid,
        "out": out,
        "seconds": seconds,
        "status": status.stdout + status.stderr,
        "experiment_id": exp["experiment_id"],
    }


def test_servers_listen_on_loopback_only_and_ray_has_token_auth_on(servers):
    assert "Token authentication is enabled" in servers["ray_start_output"]
    addrs = _listening_addresses(set(_tagged_pids(servers["tag"])))
    assert addrs, "the servers listen on nothing?"
    assert addrs <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, addrs


def test_mlflow_server_requires_credentials_and_keeps_its_stores_private(servers):
    base = servers["mlflow"]
    with pytest.raises(urllib.error.HTTPError) as e:
        http_get(f"{base}/api/2.0/mlflow/experiments/search?max_results=1")
    assert e.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as e:
        http_get(
            f"{base}/api/2.0/mlflow/experiments/search?max_results=1",
            headers=basic_auth(MLFLOW_USER, "wrong"),
        )
    assert e.value.code == 401
    assert "experiments" in _api(base, "/api/2.0/mlflow/experiments/search?max_results=1")
    store = servers["short"] / "mlflow"
    for name in ("mlflow.db", "basic_auth.db", "basic_auth.ini", "flask_secret_key"):
        assert (store / name).stat().st_mode & 0o077 == 0, name
    assert MLFLOW_PASSWORD not in (store / "basic_auth.ini").read_text()


def test_submitting_without_token_mode_is_refused(servers):
    env = {**servers["env"], "RAY_ADDRESS": servers["ray"]}
    env.pop("RAY_AUTH_MODE", None)
    # The token file is right there in ~/.ray, but the CLI sends it only in token mode.
    assert (Path(env["HOME"]) / ".ray" / "auth_token").is_file()
    proc = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--", "python", "-c", "print('should not run')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "AuthenticationError" in out or "Unauthorized" in out, out[-3000:]
    assert "should not run" not in out
    # submit.sh refuses to start when it has no token to send.
    env["HOME"] = str(servers["short"] / "nohome")
    proc = subprocess.run(
        ["bash", str(CLUSTER / "submit.sh"), "--preset", "smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "no Ray auth token" in proc.stderr


def test_sweep_job_succeeds_and_mlflow_rest_api_returns_its_runs(servers, sweep):
    assert f"Job '{sweep['id']}' succeeded" in sweep["out"], sweep["out"][-4000:]
    assert "succeeded" in sweep["status"], sweep["status"]
    assert sweep["seconds"] < 240, f"the tiny sweep took {sweep['seconds']:.0f} s"
    # The job's runtime env reached the driver: MLflow over HTTP, the storage folder from PAH_STORAGE.
    assert f"MLflow {servers['mlflow']}" in sweep["out"]
    assert (servers["short"] / "ray_results" / SWEEP / "pah_sweep.json").is_file()
    base = servers["mlflow"]
    runs = _api(
        base,
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [sweep["experiment_id"]], "max_results": 100},
    )["runs"]

    def tags(run):
        return {t["key"]: t["value"] for t in run["data"].get("tags", [])}

    parents = [r for r in runs if tags(r).get("pah.role") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent["info"]["status"] == "FINISHED" and tags(parent)["sweep"] == SWEEP
    children = [r for r in runs if tags(r).get("mlflow.parentRunId") == parent["info"]["run_id"]]
    assert len(children) == 2
    for c in children:
        metrics = {m["key"]: m["value"] for m in c["data"]["metrics"]}
        assert metrics["tasks_done"] == 1
        q = urllib.parse.urlencode({"path": "acc_matrix.json", "run_uuid": c["info"]["run_id"]})
        m = json.loads(http_get(f"{base}/get-artifact?{q}", headers=AUTH))
        assert len(m["acc_matrix"]) == 1 and 0.0 <= m["acc_matrix"][0][0] <= 1.0
        # The same file through the artifact proxy (what clients use to log and download).
        uri = c["info"]["artifact_uri"]
        assert uri.startswith("mlflow-artifacts:/"), uri
        same = json.loads(
            http_get(
                f"{base}/api/2.0/mlflow-artifacts/artifacts/{uri.split(':/', 1)[1].lstrip('/')}/acc_matrix.json",
                headers=AUTH,
            )
        )
        assert same == m


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_mlflow_ui_in_headless_chromium_shows_the_sweep(servers, sweep):
    browser = _chromium()
    if browser is None:
        msg = "no chromium: apt-get install -y chromium (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    exp_id = sweep["experiment_id"]
    found = _api(servers["mlflow"], "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id]})
    runs = found["runs"]
    parent = next(r for r in runs if r["info"]["run_name"] == SWEEP)
    child = next(r for r in runs if r["info"]["run_name"] != SWEEP)
    profile = servers["short"] / "chromium"
    profile.mkdir(exist_ok=True)

    def page_text(base: str, fragment: str) -> str:
        # The UI is a JS app: --virtual-time-budget lets it fetch and render before the DOM dump.
        proc = subprocess.run(
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
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                "--window-size=1600,1200",
                "--dump-dom",
                f"{base}/#/experiments/{exp_id}{fragment}",
            ],
            env={**servers["env"], "HOME": str(profile)},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", proc.stdout))

    # The UI fetches the API from JavaScript, which a headless browser cannot log in for: the UI
    # is read through a second server on the same store without authentication (the
    # authenticated server's 401s are tested above).
    from tests.helpers import mlflow_server

    store = servers["short"] / "mlflow"
    with mlflow_server(
        f"sqlite:///{store / 'mlflow.db'}",
        store,
        MLFLOW_ARTIFACTS_DESTINATION=str(store / "artifacts"),
    ) as base:
        # The experiment's runs table: the sweep's parent run (its trials fold under it).
        text = page_text(base, "/runs")
        assert EXPERIMENT in text and SWEEP in text, text[-3000:]
        assert f"{len(runs)} matching runs" in text, text[-3000:]
        # A trial's page: its name, its parent, its metrics.
        text = page_text(base, f"/runs/{child['info']['run_id']}")
        assert child["info"]["run_name"] in text, text[-3000:]
        assert f"Parent run {SWEEP}" in text and "avg_acc" in text, text[-3000:]
        # Its artifacts as the UI lists them, and the pictures as the UI fetches them.
        rid = child["info"]["run_id"]
        text = page_text(base, f"/runs/{rid}/artifacts?workflowType=machine_learning")
        pictures = ("acc_matrix.png", "cil_acc_matrix.png", "head_drift.png", "prototypes.png")
        assert all(p in text for p in pictures), text[-3000:]
        for p in pictures:
            png = http_get(f"{base}/get-artifact?path={p}&run_uuid={rid}")
            assert png[:4] == b"\x89PNG" and len(png) > 2_000, p
    assert parent["info"]["run_id"] != child["info"]["run_id"]


# ---------------------------------------------------------------------------------------------
# Manifests: structure and security defaults (no cluster needed).

LAUNCHER_YAMLS = ["ray-cluster.aws.yaml", "ray-cluster.onprem.yaml"]
KUBE_YAMLS = ["kuberay/raycluster.yaml", "kuberay/rayjob-cifar100.yaml", "kuberay/mlflow.yaml"]


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((CLUSTER / name).read_text()) if d is not None]


@pytest.mark.parametrize("name", LAUNCHER_YAMLS)
def test_launcher_yaml_validates_against_rays_cluster_schema(name):
    import jsonschema
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    (config,) = _docs(name)
    jsonschema.validate(config, schema)
    # And Ray's own check, after it fills in the provider's defaults as `ray up` does (offline).
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(json.loads(json.dumps(config))))
    # Token auth on every node; the token comes from a file on the operator's machine.
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)
    assert config["file_mounts"]["~/.ray/auth_token"].startswith("~/")
    assert any("--shm-size" in o for o in config["docker"]["run_options"])
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "--redis" not in head
    assert "ray start --address=$RAY_HEAD_IP:6379" in " ".join(config["worker_start_ray_commands"])


def _pod_spec_ok(template: dict, container_name: str) -> dict:
    spec = template["spec"]
    (c,) = [c for c in spec["containers"] if c["name"] == container_name]
    assert c["image"].startswith("pah-platform:")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert "persistentVolumeClaim" in vols[mounts["/mnt/shared"]]
    return c


def _ray_cluster_spec_ok(spec: dict) -> None:
    assert spec["rayVersion"] == "2.60.0"
    assert spec["authOptions"] == {"mode": "token"}
    _pod_spec_ok(spec["headGroupSpec"]["template"], "ray-head")
    assert isinstance(spec["headGroupSpec"]["rayStartParams"], dict)
    groups = spec["workerGroupSpecs"]
    assert groups and len({g["groupName"] for g in groups}) == len(groups)
    for g in groups:
        assert (
            isinstance(g["replicas"], int) and g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        )
        assert all(isinstance(v, str) for v in g["rayStartParams"].values())
        _pod_spec_ok(g["template"], "ray-worker")


def test_kuberay_raycluster_manifest():
    docs = _docs("kuberay/raycluster.yaml")
    kinds = {(d["apiVersion"], d["kind"]): d for d in docs}
    rc = kinds[("ray.io/v1", "RayCluster")]
    assert rc["metadata"]["name"]
    _ray_cluster_spec_ok(rc["spec"])
    pvc = kinds[("v1", "PersistentVolumeClaim")]
    assert pvc["metadata"]["name"] == "pah-shared" and "ReadWriteMany" in pvc["spec"]["accessModes"]


def test_kuberay_rayjob_manifest():
    (job,) = _docs("kuberay/rayjob-cifar100.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert "sweeps/cifar100_search.py" in spec["entrypoint"]
    assert "--storage /mnt/shared/ray_results" in spec["entrypoint"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["submissionMode"] in {"K8sJobMode", "HTTPMode", "SidecarMode"}
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert env["MLFLOW_TRACKING_URI"].startswith("http://") and env["PAH_DATA_ROOT"]
    _ray_cluster_spec_ok(spec["rayClusterSpec"])
    # The entrypoint parses with the sweep's own argument parser.
    from pah_sweep.search import parser

    args = parser("cifar100").parse_args(spec["entrypoint"].split()[2:])
    assert args.preset == "paper" and args.name


def test_kuberay_mlflow_manifest():
    docs = {d["kind"]: d for d in _docs("kuberay/mlflow.yaml")}
    dep, svc = docs["Deployment"], docs["Service"]
    assert dep["apiVersion"] == "apps/v1" and svc["apiVersion"] == "v1"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["type"] == "ClusterIP"  # not exposed outside the cluster
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    args = " ".join(c["args"])
    assert "--backend-store-uri=postgresql://" in args and "--artifacts-destination=s3://" in args
    # Credentials come from Secrets, by reference.
    env = {e["name"]: e for e in c["env"]}
    for name in (
        "PGPASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    ):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    assert svc["spec"]["ports"][0]["port"] == 5000
    # Authentication on: basic-auth app, its settings from the ConfigMap the pod mounts.
    assert "--app-name=basic-auth" in c["args"]
    ini = docs["ConfigMap"]["data"]["basic_auth.ini"]
    assert "database_uri = postgresql://" in ini and "password" not in ini
    mount = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["auth-config"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"].startswith(mount)
    # The Ray pods authenticate with the same Secret.
    for name in ("kuberay/raycluster.yaml", "kuberay/rayjob-cifar100.yaml"):
        text = (CLUSTER / name).read_text()
        assert text.count("name: MLFLOW_TRACKING_PASSWORD") >= 2, name


SECRET_PATTERNS = [
    r"AKIA[0-9A-Z]{16}",  # AWS access key id
    r"\b[0-9a-f]{40,}\b",  # hex tokens (Ray's token is 64 hex digits)
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"://[^/\s:@]+:[^/\s@$]+@",  # user:password@ in a URI (a $(VAR) reference is allowed)
    r"(?i)\b(password|passwd|secret|token|api[_-]?key)\s*[:=]\s*['\"]?(?!\$|\{|\(|REPLACE)[A-Za-z0-9+/_\-]{8,}",
    r"(?i)RAY_AUTH_TOKEN\s*[:=]\s*['\"]?[A-Za-z0-9]",
]


def _cluster_files() -> list[Path]:
    files = [p for p in CLUSTER.rglob("*") if p.is_file()]
    return [*files, REPO / ".rayignore"]


def test_no_secrets_and_token_auth_never_disabled():
    files = _cluster_files()
    assert {p.name for p in files} >= {
        "README.md",
        "Dockerfile",
        "submit.sh",
        "mlflow-server.sh",
        "runtime_env.yaml",
        "ray-cluster.aws.yaml",
        "ray-cluster.onprem.yaml",
        "raycluster.yaml",
        "rayjob-cifar100.yaml",
        "mlflow.yaml",
    }
    for p in files:
        text = p.read_text()
        for pat in SECRET_PATTERNS:
            m = re.search(pat, text)
            assert m is None, f"{p.relative_to(REPO)}: looks like a secret: {m.group(0)!r}"
        assert not re.search(r"RAY_AUTH_MODE\s*[=:]\s*['\"]?disabled", text), p
        assert "authOptions: {mode: disabled}" not in text
    for name in KUBE_YAMLS[:2]:
        for d in _docs(name):
            spec = d["spec"].get("rayClusterSpec", d["spec"])
            if d["kind"] in {"RayCluster", "RayJob"}:
                assert spec["authOptions"]["mode"] == "token"
    submit = (CLUSTER / "submit.sh").read_text()
    assert "export RAY_AUTH_MODE=token" in submit and "set -euo pipefail" in submit


def test_mlflow_server_script_binds_loopback_unless_told(tmp_path):
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'm.db'}",
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "a"),
    }
    env.pop("MLFLOW_HOST", None)
    cmd = ["bash", str(CLUSTER / "mlflow-server.sh"), "--print-command"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    assert "--host 127.0.0.1 " in out and "--port 5000 " in out
    out = subprocess.run(
        cmd, env={**env, "MLFLOW_HOST": "10.0.0.5"}, capture_output=True, text=True, check=True
    ).stdout
    assert "--host 10.0.0.5 " in out
    # Authentication is on unless switched off, and never starts without its admin password.
    assert "--app-name basic-auth" in out
    out = subprocess.run(
        cmd, env={**env, "MLFLOW_AUTH": "none"}, capture_output=True, text=True, check=True
    ).stdout
    assert "basic-auth" not in out
    env.pop("MLFLOW_AUTH_ADMIN_PASSWORD", None)
    proc = subprocess.run(cmd[:2], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "MLFLOW_AUTH_ADMIN_PASSWORD" in proc.stderr


def test_submit_script_usage_and_rayignore():
    proc = subprocess.run(
        ["bash", str(CLUSTER / "submit.sh"), "--help"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.startswith("usage: cluster/submit.sh")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        ["bash", str(CLUSTER / "submit.sh"), "--preset", "smoke"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "set RAY_ADDRESS" in proc.stderr
    ignored = (REPO / ".rayignore").read_text().split()
    for entry in (
        ".git",
        "/data/",
        ".cache/",
        ".venv/",
        "/runs/",
        "mlruns/",
        "*.db",
        "ray_results/",
    ):
        assert entry in ignored, entry
    assert "checkpoints/" in ignored
