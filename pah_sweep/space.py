"""What a search tunes: the chosen method's own space (``Method.search_space`` in its file under
``pah_core/methods/``), its published defaults (evaluated as the first trial, so every study holds
the method's literature configuration as its baseline), and a trial's run name.
"""

from __future__ import annotations

from typing import Any

from pah_core.search_space import Param, identifiable

from .errors import SweepError


def method_class(method: str):
    from pah_core.methods import registered_methods

    methods = registered_methods()
    if method not in methods:
        raise SweepError(f"--method {method!r}: not a registered method; one of {sorted(methods)}")
    return methods[method]


def method_space(method: str) -> dict[str, Param]:
    """The method's declared space; a method that declares none cannot be searched."""
    space = method_class(method).search_space
    if not space:
        raise SweepError(
            f"--method {method}: the method declares no search space (search_space in its file "
            "under pah_core/methods/): add one there, or run it with sweeps/baselines.py"
        )
    return dict(space)


def published_defaults(method: str, keys: list[str] | None = None) -> dict[str, Any]:
    """The config's defaults of the method's searched keys (its options dataclass's, the model's
    and the optimiser's): what the literature (or the official code) runs."""
    from pah_core.config import from_dict

    flat = from_dict({}, {"method.name": method}).flat()
    return {k: flat[k] for k in (keys if keys is not None else method_space(method))}


def searchable(
    method: str, tasks_trained: int, protocol: str
) -> tuple[dict[str, Param], dict[str, Any]]:
    """The part of ``method``'s space that trials training ``tasks_trained`` tasks can identify,
    and the parameters fixed at their defaults because they act only from a later task (a
    distillation weight under first_task: no trial would see its effect)."""
    space, inert = identifiable(method_space(method), tasks_trained)
    fixed = published_defaults(method, inert)
    if fixed:
        shown = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in fixed.items()
        )
        print(
            f"[sweep] --hpo-protocol {protocol}: trials train {tasks_trained} task(s), before "
            f"{', '.join(fixed)} act: not searched, fixed at the defaults ({shown})",
            flush=True,
        )
    if not space:
        raise SweepError(
            f"--hpo-protocol {protocol}: every parameter of {method}'s space acts only after the "
            f"task(s) a trial trains ({tasks_trained}): use end_of_training or first_k"
        )
    return space, fixed


def run_name(
    sweep: str,
    trial_id: str,
    config: dict[str, Any],
    labels: dict[str, str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> str:
    """A trial's MLflow run name: a search trial's number, id and what differs from its method's
    published defaults (pah_sweep.names; ``labels`` are the method's ``name_keys``), e.g.
    ``#3 0638a5f7: W201 sm0.04 +6 more``; a grid trial's sweep, number and variant, e.g.
    ``repro-cpu-main #7: lwf seed 1``."""
    from .names import TRIAL_NUMBER, search_trial_name

    labels = method_class("pah").name_keys if labels is None else labels
    if config.get(TRIAL_NUMBER) is not None:
        defaults = published_defaults("pah") if defaults is None else defaults
        return search_trial_name(config[TRIAL_NUMBER], trial_id, config, labels, defaults)
    tail = trial_id.rsplit("_", 1)[-1]
    number = str(int(tail)) if tail.isdigit() else trial_id
    if config.get("variant") is not None:
        seed = config.get("run.seed")
        what = f"{config['variant']}" + ("" if seed is None else f" seed {seed}")
    else:
        what = " ".join(
            f"{label}{v:.3g}" if isinstance(v, float) else f"{label}{v}"
            for key, label in labels.items()
            if (v := config.get(key)) is not None
        )
    return f"{sweep} #{number}" + (f": {what}" if what else "")


def overrides_of(point: dict[str, Any]) -> dict[str, Any]:
    """The config overrides in a Tune config (its dotted keys); other keys are sweep plumbing."""
    return {k: v for k, v in point.items() if "." in k}
