"""A search's Optuna study as pictures on the sweep's parent run."""

import pytest

from pah_core.metrics import MIN_TRIALS_FOR_IMPORTANCE
from pah_sweep.study_figures import log_study_figures, study_figures
from tests.helpers import new_mlflow_store


def _study(url, directions, n=MIN_TRIALS_FOR_IMPORTANCE):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=url, directions=directions)
    for i in range(n):
        t = study.ask(
            {
                "model.hyper_width": optuna.distributions.IntDistribution(16, 1024, log=True),
                "method.pah.lambda_sm": optuna.distributions.FloatDistribution(0.01, 10, log=True),
            }
        )
        acc = 0.3 + 0.01 * i + 0.01 * t.params["method.pah.lambda_sm"]
        study.tell(t, [acc, 0.2 - 0.003 * i] if len(directions) == 2 else acc)
    return study


@pytest.mark.parametrize(
    ("objectives", "directions"),
    [(["acc"], ["maximize"]), (["acc", "forgetting"], ["maximize", "minimize"])],
)
def test_the_study_pictures_land_on_the_parent_run(tmp_path, objectives, directions):
    from mlflow.tracking import MlflowClient

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study(url, directions)
    uri = new_mlflow_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp).info.run_id
    names = log_study_figures(uri, parent, url, "s", objectives)
    want = {"optuna_parallel_coordinates.png", "optuna_importances.png"}
    if len(objectives) == 2:
        want.add("optuna_pareto_front.png")
    assert set(names) == want
    logged = {a.path: a.file_size for a in client.list_artifacts(parent)}
    assert all(logged[n] > 5_000 for n in want)  # real images, not empty canvases
    for n in want:
        assert (tmp_path / "art" / parent / "artifacts" / n).read_bytes()[:4] == b"\x89PNG"


def test_no_importances_below_the_stated_number_of_finished_trials(tmp_path):
    """A handful of trials gives importances that are noise: the picture is left out, while the
    trials themselves are still drawn, on the objective's name (as Optuna's study names it)."""
    import matplotlib.pyplot as plt

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study(url, ["maximize"], n=MIN_TRIALS_FOR_IMPORTANCE - 1)
    figures = study_figures(url, "s", ["acc"])
    assert set(figures) == {"optuna_parallel_coordinates.png"}
    labels = [
        t.get_text()
        for ax in figures["optuna_parallel_coordinates.png"].axes
        for t in ax.get_yticklabels() + [ax.yaxis.label]
    ]
    assert any("val. accuracy" in label for label in labels), labels
    plt.close("all")


def test_optunas_style_stays_with_its_pictures(tmp_path):
    """Optuna's plots switch matplotlib to the ggplot style for the whole process: study_figures
    keeps it to its own pictures (the heatmaps drawn after them in the same process keep a white
    background)."""
    import matplotlib
    import matplotlib.pyplot as plt

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study(url, ["maximize", "minimize"], n=MIN_TRIALS_FOR_IMPORTANCE)
    before = dict(matplotlib.rcParams)
    figures = study_figures(url, "s", ["acc", "forgetting"])
    assert "optuna_pareto_front.png" in figures
    assert matplotlib.rcParams["axes.facecolor"] == before["axes.facecolor"] == "white"
    assert {k: v for k, v in matplotlib.rcParams.items() if before[k] != v} == {}
    plt.close("all")
