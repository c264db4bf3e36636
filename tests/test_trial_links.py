"""A search's trials as a researcher meets them: short names, Optuna trials and MLflow runs that
point at each other, ASHA stops as PRUNED (Optuna) and FINISHED (MLflow), not as failures. Real
Optuna storages and MLflow sqlite stores in a temp folder; Tune's scheduler and searcher run
in-process, called as Tune's driver calls them."""

import json
from dataclasses import dataclass

import pytest

from pah_core.tracking import ui_page
from pah_sweep.names import (
    MLFLOW_RUN_ATTR,
    MLFLOW_URL_ATTR,
    OPTUNA_NUMBER_TAG,
    STOPPED_WHY_TAG,
    TRIAL_NUMBER,
)
from pah_sweep.space import published_defaults, run_name
from tests.helpers import sqlite_store, trial_run

PAPER_DEFAULTS = published_defaults("pah")

EXPERIMENT = "e"


def test_search_trials_are_named_by_number_id_and_what_differs_from_the_defaults():
    defaults = {**PAPER_DEFAULTS, TRIAL_NUMBER: 1}
    assert run_name("sweep-20261201", "0638a5f7", defaults) == "#1 0638a5f7: paper defaults"
    changed = {
        **PAPER_DEFAULTS,
        TRIAL_NUMBER: 3,
        "model.hyper_width": 201,
        "method.pah.lambda_sm": 0.0412345,
        "optim.lr_backbone": 3e-4,
        "optim.lr_hypernet": 2e-3,
    }
    assert run_name("s", "1a2b3c4d", changed) == "#3 1a2b3c4d: W201 sm0.0412 +2 more"
    only_others = {**PAPER_DEFAULTS, TRIAL_NUMBER: 2, "optim.lr_backbone": 3e-4}
    assert run_name("s", "ffee0011", only_others) == "#2 ffee0011: +1 more"
    # Read back from JSON (a float default as 1.0 or 1): still the defaults.
    again = json.loads(json.dumps(defaults))
    assert run_name("s", "0638a5f7", again).endswith("paper defaults")


@dataclass
class _Trial:
    """What Tune's schedulers read of a trial."""

    trial_id: str


def test_asha_stops_are_pruned_in_optuna_and_finished_in_mlflow_and_both_link(tmp_path):
    import optuna
    from ray import tune

    from pah_sweep.tracked_search import RecordingASHA, TrackedOptunaSearch, asha_stops

    uri, client, exp_id = sqlite_store(tmp_path, EXPERIMENT)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep = "s-links"
    searcher = TrackedOptunaSearch(
        sweep=sweep,
        mlflow_uri=uri,
        experiment=EXPERIMENT,
        metric_names=["val. accuracy (unrun tasks = 0)"],
        metric="objective_acc",
        mode="max",
        points_to_evaluate=[{"x": 0.5}],
        storage=optuna.storages.RDBStorage(storage),
        study_name=sweep,
    )
    searcher.set_search_properties(None, None, {"x": tune.uniform(0.0, 1.0)})
    scheduler = RecordingASHA(
        sweep=sweep,
        time_attr="tasks_done",
        metric="objective_acc",
        mode="max",
        max_t=2,
        grace_period=1,
        reduction_factor=2,
    )
    ids = ["aaaa0001", "bbbb0002", "cccc0003"]
    configs = [searcher.suggest(t) for t in ids]
    assert [c[TRIAL_NUMBER] for c in configs] == [1, 2, 3]  # 1, 2, 3 in start order
    assert configs[0]["x"] == 0.5  # the first point evaluated first
    runs = {t: trial_run(client, exp_id, sweep, t) for t in ids}
    for t in ids:
        scheduler.on_trial_add(None, _Trial(t))
    # Task 1: two good trials, then a bad one below their median, which ASHA stops.
    decisions = {}
    for t, score in zip(ids, (0.40, 0.45, 0.10), strict=True):
        result = {"tasks_done": 1, "objective_acc": score, "training_iteration": 1}
        decisions[t] = scheduler.on_trial_result(None, _Trial(t), result)
        if decisions[t] == "CONTINUE":
            searcher.on_trial_result(t, result)
    assert decisions["cccc0003"] == "STOP" and asha_stops(sweep) == {"cccc0003": 1}
    stop = {"tasks_done": 1, "objective_acc": 0.10, "training_iteration": 1}
    searcher.on_trial_complete("cccc0003", stop)
    # A trial at its last task is stopped too, and finishes: not an early stop.
    last = {"tasks_done": 2, "objective_acc": 0.8, "training_iteration": 2}
    assert scheduler.on_trial_result(None, _Trial("aaaa0001"), last) == "STOP"
    assert "aaaa0001" not in asha_stops(sweep)
    searcher.on_trial_complete("aaaa0001", last)

    study = optuna.load_study(study_name=sweep, storage=storage)
    assert study.metric_names == ["val. accuracy (unrun tasks = 0)"]
    states = {t.number: t.state for t in study.trials}
    assert states[0] == optuna.trial.TrialState.COMPLETE
    assert states[2] == optuna.trial.TrialState.PRUNED
    assert study.trials[2].value == pytest.approx(0.10)  # its last intermediate value
    for number, t in enumerate(ids):
        attrs = study.trials[number].user_attrs
        assert attrs[MLFLOW_RUN_ATTR] == runs[t]
        assert attrs[MLFLOW_URL_ATTR].endswith(ui_page(exp_id, runs[t])) and attrs[
            MLFLOW_URL_ATTR
        ].endswith("?workflowType=machine_learning")
        assert client.get_run(runs[t]).data.tags[OPTUNA_NUMBER_TAG] == str(number)
    stopped = client.get_run(runs["cccc0003"])
    assert stopped.info.status == "FINISHED"
    assert stopped.data.tags[STOPPED_WHY_TAG] == "stopped by ASHA after task 1"
    assert client.get_run(runs["bbbb0002"]).info.status == "RUNNING"  # untouched
