"""The parent run of a search as the page a researcher reads first: its description holds the
leaderboard (ranked on the validation score, with links), the best trial's matrix, a legend and
the search space. A real MLflow sqlite store and Optuna storage in a temp folder."""

from pah_core.tracking import ui_page
from pah_sweep.names import PAPER_DEFAULTS_TAG, STOPPED_WHY_TAG, TRIAL_NUMBER_TAG
from tests.helpers import sqlite_store, trial_run


def _log_trial(client, exp_id, parent, number, trial_id, score, acc, tasks, **tags):
    from mlflow.entities import Metric

    rid = trial_run(
        client, exp_id, "s", trial_id, parent, **{TRIAL_NUMBER_TAG: str(number)}, **tags
    )
    client.set_tag(rid, "mlflow.runName", f"#{number} {trial_id}: x")
    values = {
        "objective/val_acc": score,
        "avg_acc": acc,
        "forgetting": 0.05,
        "cil_avg_acc": acc / 2,
        "tasks_done": tasks,
    }
    client.log_batch(rid, metrics=[Metric(k, v, 0, tasks - 1) for k, v in values.items()])
    matrix = [[0.9] + [None] * 9, [0.8, 0.7] + [None] * 8][:tasks]
    client.log_dict(rid, {"acc_matrix": matrix}, "acc_matrix.json")
    return rid


def test_the_parent_run_describes_the_sweep_with_a_leaderboard(tmp_path):
    import optuna

    from pah_sweep.leaderboard import DESCRIPTION_TAG, SPACE_FILE, describe_sweep

    uri, client, exp_id = sqlite_store(tmp_path, "e")
    parent = client.create_run(exp_id, run_name="s", tags={"sweep": "s"}).info.run_id
    # #1 the paper's defaults, finished; #2 better, finished; #3 stopped after 1 of 2 tasks with
    # the highest test accuracy (of one task) and the lowest validation score.
    first = _log_trial(
        client, exp_id, parent, 1, "aaaa0001", 0.70, 0.72, 2, **{PAPER_DEFAULTS_TAG: "true"}
    )
    client.log_param(first, "model.hyper_width", "16")
    best = _log_trial(client, exp_id, parent, 2, "bbbb0002", 0.75, 0.74, 2)
    stopped = _log_trial(
        client,
        exp_id,
        parent,
        3,
        "cccc0003",
        0.30,
        0.91,
        1,
        **{STOPPED_WHY_TAG: "stopped by ASHA after task 1"},
    )
    for rid in (first, best, stopped):
        client.set_terminated(rid, "FINISHED")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            params={"model.hyper_width": 16},
            distributions={
                "model.hyper_width": optuna.distributions.IntDistribution(16, 1024, log=True)
            },
            value=0.7,
        )
    )
    summary = {"objectives": ["acc"], "n_run": 2, "best": {"trial": "bbbb0002"}, "pareto": []}
    links = describe_sweep(uri, parent, summary, storage)

    text = client.get_run(parent).data.tags[DESCRIPTION_TAG]
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and "#" in ln]
    # Ranked on the validation score, not on the test accuracy of the tasks each trial ran.
    assert [ln.split("|")[2].strip().strip("*")[:2] for ln in table] == ["#2", "#1", "#3"]
    assert "**best**" in table[0] and "paper defaults" in table[1]
    assert "| 75.0% | 74.0% | 5.0% | 37.0% | 2/2 | finished |" in table[0]
    assert "| 30.0% | 91.0% |" in table[2] and "stopped by ASHA after task 1" in table[2]
    for rid, line in zip((best, first, stopped), table, strict=True):
        assert f"[open]({ui_page(exp_id, rid)})" in line and "workflowType=machine_learning" in line
    # The best trial's matrix, cropped to the 2 tasks run and numbered from 1.
    assert "| after task ↓ / on task → | 1 | 2 |" in text
    assert "| 2 | 80 | 70 |" in text
    assert "objective/val_acc" in text and "`+k more`" in text  # the legend
    assert "| `model.hyper_width` | integer 16 – 1024, log scale | 16 |" in text
    import mlflow.artifacts

    space = mlflow.artifacts.load_dict(f"{client.get_run(parent).info.artifact_uri}/{SPACE_FILE}")
    assert set(space) == {"model.hyper_width"}
    assert links["parent"].endswith(ui_page(exp_id, parent))
    assert links["best"].endswith(ui_page(exp_id, best))
