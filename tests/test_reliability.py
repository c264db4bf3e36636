"""Sweeps and runs on shared storage (issue #26): nothing run from state files, nothing deleted
that is not ours, one writer at a time, resume checks identity and state before Ray starts.

Unit-level and fast: no Ray starts (a call to start it fails the test), MLflow is a real sqlite
store in a temp folder, other processes are real subprocesses."""

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pah_core.locks import LOCK_FILE, LockError, lock_folder
from pah_core.train import main as train_main
from pah_sweep import trust
from tests.helpers import TINY_CLI, new_mlflow_store

REPO = Path(__file__).resolve().parents[1]


class _RunsCode:
    """Pickles to a call of os.system: unpickling it would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(autouse=True)
def own_key(tmp_path, monkeypatch):
    """This test's sweep key, never the user's."""
    monkeypatch.setenv("PAH_SWEEP_KEY_FILE", str(tmp_path / "keys" / "sweep.key"))


@pytest.fixture
def no_ray(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr("pah_sweep.launch.init_ray", fail)


def _holder(folder: Path, seconds: float = 60) -> subprocess.Popen:
    """Another process holding ``folder``'s lock until it is killed."""
    code = (
        "import sys, time; from pathlib import Path; from pah_core.locks import lock_folder; "
        f"lock_folder(Path({str(folder)!r}), 'x'); print('held', flush=True); time.sleep({seconds})"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


# -- locks -------------------------------------------------------------------------------------


def test_a_live_lock_is_refused_naming_its_holder(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(LockError) as e:
            lock_folder(tmp_path, "the folder")
        assert f"in use by pid {proc.pid} on host" in str(e.value)
        assert f"kill {proc.pid}" in str(e.value)
    finally:
        proc.kill()
        proc.wait()


def test_a_dead_holders_lock_is_broken_and_another_hosts_is_not(tmp_path):
    proc = _holder(tmp_path)
    proc.kill()
    proc.wait()
    assert (tmp_path / LOCK_FILE).exists()  # SIGKILL left it behind
    lock = lock_folder(tmp_path, "the folder")  # stale: same host, pid gone
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()

    other = tmp_path / "other"
    other.mkdir()
    held = {"host": "node-7", "pid": 1, "ticks": None, "since": time.time(), "command": "x"}
    (other / LOCK_FILE).write_text(json.dumps(held))
    with pytest.raises(LockError, match=f"pid 1 on host node-7 .* remove {other / LOCK_FILE}"):
        lock_folder(other, "the folder")
    assert json.loads((other / LOCK_FILE).read_text()) == held  # not broken


ARGS = ["--config", "configs/smoke.yaml", *TINY_CLI, "data.train_per_class=5"]


def test_a_second_run_on_a_live_out_is_refused_and_overwrite_refuses_it(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text('{"avg_acc": 0.5}')  # the live run's
    proc = _holder(out)
    try:
        for extra in ([], ["--resume"], ["--overwrite"]):
            code = train_main(["--out", str(out), *extra, *ARGS])
            err = capsys.readouterr().err
            if not extra:  # a plain second run is refused for the run it would replace
                assert code == 2 and "already holds a run" in err, err
                continue
            assert code == 2, err
            assert f"is in use by pid {proc.pid}" in err and "Traceback" not in err
        assert (out / "results.json").read_text() == '{"avg_acc": 0.5}'
        # Two runs on one fresh --out: the second is refused while the first holds it.
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        holder = _holder(fresh)
        try:
            assert train_main(["--out", str(fresh), *ARGS]) == 2
            assert f"in use by pid {holder.pid}" in capsys.readouterr().err
        finally:
            holder.kill()
            holder.wait()
    finally:
        proc.kill()
        proc.wait()


# -- a sweep folder, an MLflow store with its parent run -----------------------------------------


def _store_with_parents(tmp_path: Path, *names: str) -> tuple[str, dict[str, str]]:
    from mlflow.tracking import MlflowClient

    uri = new_mlflow_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("pah-cifar100", artifact_location=(tmp_path / "a").as_uri())
    ids = {}
    for name in names:
        tags = {"sweep": name, "pah.role": "sweep"}
        ids[name] = client.create_run(exp, run_name=name, tags=tags).info.run_id
    return uri, ids


def _sweep_folder(storage: Path, name: str, uri: str, parent: str) -> Path:
    d = storage / name
    d.mkdir(parents=True, mode=0o700)
    state = {
        "parent_run_id": parent,
        "mlflow_uri": uri,
        "experiment": "pah-cifar100",
        "dataset": "cifar100",
        "preset": "smoke",
        "objectives": ["acc"],
        "kind": "search",
        "overrides": {},
        "config": "",
        "trial_runner": "tune",
    }
    (d / "pah_sweep.json").write_text(json.dumps(state))
    (d / "tuner.pkl").write_bytes(pickle.dumps({"tuner": 1}))
    (d / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": []}')
    return d


def _resume(tmp_path, uri, name="s"):
    from pah_sweep.search import main

    argv = ["--storage", str(tmp_path / "ray"), "--mlflow-uri", uri, "--name", name, "--resume"]
    try:
        return main("cifar100", argv)
    except SystemExit as e:
        return e.code


@pytest.fixture(scope="module")
def parents_store(tmp_path_factory):
    """A store with the parent runs of sweeps "s" and "other", made once (a new store's schema
    takes seconds); each test gets a copy."""
    folder = tmp_path_factory.mktemp("parents")
    _, ids = _store_with_parents(folder, "s", "other")
    return folder / "mlflow.db", ids


@pytest.fixture
def sweep_dir(tmp_path, parents_store):
    import shutil

    db, ids = parents_store
    shutil.copy(db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    d = _sweep_folder(tmp_path / "ray", "s", uri, ids["s"])
    trust.adopt(d)  # signed as the sweep's own
    return {"dir": d, "uri": uri, "ids": ids}


def _crafted(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(_RunsCode(marker)))


@pytest.mark.parametrize(
    "target",
    [
        "tuner.pkl",
        "experiment_state-2026-01-01_00-00-00.json",
        "experiment_state-2099-01-01_00-00-00.json",  # newer: Tune would load it first
        "searcher-state-2026-01-01_00-00-00.pkl",
        "trial_1/error.pkl",
    ],
)
def test_crafted_tune_state_runs_nothing_on_resume(sweep_dir, tmp_path, capsys, no_ray, target):
    marker = tmp_path / "ran"
    path = sweep_dir["dir"] / target
    path.parent.mkdir(mode=0o700, exist_ok=True)
    _crafted(path, marker)
    assert _resume(tmp_path, sweep_dir["uri"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert str(path) in err and "Traceback" not in err
    assert "not signed by this user's sweep key" in err or "differs from what" in err
    assert "refused, nothing was run" in err and "python -m pah_sweep.trust --adopt" in err
    assert not (sweep_dir["dir"] / LOCK_FILE).exists()  # released again


def test_signed_state_passes_and_a_foreign_key_or_loose_permissions_do_not(sweep_dir, tmp_path):
    trust.verify_sweep(sweep_dir["dir"])  # the sweep's own: accepted
    os.chmod(sweep_dir["dir"], 0o770)
    with pytest.raises(trust.TrustError, match="is writable by others"):
        trust.verify_sweep(sweep_dir["dir"])
    os.chmod(sweep_dir["dir"], 0o700)
    os.chmod(sweep_dir["dir"] / "tuner.pkl", 0o666)
    with pytest.raises(trust.TrustError, match="tuner.pkl is writable by others"):
        trust.verify_sweep(sweep_dir["dir"])
    os.chmod(sweep_dir["dir"] / "tuner.pkl", 0o600)
    key = trust.key_path()
    os.chmod(key, 0o644)
    with pytest.raises(trust.TrustError, match="readable by others"):
        trust.verify_sweep(sweep_dir["dir"])
    key.unlink()  # another user's or machine's resume: not this key
    trust.load_key(create=True)
    with pytest.raises(trust.TrustError, match="differs from what this user's sweep signed"):
        trust.verify_sweep(sweep_dir["dir"])
    key.unlink()
    with pytest.raises(trust.TrustError, match="no sweep key at"):
        trust.verify_sweep(sweep_dir["dir"])


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_folder_of_another_user_is_refused(sweep_dir):
    os.chown(sweep_dir["dir"] / "tuner.pkl", 65534, 65534)
    with pytest.raises(trust.TrustError, match="belongs to uid 65534"):
        trust.verify_sweep(sweep_dir["dir"])


def test_an_edited_state_file_pointing_at_another_parent_is_refused(
    sweep_dir, tmp_path, capsys, no_ray
):
    from mlflow.tracking import MlflowClient

    state = json.loads((sweep_dir["dir"] / "pah_sweep.json").read_text())
    (sweep_dir["dir"] / "pah_sweep.json").write_text(
        json.dumps({**state, "parent_run_id": sweep_dir["ids"]["other"]})
    )
    trust.adopt(sweep_dir["dir"])  # even re-signed: the parent is another sweep's
    assert _resume(tmp_path, sweep_dir["uri"]) == 2
    err = capsys.readouterr().err
    assert (
        f"names parent run {sweep_dir['ids']['other']}, which is the parent of sweep 'other'" in err
    )
    other = MlflowClient(sweep_dir["uri"]).get_run(sweep_dir["ids"]["other"])
    assert other.info.status == "RUNNING" and "error" not in other.data.tags  # untouched


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is damaged (Expecting property name"),
        ("[1, 2]", "is damaged (a JSON list, not an object)"),
        ("", "is damaged (Expecting value"),
        ('{"mlflow_uri": "x"}', "is damaged (SweepState.__init__() missing 5 required"),
        ({"objectives": "acc"}, "is damaged (objectives is not a list of names)"),
        ({"parent_run_id": 7}, "is damaged (parent_run_id is not a string)"),
    ],
)
def test_a_damaged_state_file_is_a_clear_error(
    sweep_dir, tmp_path, capsys, no_ray, content, message
):
    path = sweep_dir["dir"] / "pah_sweep.json"
    if isinstance(content, dict):  # one field of the real file changed
        content = json.dumps({**json.loads(path.read_text()), **content})
    path.write_text(content)
    assert _resume(tmp_path, sweep_dir["uri"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_resume_of_a_running_sweep_is_refused_naming_its_driver(
    sweep_dir, tmp_path, capsys, no_ray
):
    proc = _holder(sweep_dir["dir"])
    try:
        assert _resume(tmp_path, sweep_dir["uri"]) == 2
        err = capsys.readouterr().err
        assert f"sweep 's' ({sweep_dir['dir']}) is in use by pid {proc.pid}" in err
    finally:
        proc.kill()
        proc.wait()


# -- clean-up removes only what this process created ----------------------------------------------


def test_a_sweep_folder_made_by_another_process_survives_a_failed_start(tmp_path):
    """The name was free when checked; another sweep created the folder before this one's record
    step: one clear error, the other sweep's folder and files untouched, no parent run made."""
    from pah_sweep.errors import SweepError
    from pah_sweep.launch import record
    from pah_sweep.plan import plan_sweep
    from pah_sweep.spec import SearchSpec

    spec = SearchSpec(storage=str(tmp_path / "ray"), mlflow_uri=str(tmp_path / "m.db"), name="x")
    plan = plan_sweep("cifar100", spec, num_samples=1)
    theirs = tmp_path / "ray" / "x"
    theirs.mkdir(parents=True)
    (theirs / "tuner.pkl").write_bytes(b"their sweep")
    with pytest.raises(SweepError, match="was created in .* by another process"):
        record(plan, {})
    assert (theirs / "tuner.pkl").read_bytes() == b"their sweep"
    assert sorted(p.name for p in theirs.iterdir()) == ["tuner.pkl"]
    assert not (tmp_path / "m.db").exists()  # no parent run either


def test_a_failed_start_removes_only_a_folder_it_created(tmp_path):
    """abandon: the folder this process created (nothing of Tune's in it) goes, so the name is free;
    a resumed sweep's folder stays, and its finished parent is not flipped to FAILED."""
    from mlflow.tracking import MlflowClient

    from pah_sweep.launch import abandon, record
    from pah_sweep.plan import plan_sweep
    from pah_sweep.spec import SearchSpec

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    spec = SearchSpec(storage=str(tmp_path / "ray"), mlflow_uri=uri, name="x")
    plan = plan_sweep("cifar100", spec, num_samples=1)
    parent = record(plan, {})
    assert (plan.sweep_dir / LOCK_FILE).exists()
    abandon(plan, parent, RuntimeError("boom"))
    assert not plan.sweep_dir.exists()
    client = MlflowClient(uri)
    assert client.get_run(parent).info.status == "FAILED"

    client.set_terminated(parent, "FINISHED")
    plan.resume, plan.created_dir, plan.status_before = True, False, "FINISHED"
    plan.sweep_dir.mkdir()
    (plan.sweep_dir / "tuner.pkl").write_bytes(b"x")
    abandon(plan, parent, RuntimeError("truncated experiment state"))
    assert (plan.sweep_dir / "tuner.pkl").exists()
    run = client.get_run(parent)
    assert run.info.status == "FINISHED"
    assert "truncated experiment state" in run.data.tags["pah.resume_error"]
