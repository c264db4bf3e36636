"""A search's scheduler and searcher, with what they tell MLflow and Optuna about each trial.

- ``RecordingASHA``: Tune's ASHA, noting each trial it stops early (``asha_stops``). Only the
  scheduler knows a stop from an interrupted sweep: both end a trial short of its last task.
- ``TrackedOptunaSearch``: OptunaSearch that names its objectives in the study, numbers trials
  1, 2, 3 in start order (the ``TRIAL_NUMBER`` config key, read by the trial's run name), links each
  Optuna trial and its MLflow run both ways, and tells Optuna that a trial ASHA stopped was PRUNED
  (its MLflow run FINISHED, tagged with the task it stopped after), not COMPLETE.
"""

from __future__ import annotations

import warnings
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from pah_core.tracking import ui_commands

from .names import (
    MLFLOW_RUN_ATTR,
    MLFLOW_URL_ATTR,
    OPTUNA_NUMBER_TAG,
    OPTUNA_STUDY_TAG,
    STOPPED_TAG,
    STOPPED_WHY_TAG,
    TRIAL_NUMBER,
)
from .record import mlflow_client

# Per sweep (this driver process), the trials its ASHA stopped: trial id -> tasks done. A module
# registry rather than an attribute, because Tune pickles the scheduler and the searcher apart,
# and a resumed sweep would give each its own copy of a shared set.
_ASHA_STOPS: dict[str, dict[str, int]] = {}


def asha_stops(sweep: str) -> dict[str, int]:
    return _ASHA_STOPS.setdefault(sweep, {})


def stopped_why(tasks_done: int) -> str:
    return f"stopped by ASHA after task {tasks_done}"


class RecordingASHA(AsyncHyperBandScheduler):
    """ASHA that records the trials it stops before their last task."""

    def __init__(self, *, sweep: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.sweep = sweep

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        done = result.get(self._time_attr)
        # A trial at max_t is stopped too (it has nothing left to run): that is not early.
        if decision == TrialScheduler.STOP and done is not None and done < self._max_t:
            asha_stops(self.sweep)[trial.trial_id] = int(done)
        return decision


class TrackedOptunaSearch(OptunaSearch):
    """OptunaSearch with named objectives, numbered trials, MLflow links and PRUNED stops."""

    def __init__(
        self,
        *,
        sweep: str,
        mlflow_uri: str | None,
        experiment: str,
        metric_names: list[str],
        **kwargs: Any,
    ):
        self.sweep = sweep
        self.mlflow_uri = mlflow_uri
        self.experiment = experiment
        self.metric_names = list(metric_names)
        self.linked: dict[str, str] = {}  # trial id -> its MLflow run id, once linked
        super().__init__(**kwargs)

    def _setup_study(self, mode):
        super()._setup_study(mode)
        with warnings.catch_warnings():  # Optuna marks set_metric_names experimental
            warnings.simplefilter("ignore")
            self._ot_study.set_metric_names(self.metric_names)

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            config[TRIAL_NUMBER] = self._ot_trials[trial_id].number + 1
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._link(trial_id)
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        run_id = self._link(trial_id)
        stopped = asha_stops(self.sweep).get(trial_id)
        if stopped is None or error:
            return super().on_trial_complete(trial_id, result, error)
        from optuna.trial import TrialState

        ot_trial = self._ot_trials[trial_id]
        # Tune gives a stopped trial's last result to on_trial_complete only; PRUNED, Optuna keeps
        # the last intermediate value (one objective) as the trial's value: report it first.
        if result and isinstance(self.metric, str) and result.get(self.metric) is not None:
            step = int(result.get("training_iteration", stopped))
            with warnings.catch_warnings():  # a step reported already is kept, with a warning
                warnings.simplefilter("ignore")
                ot_trial.report(float(result[self.metric]), step)
        try:
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
        finally:
            self._completed_trials.add(trial_id)
        if run_id is not None:
            close_stopped_run(self.mlflow_uri, run_id, stopped)

    def _link(self, trial_id: str) -> str | None:
        """The trial's MLflow run id (None before the run exists), linked to its Optuna trial once:
        the run id and URL as the Optuna trial's user attributes, the Optuna trial number and
        study as tags of the run."""
        if trial_id in self.linked:
            return self.linked[trial_id]
        if self.mlflow_uri is None or trial_id not in self._ot_trials:
            return None
        run = _trial_run(self.mlflow_uri, self.experiment, self.sweep, trial_id)
        if run is None:
            return None
        ot_trial = self._ot_trials[trial_id]
        url = ui_commands(self.mlflow_uri, run.info.experiment_id, run.info.run_id)[-1]
        ot_trial.set_user_attr(MLFLOW_RUN_ATTR, run.info.run_id)
        ot_trial.set_user_attr(MLFLOW_URL_ATTR, url)
        client = mlflow_client(self.mlflow_uri)
        client.set_tag(run.info.run_id, OPTUNA_NUMBER_TAG, str(ot_trial.number))
        client.set_tag(run.info.run_id, OPTUNA_STUDY_TAG, self._study_name or "")
        self.linked[trial_id] = run.info.run_id
        return run.info.run_id


def _trial_run(mlflow_uri: str, experiment: str, sweep: str, trial_id: str):
    from pah_core.mlflow_reporter import find_run

    client = mlflow_client(mlflow_uri)
    exp = client.get_experiment_by_name(experiment)
    return None if exp is None else find_run(client, exp.experiment_id, f"{sweep}/{trial_id}")


def close_stopped_run(mlflow_uri: str, run_id: str, tasks_done: int) -> None:
    """A run ASHA stopped: FINISHED (a stop is the search working, not a failure: only failures
    are red in MLflow), tagged with the task it stopped after."""
    client = mlflow_client(mlflow_uri)
    client.set_tag(run_id, STOPPED_TAG, "asha")
    client.set_tag(run_id, STOPPED_WHY_TAG, stopped_why(tasks_done))
    client.set_terminated(run_id, status="FINISHED")
