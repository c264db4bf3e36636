import json

import numpy as np
import pytest
import torch

from pah_core.checkpoints import CheckpointError
from pah_core.checks import ConfigError
from pah_core.engine import Engine
from pah_core.reporters import JSONReporter, Reporter
from pah_core.train import main as cli_main
from tests.helpers import TINY_CLI, tiny_config, tiny_stream


class Recorder(Reporter):
    def __init__(self):
        self.events = []

    def task_end(self, e):
        self.events.append(("task_end", e.t, e.accuracy_row, e.checkpoint_dir))

    def run_end(self, results):
        self.events.append(("run_end", results["tasks_completed"]))


def test_run_emits_events_and_full_matrix(tmp_path):
    cfg = tiny_config()
    rec = Recorder()
    stream = tiny_stream(cfg)
    results = Engine(
        cfg, stream, [rec, JSONReporter(tmp_path)], checkpoint_dir=tmp_path / "ck"
    ).run()
    assert [e[1] for e in rec.events if e[0] == "task_end"] == [0, 1, 2]
    assert rec.events[-1] == ("run_end", 3)
    m = results["accuracy_matrix"]
    assert len(m) == 3 and all(m[i][j] is None for i in range(3) for j in range(i + 1, 3))
    # The matrix is computed from exact counts: every test image of every seen task, once.
    assert results["total"] == [[40, 0, 0], [40, 40, 0], [40, 40, 40]]
    # Every training image of every task, each epoch (cells' images/s, benchmarks/gpu.py).
    train = sum(len(stream.task(t).train) for t in range(3))
    assert results["train_images"] == cfg.schedule.epochs_per_task * train
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["status"] == "finished" and on_disk["accuracy_matrix"] == m
    for key in (
        "avg_acc",
        "forgetting",
        "bwt",
        "wall_seconds",
        "seconds_per_task",
        "param_counts",
        "config",
    ):
        assert key in on_disk
    assert [p.name for p in (tmp_path / "ck").iterdir()] == [
        "task_02"
    ]  # only the newest boundary kept


def test_resume_after_task_k_gives_the_same_matrix(tmp_path):
    cfg = tiny_config()
    full = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path / "a").run()

    first = tiny_config("schedule.max_tasks=1")
    Engine(first, tiny_stream(first), checkpoint_dir=tmp_path / "b").run()
    ckpt = tmp_path / "b" / "task_00"
    resumed = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path / "b").run(resume_from=ckpt)
    assert resumed["correct"] == full["correct"]
    assert resumed["accuracy_matrix"] == full["accuracy_matrix"]
    assert len(resumed["eval_seconds_per_task"]) == 3  # task 1's came with the checkpoint
    a = torch.load(tmp_path / "a" / "task_02" / "state.pt", weights_only=False)["method_state"][
        "model"
    ]
    b = torch.load(tmp_path / "b" / "task_02" / "state.pt", weights_only=False)["method_state"][
        "model"
    ]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_from_another_config_is_refused(tmp_path):
    cfg = tiny_config("schedule.max_tasks=1")
    Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path).run()
    other = tiny_config("method.pah.lambda_sm=2.0")
    engine = Engine(other, tiny_stream(other))
    with pytest.raises(
        CheckpointError,
        match=r"another config.*method.pah.lambda_sm: 0.5 \(checkpoint\) vs 2.0 \(now\)",
    ):
        engine.run(resume_from=tmp_path / "task_00")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        engine.run(resume_from=tmp_path / "nothing")


def test_failure_keeps_what_was_logged(tmp_path):
    cfg = tiny_config(
        "optim.lr_hypernet=1e30", "optim.lr_backbone=1e30", "optim.lr_prototypes=1e30"
    )
    with pytest.raises(FloatingPointError):
        Engine(
            cfg, tiny_stream(cfg), [JSONReporter(tmp_path)], checkpoint_dir=tmp_path / "ck"
        ).run()
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["status"] == "failed" and "diverged" in on_disk["error"]


def test_official_bn_mode_runs(tmp_path):
    cfg = tiny_config(
        "schedule.eval_bn=train",
        "method.pah.kl_direction=student_teacher",
        "method.pah.old_task_reduction=sum",
        "method.pah.proto_step_keeps_main_grad=true",
    )
    results = Engine(cfg, tiny_stream(cfg)).run()
    assert np.isfinite(results["avg_acc"])


def test_cli_writes_results_and_resumes(tmp_path, capsys):
    args = TINY_CLI
    assert cli_main(["--out", str(tmp_path), *args, "schedule.max_tasks=1"]) == 0
    assert json.loads((tmp_path / "results.json").read_text())["tasks_completed"] == 1
    assert cli_main(["--out", str(tmp_path), "--resume", *args]) == 0
    assert json.loads((tmp_path / "results.json").read_text())["tasks_completed"] == 2
    assert cli_main(["--out", str(tmp_path), "optim.batch_size=-1"]) == 2
    assert "optim.batch_size = -1" in capsys.readouterr().err


