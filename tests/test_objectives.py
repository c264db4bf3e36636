"""What a search optimises (--objectives), and how the summary picks the best trial and the Pareto
set from it, on hand-made trial results."""

from dataclasses import dataclass

import pandas as pd
import pytest

from pah_sweep.cli import search_arguments
from pah_sweep.summary import summarise
from pah_sweep.trial import OBJECTIVE_CHOICES, OBJECTIVES, objective_metrics


def test_objectives_count_untrained_tasks_as_zero_and_forgetting_as_worst():
    mid = objective_metrics([0.8, 0.6], 0.2, [0.5, 0.3], tasks_done=2, n_run=4)
    assert mid == {
        "objective_acc": pytest.approx(0.35),
        "objective_forgetting": 1.0,
        "objective_cil_acc": pytest.approx(0.2),
    }
    end = objective_metrics([0.8, 0.6], 0.2, [0.5, 0.3], tasks_done=2, n_run=2)
    assert end["objective_forgetting"] == 0.2 and end["objective_cil_acc"] == pytest.approx(0.4)


def test_every_choice_names_known_objectives():
    for choice in OBJECTIVE_CHOICES:
        assert all(o in OBJECTIVES for o in choice.split(","))
    import argparse

    p = search_arguments(argparse.ArgumentParser())
    assert p.parse_args(["--objectives", "acc,cil_acc"]).objectives == "acc,cil_acc"
    with pytest.raises(SystemExit):
        p.parse_args(["--objectives", "cil_forgetting"])


@dataclass
class _Result:
    path: str
    config: dict
    error: BaseException | None = None


class _Grid:
    """What summarise reads of Ray's ResultGrid: the trials and their last results."""

    def __init__(self, rows):
        self.rows = rows

    def get_dataframe(self):
        return pd.DataFrame(self.rows)

    def __iter__(self):
        return iter(_Result(f"/x/trial_{r['trial_id']}", {}) for r in self.rows)


ROWS = [
    # trial, tasks, task-IL acc, forgetting, class-IL acc
    ("a", 2, 0.80, 0.10, 0.20),
    ("b", 2, 0.70, 0.02, 0.30),
    ("c", 2, 0.60, 0.05, 0.25),  # below b in all three
    ("d", 1, 0.90, 0.00, 0.40),  # did not finish: never best, never on a front
]


def _grid():
    return _Grid(
        [
            {"trial_id": t, "tasks_done": n, "avg_acc": a, "forgetting": f, "cil_avg_acc": c}
            for t, n, a, f, c in ROWS
        ]
    )


def test_best_trial_is_the_first_objectives():
    assert summarise(_grid(), ["acc"], 2)["best"]["trial"] == "a"
    assert summarise(_grid(), ["cil_acc"], 2)["best"]["trial"] == "b"


def test_pareto_sets_follow_each_objectives_direction():
    by_forgetting = summarise(_grid(), ["acc", "forgetting"], 2)["pareto"]
    assert [t["trial"] for t in by_forgetting] == ["a", "b"]  # c: b forgets less and is better
    by_class_il = summarise(_grid(), ["acc", "cil_acc"], 2)["pareto"]
    assert [t["trial"] for t in by_class_il] == ["a", "b"]  # c: below b in both


def test_an_unfinished_trial_is_asha_only_in_a_search():
    rows = summarise(_grid(), ["acc"], 2)["trials"]
    assert {r["trial"]: r["status"] for r in rows}["d"] == "stopped early (ASHA)"
    rows = summarise(_grid(), ["acc"], 2, early_stopping=False)["trials"]
    assert {r["trial"]: r["status"] for r in rows}["d"] == "not finished"


def test_a_search_selects_on_validation_numbers_not_test():
    rows = [
        # trial a: the best test accuracy, the worse validation accuracy
        {
            "trial_id": "a",
            "tasks_done": 2,
            "avg_acc": 0.9,
            "forgetting": 0.1,
            "val_avg_acc": 0.5,
            "val_forgetting": 0.1,
            "cil_avg_acc": 0.3,
            "val_cil_avg_acc": 0.2,
        },
        {
            "trial_id": "b",
            "tasks_done": 2,
            "avg_acc": 0.6,
            "forgetting": 0.1,
            "val_avg_acc": 0.7,
            "val_forgetting": 0.2,
            "cil_avg_acc": 0.2,
            "val_cil_avg_acc": 0.3,
        },
    ]
    summary = summarise(_Grid(rows), ["acc"], 2)
    assert summary["selected_on"] == "validation" and summary["best"]["trial"] == "b"
    assert summarise(_Grid(rows), ["cil_acc"], 2)["best"]["trial"] == "b"
    front = summarise(_Grid(rows), ["acc", "forgetting"], 2)["pareto"]
    assert [t["trial"] for t in front] == ["b", "a"]  # b: better val acc; a: less val forgetting
