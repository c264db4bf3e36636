"""Sweeps select on validation data, never on test (issue #13 point 1): every task boundary also
evaluates the seen tasks' validation splits, and what a sweep optimises is computed from them."""

import dataclasses

import numpy as np
import pytest
import torch

from pah_core.data import TaskStream, load_source
from pah_core.engine import Engine
from pah_core.reporters import Reporter
from pah_sweep.trial import objective_metrics, selection_numbers
from tests.helpers import tiny_config

VAL = "data.val_fraction=0.25"


class Objectives(Reporter):
    """What a search trial reports to Tune at each boundary, as RayReporter computes it."""

    def __init__(self, n_run):
        self.n_run, self.seen = n_run, []

    def task_end(self, e):
        self.seen.append(objective_metrics(*selection_numbers(e), e.t + 1, self.n_run))


def _run(cfg, permute_test_labels=False):
    source = load_source(cfg.data)
    if permute_test_labels:
        perm = torch.randperm(len(source.test_y), generator=torch.Generator().manual_seed(0))
        source = dataclasses.replace(source, test_y=source.test_y[perm])
    rec = Objectives(cfg.tasks_to_run)
    results = Engine(cfg, TaskStream(source, cfg.data, cfg.run.seed), [rec]).run()
    return results, rec.seen


def test_every_boundary_evaluates_the_validation_splits():
    cfg = tiny_config(VAL)
    results, _ = _run(cfg)
    val = np.array(results["val_accuracy_matrix"], dtype=float)
    assert val.shape == (3, 3) and not np.isnan(np.tril(val)).any()
    assert np.isnan(val[np.triu_indices(3, 1)]).all()  # tasks not seen yet: not evaluated
    assert results["val_avg_acc"] == pytest.approx(np.mean(val[-1]))
    assert {"val_forgetting", "val_cil_avg_acc"} <= set(results)
    # Validation images are training images held out: 25% of each class's 20, not the test set.
    stream = TaskStream(load_source(cfg.data), cfg.data, cfg.run.seed)
    assert len(stream.val_split(0)) == 4 * 5 and len(stream.task(0).train) < 4 * 20


def test_the_objectives_cannot_see_the_test_labels():
    """The same runs with the test labels shuffled: the test numbers change, and everything a
    sweep selects on (every boundary's objectives) stays exactly the same."""
    cfg = tiny_config(VAL)
    clean, clean_objectives = _run(cfg)
    shuffled, shuffled_objectives = _run(cfg, permute_test_labels=True)
    assert clean["accuracy_matrix"] != shuffled["accuracy_matrix"]
    assert clean["val_accuracy_matrix"] == shuffled["val_accuracy_matrix"]
    assert clean_objectives == shuffled_objectives and len(clean_objectives) == 3


def test_without_validation_splits_the_run_says_nothing_about_them():
    results, _ = _run(tiny_config())
    assert "val_avg_acc" not in results and "val_accuracy_matrix" not in results


def test_a_search_without_validation_splits_is_refused(tmp_path, capsys):
    from pah_sweep.search import main

    code = main(
        "cifar100",
        [
            "--set",
            "data.val_fraction=0",
            "--storage",
            str(tmp_path / "ray"),
            "--mlflow-uri",
            str(tmp_path / "mlflow.db"),
        ],
    )
    assert code == 2 and not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()
    assert "data.val_fraction is 0" in capsys.readouterr().err


def test_a_stream_can_start_after_the_tuning_tasks():
    """first_k's final runs: data.skip_tasks=k leaves out the first k tasks, classes and all, and
    every later task holds exactly the data it holds in the whole stream."""
    whole_cfg = tiny_config(VAL)
    rest_cfg = tiny_config(VAL, "data.skip_tasks=1")
    whole = TaskStream(load_source(whole_cfg.data), whole_cfg.data, whole_cfg.run.seed)
    rest = TaskStream(load_source(rest_cfg.data), rest_cfg.data, rest_cfg.run.seed)
    assert len(rest) == 2 and rest_cfg.tasks_to_run == 2
    assert not set(whole.task(0).classes) & {c for t in range(2) for c in rest.task(t).classes}
    for t in range(2):
        a, b = whole.task(t + 1), rest.task(t)
        assert a.classes == b.classes
        assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
        assert torch.equal(a.test.x, b.test.x)


def test_a_transfer_stream_keeps_the_later_classes_in_another_order():
    """first_k_reordered's final runs: the classes after the skipped tasks, none of the skipped
    ones, reordered by data.order_seed (not the split's order); without skipped tasks the key
    is refused, naming data.class_order."""
    from pah_core.config import ConfigError

    n = 4
    base = (f"data.n_tasks={n}", f"data.classes_per_task={2}", "data.skip_tasks=2")
    split_cfg = tiny_config(VAL, *base)
    split = TaskStream(load_source(split_cfg.data), split_cfg.data, split_cfg.run.seed)
    orders = set()
    for seed in range(4):
        cfg = tiny_config(VAL, *base, "data.kept_order=random", f"data.order_seed={seed}")
        s = TaskStream(load_source(cfg.data), cfg.data, cfg.run.seed)
        assert sorted(s.class_order) == sorted(split.class_order) == [4, 5, 6, 7]
        orders.add(tuple(s.class_order))
    assert len(orders) > 1
    with pytest.raises(ConfigError, match="data.kept_order.*data.class_order=random"):
        tiny_config(VAL, "data.kept_order=random")


def test_protocols_cap_the_trials_and_place_the_final_runs():
    from pah_sweep.presets import protocol_overrides

    assert protocol_overrides("end_of_training", 3) == ({}, {})
    # Trials that stop before the stream's end evaluate no task they never train (eval_future).
    partial = {"schedule.eval_future": False}
    assert protocol_overrides("first_task", 3) == ({"schedule.max_tasks": 1, **partial}, {})
    assert protocol_overrides("first_k", 3) == (
        {"schedule.max_tasks": 3, **partial},
        {"data.skip_tasks": 3},
    )
    # Transfer: first_k's trials, final runs on the rest with its classes reordered, both
    # streams named on the sweeps.
    assert protocol_overrides("first_k_reordered", 5) == (
        {"schedule.max_tasks": 5, **partial},
        {"data.skip_tasks": 5, "data.kept_order": "random"},
    )
    from pah_sweep.presets import stream_tags

    assert stream_tags("first_k", 3, "cifar100", 10, 0) == ({}, {})
    assert stream_tags("first_k_reordered", 5, "cifar100", 10, 0) == (
        {"tune_stream": "cifar100 tasks 1-5"},
        {"eval_stream": "cifar100 tasks 6-10, classes reordered (seed 0)"},
    )
    from pah_core.config import ConfigError

    with pytest.raises(ConfigError, match="data.skip_tasks = 3 is not allowed"):
        tiny_config("data.skip_tasks=3")  # 3 tasks: at least one must be left


def test_forgetting_cannot_be_an_objective_of_one_task_trials(tmp_path, capsys):
    from pah_sweep.search import main

    args = ["--storage", str(tmp_path / "ray"), "--mlflow-uri", str(tmp_path / "mlflow.db")]
    code = main(
        "cifar100", [*args, "--hpo-protocol", "first_task", "--objectives", "acc,forgetting"]
    )
    assert code == 2 and "forgetting is always 0" in capsys.readouterr().err
    # first_k's final runs are planned before the search: a k that leaves no task fails first.
    code = main("cifar100", [*args, "--hpo-protocol", "first_k", "--first-k", "10"])
    assert code == 2 and "is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "ray").exists()
