import os
import shutil
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
REPO = Path(__file__).resolve().parents[1]

INTEGRATION = REPO / "tests" / "integration"
# Integration tests live in tests/integration/ (real datasets on disk, a real Ray, real MLflow stores
# and servers, real PostgreSQL, or minutes of training) and are marked slow there by their path, so
# that `pytest -m "not slow"` is the fast unit subset; data where they read the datasets.
# This file's fixtures that only an integration test may use (the others are defined in
# tests/integration/ itself, out of reach of the tests outside):
INTEGRATION_FIXTURES = {"data_root", "cifar", "ray_cluster"}
DATA_FIXTURES = {"data_root", "cifar"}
# Test files that start their own Ray (a head by `ray start`, a two-node cluster): they run before
# the session's Ray (ray_cluster) starts, so that two local Rays never overlap.
OWN_RAY_FIRST = {"test_cluster.py", "test_node_loss.py"}


def misplaced(path: Path, fixtures: set[str], slow_marked: bool) -> str | None:
    """Why a test at ``path`` outside tests/integration/ belongs there (it uses an integration
    fixture, or is marked slow by hand), or None."""
    if path.is_relative_to(INTEGRATION):
        return None
    used = sorted(fixtures & INTEGRATION_FIXTURES)
    if used:
        return f"uses the integration fixture(s) {', '.join(used)}"
    if slow_marked:
        return "is marked slow by hand"
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(config, items):
    wrong = []
    for item in items:  # before -m deselects on these marks
        used = set(getattr(item, "fixturenames", ()))
        why = misplaced(item.path, used, item.get_closest_marker("slow") is not None)
        if why:
            wrong.append(f"{item.nodeid} {why}")
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.slow)
            if used & DATA_FIXTURES:
                item.add_marker(pytest.mark.data)
    if wrong:
        raise pytest.UsageError(
            "integration tests belong in tests/integration/ (marked slow there by their path): "
            "move these (split the file: its unit tests stay outside):\n  " + "\n  ".join(wrong)
        )
    result = yield
    # The session's Ray (ray_cluster) stays up from its first user to the end; test_cluster.py's
    # own `ray start --head` runs first, so that two local Rays never overlap. Last of all hooks,
    # so that --ff/--nf/--sw do not reorder it.
    items.sort(key=lambda item: item.path.name not in OWN_RAY_FIRST)
    return result


@pytest.fixture(scope="session", autouse=True)
def ray_tmpdir():
    """Every Ray the tests start (ray.init, `ray start`, ray.cluster_utils, a sweep's own) keeps
    its default files under this session's temp folder, not /tmp/ray: on a fresh machine that
    folder does not exist (ray.cluster_utils writes its address file there without creating it),
    and on a shared one it may be another user's."""
    root = Path(f"/tmp/pahtmp-{os.getpid()}")  # Ray's socket paths must stay short
    (root / "ray").mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", str(root))
        yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets: `make test` and .ci/run unpack them and export PAH_DATA_ROOT."""
    root = os.environ.get("PAH_DATA_ROOT")
    if not root or not (Path(root) / "cifar-100-python").is_dir():
        pytest.fail(
            "the real datasets are needed: run the tests through `make test` (it unpacks ../shared/data), "
            "or export PAH_DATA_ROOT=<folder holding cifar-100-python/ and tiny-imagenet-200/>"
        )
    return Path(root)


@pytest.fixture(scope="session")
def cifar(data_root):
    from pah_core.data import load_cifar100

    return load_cifar100(data_root, download=False)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory, data_root):
    """A real local Ray, started once for the session (starting one costs seconds), its temp dir
    and $HOME in temp folders. tests/integration/test_cluster.py starts its own with `ray start --head`: its
    tests run first (pytest_collection_modifyitems)."""
    import ray

    from pah_sweep.resources import LOCAL_TRAIN_ENV, job_env

    short = Path(f"/tmp/pahray-{os.getpid()}")  # Ray's socket paths must stay short
    home = tmp_path_factory.mktemp("home")
    # LOCAL_TRAIN_ENV in this process's environment too: the sweeps that tests start as
    # subprocesses (--address of this Ray) pass it on to their trials, as a user's settings.
    env = {"HOME": str(home), "RAY_AUTH_MODE": "disabled", "PAH_DATA_ROOT": str(data_root)}
    env |= LOCAL_TRAIN_ENV
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # 4 logical CPUs on 2 cores: room for a 2-worker trial and its driver. With the dashboard: its
    # State API lets Ray Train release the workers of trials that Tune stops. The environment of
    # a Ray that a sweep starts itself (pah_sweep.resources.init_ray).
    ray.init(num_cpus=4, _temp_dir=str(short), runtime_env={"env_vars": job_env(local=True)})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
