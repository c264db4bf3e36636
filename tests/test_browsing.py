"""What a user is told to open: MLflow UI links on the runs table of the training view, a tagged
experiment, and trial run names that say what each trial is."""

from pah_core.tracking import EXPERIMENT_KIND_TAG, ui_commands
from pah_sweep.space import run_name
from tests.helpers import new_mlflow_store


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

    client = MlflowClient(new_mlflow_store(tmp_path / "mlflow.db"))
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


def test_the_demo_says_what_happened_in_a_few_lines():
    from sweeps.demo import final_lines

    def trial(name, tasks, acc, forgetting, status):
        return {
            "trial": name,
            "tasks_done": tasks,
            "avg_acc": acc,
            "forgetting": forgetting,
            "status": status,
        }

    trials = [
        trial("a_00000", 4, 0.344, 0.023, "finished"),
        trial("a_00001", 4, 0.361, 0.018, "finished"),
        trial("a_00002", 1, 0.20, 0.0, "stopped early (ASHA)"),
        trial("a_00003", 2, 0.25, 0.01, "stopped early (ASHA)"),
    ]
    pah = {"trials": trials, "best": trials[1]}
    finetune = trial("f_00000", 4, 0.375, 0.051, "finished")
    lines = final_lines(pah, finetune, 4)
    assert lines[0].startswith("PAH, paper defaults:  acc 34.4%, forgetting 2.3% after 4 tasks")
    assert "best of 4 trials (a_00001):  acc 36.1%, forgetting 1.8%" in lines[1]
    assert lines[2] == "fine-tune reference:  acc 37.5%, forgetting 5.1%"
    assert lines[3] == (
        "ASHA stopped 2 of 4 trials early: 11 of 16 trial-tasks trained (31% of the training saved)"
    )
    shipped = final_lines(pah, finetune, 4, "shipped: x.json, same protocol")
    assert (
        shipped[2]
        == "fine-tune reference (shipped: x.json, same protocol):  acc 37.5%, forgetting 5.1%"
    )


def test_the_shipped_fine_tune_reference_is_the_demos_protocol():
    """The demo reads its fine-tune reference from the repository only when it was trained under
    exactly the config the demo would train; a change to the preset (or to the base config) must
    come with a new reference (python sweeps/demo.py --write-reference)."""
    from sweeps.demo import REFERENCE, reference_config, shipped_reference

    config = reference_config()
    assert config["method"]["name"] == "finetune" and config["model"]["backbone"] == "small_cnn"
    shipped = shipped_reference(config)
    assert shipped is not None, f"{REFERENCE} is missing or was trained under another config"
    assert 0.0 < shipped["avg_acc"] <= 1.0 and 0.0 <= shipped["forgetting"] <= 1.0
    assert shipped["tasks_done"] == config["schedule"]["max_tasks"]
    other = {**config, "run": {**config["run"], "seed": config["run"]["seed"] + 1}}
    assert shipped_reference(other) is None


def test_every_documented_mlflow_link_opens_the_training_view():
    """A link to an MLflow UI page without ?workflowType=machine_learning opens MLflow 3's GenAI
    view: every one the docs show or the code builds carries it (the code builds them in
    pah_core.tracking.ui_page only)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [
        p
        for p in root.rglob("*")
        if p.suffix in (".md", ".py", ".sh", ".yaml")
        and not {".venv", ".git", "tests", "results"} & set(p.relative_to(root).parts)
    ]
    links = [
        (p.relative_to(root), m.group(0))
        for p in files
        for m in re.finditer(r"#/experiments[^\s`\"')]*", p.read_text(errors="ignore"))
    ]
    assert links, "no MLflow links found: the pattern is stale"
    code = [(p, link) for p, link in links if p.suffix == ".py"]
    assert [str(p) for p, _ in code] == ["pah_core/tracking.py"], code
    docs = [(p, link) for p, link in links if p.suffix != ".py"]
    assert all("workflowType=machine_learning" in link for _, link in docs), docs
