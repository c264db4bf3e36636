"""What a sweep prints: one line per trial event (a task done, a trial ended) instead of Ray's
full-width status table, worker output in Ray's log files rather than on the terminal, and Ray's
internal warnings kept out of sight; ``--verbose`` gives Ray's own output back."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any


def quiet_ray() -> None:
    """Ray's own log lines and deprecation notices are its business, not the user's: only errors.
    Tune's newer console output prints an experiment box and TensorBoard hints whatever the
    verbosity; its classic output honours ``verbose=0``."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name in ("ray", "ray.tune", "ray.train", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # MLflow's "creating tables" and Optuna's "new study created" are not news either. Both set
    # their loggers' levels when first imported: import them first, then set.
    import mlflow  # noqa: F401
    import optuna

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"ray(\.|$)")


def _pct(v: Any) -> str:
    return "   -  " if v is None else f"{100 * float(v):5.1f}%"


def trial_lines(n_run: int, early_stopping: bool):
    """The Tune callback that prints ``TrialLines`` (Ray is imported only when a sweep starts)."""
    from ray.tune import Callback

    class TrialLines(_TrialLines, Callback):
        pass

    return TrialLines(n_run, early_stopping)


class _TrialLines:
    """``[sweep] #3  task 2/4  acc  34.1%  forgetting   1.2%  running`` for each report, and a line
    when a trial ends (finished, stopped by ASHA, failed)."""

    def __init__(self, n_run: int, early_stopping: bool):
        self.n_run = n_run
        self.early_stopping = early_stopping
        self.last: dict[str, dict[str, Any]] = {}

    @staticmethod
    def _name(trial) -> str:
        from .names import TRIAL_NUMBER

        number = trial.config.get(TRIAL_NUMBER) if isinstance(trial.config, dict) else None
        if number is not None:  # a search trial: its number in start order, as MLflow names it
            return f"#{number}"
        tail = str(trial.trial_id).rsplit("_", 1)[-1]
        return f"#{int(tail)}" if tail.isdigit() else str(trial.trial_id)

    def _line(self, trial, state: str) -> None:
        r = self.last.get(trial.trial_id, {})
        variant = trial.config.get("variant") if isinstance(trial.config, dict) else None
        what = f" {variant} seed {trial.config.get('run.seed')}" if variant else ""
        print(
            f"[sweep] {self._name(trial):>4s}{what}  task {r.get('tasks_done', 0)}/{self.n_run}  "
            f"acc {_pct(r.get('avg_acc'))}  forgetting {_pct(r.get('forgetting'))}  {state}",
            flush=True,
        )

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.last[trial.trial_id] = result
        done = int(result.get("tasks_done", 0)) >= self.n_run
        self._line(trial, "done" if done else "running")

    def on_trial_complete(self, iteration, trials, trial, **info):
        tasks = int(self.last.get(trial.trial_id, {}).get("tasks_done", 0))
        if tasks < self.n_run:
            self._line(trial, "stopped early (ASHA)" if self.early_stopping else "not finished")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "failed (see the summary)")
