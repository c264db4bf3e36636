"""What a user is told to open: MLflow UI links on the runs table of the training view, a tagged
experiment, and trial run names that say what each trial is."""

from pah_core.tracking import EXPERIMENT_KIND_TAG, ui_commands
from sweeps.space import run_name


def test_links_open_the_runs_table_of_the_training_view():
    local = ui_commands("sqlite:////w/runs/mlflow.db", "3")
    assert local == [
        "mlflow ui --backend-store-uri sqlite:////w/runs/mlflow.db --port 5000",
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning",
    ]
    (server,) = ui_commands("http://10.0.0.5:5000/", "3", run_id="abc")
    assert server == "http://10.0.0.5:5000/#/experiments/3/runs/abc?workflowType=machine_learning"


def test_new_experiments_are_tagged_for_model_training(tmp_path):
    from mlflow.tracking import MlflowClient

    from pah_core.mlflow_reporter import get_or_create_experiment

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = get_or_create_experiment(client, "e")
    assert get_or_create_experiment(client, "e") == exp_id
    key, value = EXPERIMENT_KIND_TAG
    assert client.get_experiment(exp_id).tags[key] == value


def test_run_names_say_what_a_trial_is():
    searched = {
        "model.prototype_size": 10,
        "model.hyper_width": 16,
        "method.pah.lambda_sm": 0.123456,
        "method.pah.lambda_sp": 1.0,
        "optim.lr_backbone": 1e-4,
    }
    assert run_name("pah-search", "56ecd_00003", searched) == "pah-search #3: P10 W16 sm0.123 sp1"
    grid = {"variant": "lwf", "run.seed": 1}
    assert run_name("repro-cpu-main", "56ecd_00007", grid) == "repro-cpu-main #7: lwf seed 1"
    assert run_name("s", "x", {}) == "s #x"