def test_a_run_restored_before_run_keeps_its_untrained_reference_and_total_wall_time(tmp_path):
    """A sweep trial resumes by load_checkpoint() and then run() (pah_sweep/trial.py): the untrained
    accuracies, forward transfer and class-IL numbers equal an uninterrupted run's, and
    wall_seconds counts the segment before the resume too."""
    cfg = tiny_config("schedule.eval_future=true", "schedule.epochs_per_task=1")
    full = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path / "a").run()
    first = tiny_config(
        "schedule.eval_future=true", "schedule.epochs_per_task=1", "schedule.max_tasks=2"
    )
    before = Engine(first, tiny_stream(first), checkpoint_dir=tmp_path / "b").run()
    engine = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path / "b")
    engine.load_checkpoint(tmp_path / "b" / "task_01")
    resumed = engine.run()
    assert resumed["untrained_accuracy"] == full["untrained_accuracy"]
    assert resumed["forward_transfer"] == full["forward_transfer"]
    assert resumed["accuracy_matrix"] == full["accuracy_matrix"]
    assert resumed["class_il"] == full["class_il"]
    # The total: the first segment's boundary time plus the last task's.
    assert resumed["wall_seconds"] >= before["wall_seconds"] - 1e-6
    assert resumed["wall_seconds"] >= sum(resumed["seconds_per_task"]) - 1e-6


def test_evaluating_the_next_future_task_only_reports_the_same_numbers():
    """eval_future_tasks=next evaluates, of the future tasks, only the one about to be trained:
    the matrix's superdiagonal, all that forward transfer reads. Every reported number equals the
    full matrix's run; the entries above the superdiagonal are missing, not zero."""
    every = "schedule.eval_future=true", "schedule.epochs_per_task=1", "run.checkpoint=false"
    cfg_all = tiny_config(*every, "data.n_tasks=4")
    cfg_next = tiny_config(*every, "data.n_tasks=4", "schedule.eval_future_tasks=next")
    full = Engine(cfg_all, tiny_stream(cfg_all)).run()
    engine = Engine(cfg_next, tiny_stream(cfg_next))
    evaluated, boundary = [], engine.evaluator.boundary

    def recorded(t, tasks, val):
        evaluated.append(list(tasks))
        return boundary(t, tasks, val)

    engine.evaluator.boundary = recorded
    nxt = engine.run()
    assert evaluated == [[0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3]]
    for key in ("avg_acc", "forgetting", "forward_transfer", "untrained_accuracy", "class_il"):
        assert nxt[key] == full[key], key
    assert nxt["final"] == full["final"]
    n = len(full["accuracy_matrix"])
    for i in range(n):
        for j in range(n):
            want = full["accuracy_matrix"][i][j] if j <= i + 1 else None
            assert nxt["accuracy_matrix"][i][j] == want, (i, j)
    with pytest.raises(ConfigError, match="schedule.eval_future_tasks = 'next' is not allowed"):
        tiny_config("schedule.eval_future_tasks=next")  # without eval_future: nothing to choose


def test_each_task_boundary_reports_how_long_its_evaluation_took():
    """eval_seconds: the test and validation passes of a boundary, timed apart from training, so
    that evaluation's share of a run can be read from any run's metrics (issue #28)."""

    class Times(Reporter):
        def __init__(self):
            self.rows = []

        def task_end(self, e):
            self.rows.append(e.metrics)

    cfg = tiny_config("data.val_fraction=0.2", "schedule.eval_future=true")
    rec = Times()
    results = Engine(cfg, tiny_stream(cfg), reporters=[rec]).run()
    assert len(rec.rows) == 3
    for m in rec.rows:
        assert 0 < m["eval_seconds"] < m["seconds"]
    # results.json has them too (benchmarks/eval_share.py reads them), and the untrained pass.
    assert results["eval_seconds_per_task"] == [m["eval_seconds"] for m in rec.rows]
    assert results["untrained_eval_seconds"] > 0


def test_a_checkpoint_from_before_the_evaluation_timings_resumes(tmp_path):
    """eval_seconds_per_task and untrained_eval_seconds came after checkpoint format 3 shipped:
    a checkpoint without them resumes, with the timings of the tasks it runs."""
    first = tiny_config("schedule.max_tasks=1")
    Engine(first, tiny_stream(first), checkpoint_dir=tmp_path).run()
    path = tmp_path / "task_00" / "state.pt"
    payload = torch.load(path, weights_only=True)
    del payload["eval_seconds_per_task"], payload["untrained_eval_seconds"]
    torch.save(payload, path)
    cfg = tiny_config()
    resumed = Engine(cfg, tiny_stream(cfg)).run(resume_from=tmp_path / "task_00")
    assert resumed["tasks_completed"] == 3 and len(resumed["eval_seconds_per_task"]) == 2
