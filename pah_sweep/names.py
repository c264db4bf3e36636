"""Short names for a search's trials, the same in the console, MLflow and the leaderboard:
``#2 0638a5f7: W201 sm0.04 +6 more`` (the trial's number in start order, Ray's trial id, and what
differs from the paper's defaults), ``#1 5f1e2a90: paper defaults``; and the tags and attributes
that cross-reference a trial's MLflow run and its Optuna trial."""

from __future__ import annotations

import math
from typing import Any

# The config key of a search trial's number, 1, 2, 3 in start order (Optuna's trial number + 1,
# set by pah_sweep.tracked_search): not a dotted config key, so it overrides nothing.
TRIAL_NUMBER = "trial_number"
PAPER_DEFAULTS_LABEL = "paper defaults"

# Tags of a search trial's MLflow run.
TRIAL_NUMBER_TAG = "pah.trial_number"
PAPER_DEFAULTS_TAG = "pah.paper_defaults"  # "true" on the trial that runs the paper's defaults
OPTUNA_NUMBER_TAG = "optuna.trial_number"  # Optuna's own number: this trial's number - 1
OPTUNA_STUDY_TAG = "optuna.study"
STOPPED_TAG = "pah.stopped_early"  # "asha" on a trial ASHA stopped
STOPPED_WHY_TAG = "pah.stopped"  # "stopped by ASHA after task k"
# User attributes of a search's Optuna trial.
MLFLOW_RUN_ATTR = "mlflow_run_id"
MLFLOW_URL_ATTR = "mlflow_url"


def same(a: Any, b: Any) -> bool:
    """Equal settings, floats up to rounding (a value read back from JSON or a string)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def differences(config: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """The keys of ``defaults`` whose value ``config`` changes (keys it lacks change nothing)."""
    return [k for k, v in defaults.items() if k in config and not same(config[k], v)]


def shown(label: str, value: Any) -> str:
    return f"{label}{value:.3g}" if isinstance(value, float) else f"{label}{value}"


def what_differs(
    config: dict[str, Any], name_keys: dict[str, str], defaults: dict[str, Any]
) -> str:
    """``W201 sm0.04 +6 more``: the labelled settings (``name_keys``) that differ from
    ``defaults``, then how many other settings differ; ``paper defaults`` when none does."""
    changed = differences(config, defaults)
    if not changed:
        return PAPER_DEFAULTS_LABEL
    parts = [shown(label, config[k]) for k, label in name_keys.items() if k in changed]
    others = len([k for k in changed if k not in name_keys])
    if others:
        parts.append(f"+{others} more")
    return " ".join(parts)


def search_trial_name(
    number: int,
    trial_id: str,
    config: dict[str, Any],
    name_keys: dict[str, str],
    defaults: dict[str, Any],
) -> str:
    """A search trial's run name: number first, so that a column too narrow for the rest still
    tells trials apart."""
    return f"#{number} {trial_id}: {what_differs(config, name_keys, defaults)}"
