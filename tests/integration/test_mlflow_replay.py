"""A run killed between its MLflow task logging and its checkpoint replays that task on resume; the
MLflow run must still hold one row per task (#14 point 5). Real sqlite MLflow store, real kill."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import new_mlflow_store

REPO = str(Path(__file__).resolve().parents[2])

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pah_core.engine import Engine
    from pah_core.mlflow_reporter import MLflowReporter
    from pah_core.reporters import Reporter
    from tests.helpers import tiny_config, tiny_stream

    uri, ckpt, kill_at, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    class KillAfterLogging(Reporter):
        # Runs after MLflowReporter.task_end: the process dies as if SIGKILLed before the
        # checkpoint of this task reached storage (Ray uploads it in the next reporter).
        def task_end(self, e):
            if e.t == kill_at:
                os._exit(9)

    cfg = tiny_config("schedule.epochs_per_task=1")
    reporters = [MLflowReporter(uri, "replay", run_name="r", run_key="sweep/trial"),
                 KillAfterLogging()]
    engine = Engine(cfg, tiny_stream(cfg), reporters, checkpoint_dir=ckpt, prune_checkpoints=False)
    engine.run(resume_from=resume if resume != "-" else None)
    """
)


def _run(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_replayed_task_is_logged_once(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = new_mlflow_store(tmp_path / "mlflow.db")
    ckpt = tmp_path / "ck"
    first = _run(tmp_path, uri, ckpt, 1, "-")
    assert first.returncode == 9, first.stderr[-2000:]
    # Task 1 was logged to MLflow; its checkpoint "never reached storage": resume from task 0's.
    second = _run(tmp_path, uri, ckpt, -1, ckpt / "task_00")
    assert second.returncode == 0, second.stderr[-2000:]

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("replay").experiment_id])
    assert run.info.status == "FINISHED"
    for key in ("tasks_done", "avg_acc", "acc/task_00"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == [0, 1, 2], (key, steps)
    import mlflow.artifacts

    table = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/acc_matrix_table.json")
    matrix = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/acc_matrix.json")["acc_matrix"]
    cells = [tuple(row[:2]) for row in table["data"]]
    assert sorted(cells) == [(i, j) for i in range(3) for j in range(i + 1)]
    for i, j, acc in table["data"]:
        assert acc == pytest.approx(matrix[i][j])
    assert '"type": "table"' in run.data.tags["mlflow.loggedArtifacts"]


def test_a_trial_lost_by_a_killed_driver_is_closed_not_left_running(tmp_path):
    """A child run whose trial the resumed sweep does not know (started after Tune's last snapshot,
    just before the driver died) is KILLED with why at the sweep's end; the known trials' runs and
    other sweeps' runs are left as they are."""
    from mlflow.tracking import MlflowClient

    from pah_sweep.record import LOST_TRIAL, close_lost_trials

    client = MlflowClient(new_mlflow_store(tmp_path / "mlflow.db"))
    exp = client.create_experiment("lost")
    parent = client.create_run(exp, run_name="s").info.run_id
    other = client.create_run(exp, run_name="other sweep").info.run_id

    def child(trial: str, of: str = parent) -> str:
        tags = {"mlflow.parentRunId": of, "ray_trial_id": trial}
        return client.create_run(exp, tags=tags).info.run_id

    known, lost, done = child("aaaa"), child("bbbb"), child("cccc")
    client.set_terminated(done, status="FINISHED")
    elsewhere = child("dddd", other)
    assert close_lost_trials(client, exp, parent, known={"aaaa"}) == [lost]
    status = {r: client.get_run(r).info.status for r in (known, lost, done, elsewhere)}
    assert status == {known: "RUNNING", lost: "KILLED", done: "FINISHED", elsewhere: "RUNNING"}
    assert client.get_run(lost).data.tags["pah.lost_trial"] == LOST_TRIAL
