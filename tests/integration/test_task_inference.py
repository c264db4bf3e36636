"""Task-agnostic prediction rules and the transfer metrics, on hand-made tensors (issue #15)."""

import pytest

# -- transfer metrics and input validation -------------------------------------------------------


# -- the engine's task-agnostic evaluation -------------------------------------------------------


def test_mlflow_run_holds_the_task_agnostic_numbers_and_forward_transfer(tmp_path):
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    from pah_core.engine import Engine
    from pah_core.mlflow_reporter import MLflowReporter
    from tests.helpers import new_mlflow_store, tiny_config, tiny_stream

    uri = new_mlflow_store(tmp_path / "mlflow.db")
    cfg = tiny_config("schedule.eval_future=true", "schedule.epochs_per_task=1")
    r = Engine(cfg, tiny_stream(cfg), [MLflowReporter(uri, "cil", run_name="r")]).run()
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cil").experiment_id])
    m = run.data.metrics
    assert m["final_forward_transfer"] == pytest.approx(r["forward_transfer"])
    # One definition of the final numbers (metrics.final_metrics): results.json's and MLflow's.
    assert {k: pytest.approx(v) for k, v in r["final"].items()} == {k: m[k] for k in r["final"]}
    assert {"final_avg_acc", "final_cil_avg_acc", "final_forward_transfer"} <= set(r["final"])
    assert m["final_cil_avg_acc"] == pytest.approx(r["cil_avg_acc"])
    for rule in r["class_il"]:
        assert m[f"final_cil_avg_acc/{rule}"] == pytest.approx(r[f"cil_avg_acc/{rule}"])
        assert m[f"final_task_inference_acc/{rule}"] == pytest.approx(
            r[f"task_inference_acc/{rule}"]
        )
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"cil_acc_matrix.json", "cil_acc_matrix.png"} <= names
    cil = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/cil_acc_matrix.json")["acc_matrix"]
    assert cil == r["class_il"]["max_softmax"]["accuracy_matrix"]
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/acc_matrix.json")
    assert logged["untrained_accuracy"] == pytest.approx(r["untrained_accuracy"])
