"""The PAH search space, in one place.

Keys are dotted config keys (``pah_core.config``), so a sampled point is a list of config overrides.
The official code's defaults are evaluated first (``PAPER_DEFAULTS``), so every study contains the
paper's configuration as its baseline trial.

| key | distribution | why this range |
| --- | --- | --- |
| model.prototype_size | {5, 10, 16, 20} | the paper's prototype-size ablation |
| model.prototype_channels | {1, 3} | grayscale (official) or colour prototypes |
| model.hyper_width | log-int 16..1024 | public default 16, dev-repo configs 1024 |
| model.hyper_depth | int 1..4 | hidden layers of the hypernetwork MLP |
| method.pah.lambda_sm | log 0.01..10 | logit-distillation weight (official 0.5) |
| method.pah.lambda_sp | log 0.01..10 | prototype-distillation weight (official 1) |
| method.pah.temperature | 1..8 | the dev repo's Optuna script searched 2..7 |
| optim.lr_backbone | log 1e-5..1e-3 | official 1e-4 |
| optim.lr_hypernet | log 1e-4..1e-2 | official 1e-3 |
| optim.lr_prototypes | log 1e-4..1e-2 | official 1e-3 |
"""

from __future__ import annotations

from typing import Any

PAPER_DEFAULTS: dict[str, Any] = {
    "model.prototype_size": 10,
    "model.prototype_channels": 1,
    "model.hyper_width": 16,
    "model.hyper_depth": 1,
    "method.pah.lambda_sm": 0.5,
    "method.pah.lambda_sp": 1.0,
    "method.pah.temperature": 2.0,
    "optim.lr_backbone": 1e-4,
    "optim.lr_hypernet": 1e-3,
    "optim.lr_prototypes": 1e-3,
}


def search_space() -> dict[str, Any]:
    """Ray Tune distributions (converted to Optuna's by OptunaSearch)."""
    from ray import tune

    return {
        "model.prototype_size": tune.choice([5, 10, 16, 20]),
        "model.prototype_channels": tune.choice([1, 3]),
        "model.hyper_width": tune.lograndint(16, 1025),
        "model.hyper_depth": tune.randint(1, 5),
        "method.pah.lambda_sm": tune.loguniform(0.01, 10.0),
        "method.pah.lambda_sp": tune.loguniform(0.01, 10.0),
        "method.pah.temperature": tune.uniform(1.0, 8.0),
        "optim.lr_backbone": tune.loguniform(1e-5, 1e-3),
        "optim.lr_hypernet": tune.loguniform(1e-4, 1e-2),
        "optim.lr_prototypes": tune.loguniform(1e-4, 1e-2),
    }


# The searched settings a trial's MLflow run name shows, with their short labels: the ones that
# change PAH's shape and its two loss weights (the learning rates are in the run's params).
NAME_KEYS = {
    "model.prototype_size": "P",
    "model.hyper_width": "W",
    "method.pah.lambda_sm": "sm",
    "method.pah.lambda_sp": "sp",
}


def run_name(sweep: str, trial_id: str, config: dict[str, Any]) -> str:
    """A trial's MLflow run name: a search trial's number, id and what differs from the paper's
    defaults (sweeps.names), e.g. ``#3 0638a5f7: W201 sm0.04 +6 more``; a grid trial's sweep,
    number and variant, e.g. ``repro-cpu-main #7: lwf seed 1``."""
    from .names import TRIAL_NUMBER, search_trial_name

    if config.get(TRIAL_NUMBER) is not None:
        return search_trial_name(config[TRIAL_NUMBER], trial_id, config, NAME_KEYS, PAPER_DEFAULTS)
    tail = trial_id.rsplit("_", 1)[-1]
    number = str(int(tail)) if tail.isdigit() else trial_id
    if config.get("variant") is not None:
        seed = config.get("run.seed")
        what = f"{config['variant']}" + ("" if seed is None else f" seed {seed}")
    else:
        what = " ".join(
            f"{label}{v:.3g}" if isinstance(v, float) else f"{label}{v}"
            for key, label in NAME_KEYS.items()
            if (v := config.get(key)) is not None
        )
    return f"{sweep} #{number}" + (f": {what}" if what else "")


def overrides_of(point: dict[str, Any]) -> dict[str, Any]:
    """The config overrides in a Tune config (its dotted keys); other keys are sweep plumbing."""
    return {k: v for k, v in point.items() if "." in k}
