"""PAH's hypernetwork diagnostics and the prototype pictures (issue #17 points 3-4)."""

import json

import numpy as np

from pah_core import figures
from pah_core.engine import Engine
from tests.helpers import new_mlflow_store, tiny_config, tiny_stream


def test_mlflow_run_has_the_pictures_and_drift_metrics(tmp_path):
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient
    from PIL import Image

    from pah_core.mlflow_reporter import MLflowReporter

    uri = new_mlflow_store(tmp_path / "mlflow.db")
    cfg = tiny_config("schedule.epochs_per_task=1")
    engine = Engine(cfg, tiny_stream(cfg), [MLflowReporter(uri, "diag", run_name="r")])
    engine.run()
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("diag").experiment_id])
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"prototypes.png", "head_drift.png", "diagnostics.json"} <= names
    history = [
        m.step for m in client.get_metric_history(run.info.run_id, "diag/head_drift/task_00")
    ]
    assert history == [0, 1, 2]
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/diagnostics.json")
    assert logged["diagnostics"] == json.loads(json.dumps(engine.state.diagnostics))
    png = mlflow.artifacts.download_artifacts(f"{run.info.artifact_uri}/prototypes.png")
    shown = np.asarray(Image.open(png).convert("RGB"))
    pics = engine.method.pictures()
    want = figures.prototype_grid(
        pics["prototypes_initial"].numpy(),
        pics["prototypes_learned"].numpy(),
        3,
        pics["mean"],
        pics["std"],
    )
    # The grid's pixels exactly, inside the labels' margins (figures.labelled_prototypes).
    h, w = want.shape[:2]
    assert shown.shape == (
        figures.LABEL_TOP + h + figures.LABEL_BOTTOM,
        figures.LABEL_LEFT + w + figures.LABEL_RIGHT,
        3,
    )
    top, left = figures.LABEL_TOP, figures.LABEL_LEFT
    assert np.array_equal(shown[top : top + h, left : left + w], want)
    assert "forgetting_curves.png" in names
