"""A finished search's Optuna study as pictures on its MLflow parent run: parameter importances
(PED-ANOVA, as optuna-dashboard computes them, so the two agree), the Pareto front (two
objectives) and a parallel-coordinates view of the trials."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

from pah_core.metrics import MIN_TRIALS_FOR_IMPORTANCE

from .objectives import OBJECTIVES
from .record import mlflow_client


def study_figures(storage_url: str, study_name: str, objectives: list[str]) -> dict[str, Any]:
    """``{artifact file name: matplotlib figure}`` for the study's complete trials; pictures that
    need more trials than there are (importances: ``MIN_TRIALS_FOR_IMPORTANCE``) are left out,
    with no error."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as ov

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=storage_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return {}
    names = [OBJECTIVES[o].label for o in objectives]
    first = (lambda t: t.values[0]) if len(study.directions) > 1 else None
    # PED-ANOVA ranks parameters by how they set the best trials apart, assuming lower is better:
    # a maximised objective is negated (optuna-dashboard does the same).
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    out: dict[str, Any] = {}
    # Optuna's plots set the ggplot style process-wide (plt.style.use): only for these figures,
    # the rcParams as they were afterwards (the analysis's heatmaps are drawn in the same process).
    with warnings.catch_warnings(), matplotlib.rc_context():
        # Optuna marks its matplotlib backend experimental; the pictures are what we want.
        warnings.simplefilter("ignore")
        coords = ov.plot_parallel_coordinate(study, target=first, target_name=names[0]).figure
        coords.set_size_inches(12, 5.5)  # one axis per searched parameter: room for their names
        out["optuna_parallel_coordinates.png"] = coords
        # Where they cannot be computed (trials that do not differ), no picture either.
        with contextlib.suppress(RuntimeError, ValueError):
            if len(complete) >= MIN_TRIALS_FOR_IMPORTANCE:
                out["optuna_importances.png"] = ov.plot_param_importances(
                    study,
                    evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    target=lambda t: sign * t.values[0],
                    target_name=names[0],
                ).figure
        if len(study.directions) == 2:
            out["optuna_pareto_front.png"] = ov.plot_pareto_front(
                study, target_names=names[:2]
            ).figure
    return out


def log_study_figures(
    mlflow_uri: str, parent_run_id: str, storage_url: str, study_name: str, objectives: list[str]
) -> list[str]:
    """The pictures of ``study_figures`` as artifacts of the parent run; their names."""
    import matplotlib.pyplot as plt

    client = mlflow_client(mlflow_uri)
    figures = study_figures(storage_url, study_name, objectives)
    for name, fig in figures.items():
        fig.tight_layout()
        client.log_figure(parent_run_id, fig, name)
        plt.close(fig)
    return sorted(figures)
