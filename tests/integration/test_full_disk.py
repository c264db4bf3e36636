"""A sweep whose --storage fills up (issue #26 point 9): a clear one-line error naming the storage
and what to do, exit 2, its parent run FAILED with that error (never left RUNNING). A real local
Ray, real CIFAR-100 subsets, and a real full filesystem: a 400 KB tmpfs (mounting needs root)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import tiny_cifar

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_storage(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    if os.getuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_storage_stops_the_sweep_with_a_clear_error(ray_cluster, tmp_path, small_storage):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [
        sys.executable,
        str(REPO / "sweeps" / "baselines.py"),
        "--address",
        ray_cluster,
        "--methods",
        "pah",
        "--seeds",
        "0",
        "--storage",
        str(small_storage),
        "--mlflow-uri",
        uri,
        "--name",
        "full",
        *tiny_cifar(schedule__epochs_per_task=1),
    ]
    done = subprocess.run(
        argv, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, timeout=400
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err[-3000:]
    assert f"error: the storage {small_storage} is full (" in err
    assert "Free space there, then start it again under another --name" in err
    assert "Traceback (most recent call last)" not in err.split("error: the storage")[-1]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("pah-cifar100")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("pah.role") == "sweep"]
    assert parent.info.status == "FAILED" and "is full" in parent.data.tags["error"]
    assert all(r.info.status != "RUNNING" for r in runs)
