"""The hyperparameter search of any registered method (``--method``, PAH by default), shared by ``sweeps/cifar100_search.py`` and
``sweeps/tinyimagenet_search.py``:

    flags -> plan (validated) -> launch (data, Ray, resources, parent run) -> Tuner -> fit -> summary

Ray Tune + OptunaSearch (TPE; single- or multi-objective, study persisted in an Optuna RDB beside the
MLflow store) behind a ConcurrencyLimiter, ASHA with one milestone per task, one MLflow parent run
per sweep and one child run per trial. ``--resume`` continues an interrupted sweep.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pah_core.search_space import Param, first_task_all_act, to_tune
from pah_core.tracking import load_run_json

from .cli import common_arguments, load_points, search_arguments
from .errors import SweepError, exit_code
from .launch import Setup, execute, launch, optuna_storage_url, run_config, trial_name
from .plan import plan_sweep
from .presets import DEFAULT_SAMPLES, protocol_overrides, stream_tags
from .space import method_space, published_defaults, searchable
from .spec import SearchSpec, from_args
from .trial import OBJECTIVES


def parser(dataset: str) -> argparse.ArgumentParser:
    return search_arguments(
        common_arguments(
            argparse.ArgumentParser(
                prog=f"python sweeps/{dataset}_search.py",
                description=f"Hyperparameter search of a method (--method, default pah) on {dataset} (Ray Tune + Optuna + ASHA, MLflow tracking).",
            )
        )
    )


@dataclass(frozen=True)
class TunerSettings:
    seed: int  # the TPE sampler's
    grace_tasks: int  # ASHA's (check_grace)
    startup_trials: int  # TPE's random start-up trials


@dataclass
class SearchPlan:
    """A search checked before anything starts: the sweep's plan, the points evaluated first, the
    tuner's settings, the final runs' seeds and overrides, and the parent run's tags."""

    plan: Any
    points: list[dict[str, Any]]
    tuner: TunerSettings
    final_seeds: int
    final_overrides: dict[str, Any]
    tags: dict[str, str]


@dataclass(frozen=True)
class Selection:
    """A finished search's choice: the searched keys of its best trial, and where it came from
    (the final sweep's ``selected_*`` tags)."""

    config: dict[str, Any]
    provenance: dict[str, str]


def main(dataset: str, argv: list[str] | None = None) -> int:
    """The command line: flags -> a SearchSpec -> ``run``."""
    args = parser(dataset).parse_args(argv)
    return exit_code(lambda: run(dataset, from_args(SearchSpec, args)))


def run(dataset: str, spec: SearchSpec, selected: Selection | None = None) -> int:
    """The search, then its selection's final runs; given ``selected`` (a search that finished in
    another store, read from its export), only the final runs. A bad input: one line, exit 2."""
    return exit_code(lambda: _run(dataset, spec, selected))


def _run(dataset: str, spec: SearchSpec, selected: Selection | None) -> int:
    sp = plan_search(dataset, spec)
    rc = 0
    if selected is None:
        setup = launch(sp.plan, spec, sp.tags)
        rc = execute(setup, lambda trainable, s: optuna_tuner(trainable, s, sp.points, sp.tuner))
    if rc == 0 and sp.final_seeds:
        rc = run_final(dataset, spec, sp.plan, sp.final_seeds, sp.final_overrides, selected)
    return rc


def plan_search(dataset: str, spec: SearchSpec) -> SearchPlan:
    """Every check of a search (and of its final runs) that needs neither data nor Ray."""
    num_samples = DEFAULT_SAMPLES[spec.preset] if spec.num_samples is None else spec.num_samples
    trial_overrides, final_overrides = protocol_overrides(spec.hpo_protocol, spec.first_k)
    final_seeds = spec.final_seeds
    if final_seeds is None:
        final_seeds = 0 if spec.hpo_protocol == "end_of_training" else 3
    defaults = published_defaults(spec.method)
    extra = load_points(spec.points, method_space(spec.method)) if spec.points else []
    plan = plan_sweep(
        dataset,
        spec,
        num_samples=num_samples,
        objectives=spec.objectives,
        base_overrides=method_override(spec.method),
        points=[defaults, *({**defaults, **p} for p in extra)],
        protocol_overrides=trial_overrides,
    )
    if plan.base.method.name != spec.method:
        raise SweepError(
            f"--set method.name={plan.base.method.name} and --method {spec.method} disagree: "
            "name the method with --method only"
        )
    space, fixed = searchable(spec.method, plan.n_run, spec.hpo_protocol)
    pinned = sorted({k for p in extra for k in p} & set(fixed))
    if pinned:
        raise SweepError(
            f"--points set {pinned}, which --hpo-protocol {spec.hpo_protocol} does not search "
            "(they act only after the tasks a trial trains): drop them from the file"
        )
    plan.space = space
    tuner = TunerSettings(
        spec.seed, check_grace(spec.grace_tasks, space, plan.n_run), startup(spec, num_samples)
    )
    if final_seeds:  # the final sweep is checked too (config, name), before anything starts
        final_plan(dataset, spec, plan, final_seeds, final_overrides)
    if "forgetting" in plan.objectives and plan.n_run == 1:
        raise SweepError(
            f"--objectives {','.join(plan.objectives)}: with --hpo-protocol "
            f"{spec.hpo_protocol} a trial trains one task, whose forgetting is always 0: "
            "choose acc or cil_acc"
        )
    tags = {
        "hpo_protocol": spec.hpo_protocol,
        "method": spec.method,
        "asha_grace_tasks": str(tuner.grace_tasks),
        "tpe_startup_trials": str(tuner.startup_trials),
        "sampler_seed": str(spec.seed),
        **({"fixed_at_defaults": ",".join(fixed)} if fixed else {}),
        **streams(spec, plan)[0],
    }
    # The method's published defaults first, then the --points, each completed with them.
    points = [{k: p[k] for k in space} for p in [defaults, *({**defaults, **q} for q in extra)]]
    return SearchPlan(plan, points, tuner, final_seeds, final_overrides, tags)


def streams(spec: SearchSpec, plan) -> tuple[dict[str, str], dict[str, str]]:
    """The search's and the final sweep's stream tags (a transfer protocol's; else none)."""
    data = plan.base.data
    return stream_tags(spec.hpo_protocol, spec.first_k, plan.dataset, data.n_tasks, data.order_seed)


def startup(spec: SearchSpec, num_samples: int) -> int:
    """TPE's random start-up trials: fewer than the trials, so that the sampler models the rest."""
    n = spec.startup_trials or min(10, max(1, num_samples // 4))
    if n >= num_samples > 1:
        raise SweepError(
            f"--startup-trials {n}: with {num_samples} trials the sampler would never "
            f"model the results; use 1 to {num_samples - 1}"
        )
    return n


def method_override(method: str) -> dict[str, Any]:
    """The base-config override that picks ``method``: none for pah, the shipped configs' method,
    so that a sweep started before --method existed (its state records no method.name) resumes."""
    return {} if method == "pah" else {"method.name": method}


def check_grace(grace: int | None, space: dict[str, Param], n_run: int) -> int:
    """ASHA's grace: no trial stops before every searched parameter has acted (default: exactly
    then), and never more tasks than a trial runs."""
    needed = min(first_task_all_act(space), n_run)
    if grace is None:
        return needed
    if grace > n_run:
        raise SweepError(
            f"--grace-tasks {grace}: a trial runs {n_run} task(s), so use 1 to {n_run}"
        )
    if grace < needed:
        late = [k for k, p in space.items() if p.acts_from > grace]
        raise SweepError(
            f"--grace-tasks {grace}: {', '.join(late)} act only from task {needed}, so ASHA would "
            f"stop trials before seeing them: use {needed} or more (or leave it out)"
        )
    return grace


def final_spec(spec: SearchSpec, plan) -> SearchSpec:
    """The final sweep's spec: the search's, under the name ``<search>-final``; a resumed
    search resumes its final sweep too when that had started."""
    name = f"{plan.name}-final"
    started = (Path(plan.storage) / name).exists() if "://" not in plan.storage else False
    return replace(spec, name=name, resume=spec.resume and started)


def final_plan(dataset: str, spec: SearchSpec, plan, seeds: int, overrides: dict[str, Any]):
    """The final sweep planned exactly as ``run_final`` will run it (its overrides win over
    --set, as the trials' protocol overrides do): a bad config or a taken name fails now."""
    return plan_sweep(
        dataset,
        final_spec(spec, plan),
        num_samples=seeds,
        kind="final",
        base_overrides=method_override(spec.method),
        variants={"selected": {}},
        protocol_overrides=overrides,
        objectives=spec.objectives,
    )


def run_final(
    dataset: str,
    spec: SearchSpec,
    plan,
    seeds: int,
    overrides: dict[str, Any],
    selected: Selection | None = None,
) -> int:
    """Select, then evaluate: the search's best trial (chosen on the validation splits; read from
    its parent run unless ``selected`` is given) runs the whole stream (first_k: the tasks after
    the tuning ones, ``overrides``) with ``seeds`` fresh seeds, as the grid sweep
    ``<search>-final`` whose parent run says where its configuration came from."""
    from .grid import run_grid

    selected = selected or stored_selection(plan)
    best, provenance = selected.config, selected.provenance
    # Fresh seeds: past the trials' seed, so that no final run repeats a trial.
    first = plan.base.run.seed + 1
    print(f"\n[sweep] select, then evaluate: {plan.name}'s best trial on {seeds} fresh seed(s)")
    return run_grid(
        dataset,
        final_spec(spec, plan),
        "final",
        {"selected": best},
        list(range(first, first + seeds)),
        base_overrides=method_override(spec.method),
        protocol_overrides=overrides,
        tags={
            "selected_from": plan.name,
            "hpo_protocol": spec.hpo_protocol,
            **provenance,
            **streams(spec, plan)[1],
        },
        objectives=spec.objectives,
    )


def stored_selection(plan) -> Selection:
    """The search's choice as its parent run in the MLflow store records it."""
    from .record import best_config_of_sweep, sweep_parent_filter

    try:
        best = best_config_of_sweep(plan.mlflow_uri, plan.experiment, plan.name)
    except SweepError as e:
        raise SweepError(
            f"no final runs: search {plan.name} selected no trial (none finished every task): {e}"
        ) from None
    provenance = selection_provenance(
        plan.mlflow_uri, plan.experiment, sweep_parent_filter(plan.name)
    )
    return Selection(best, provenance)


def selection_provenance(mlflow_uri: str, experiment: str, parent_filter: str) -> dict[str, str]:
    """Which trial a search selected and its validation score, from its parent run."""
    from .record import mlflow_client

    client = mlflow_client(mlflow_uri)
    exp = client.get_experiment_by_name(experiment)
    (parent,) = client.search_runs([exp.experiment_id], filter_string=parent_filter, max_results=1)
    best = load_run_json(mlflow_uri, parent.info.run_id, "best_config.json")
    score = best.get("val_avg_acc")
    return {
        "selected_trial": str(best.get("trial")),
        "selected_on": parent.data.tags.get("selected_on", "validation"),
        "selected_val_avg_acc": "" if score is None else f"{score:.6f}",
    }


def optuna_tuner(trainable, s: Setup, points: list[dict[str, Any]], t: TunerSettings):
    """OptunaSearch (evaluating ``points`` first, then ``t.startup_trials`` random trials in all
    before TPE models the results) behind a ConcurrencyLimiter, and ASHA with one milestone per
    task."""
    import optuna
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from .tracked_search import RecordingASHA, TrackedOptunaSearch

    plan = s.plan
    url = optuna_storage_url(plan)
    try:  # the study's storage is opened (and created) here, after the checks: it is a write
        storage = optuna.storages.RDBStorage(url)
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's errors, whatever the database says
        first = (str(e).strip().splitlines() or [repr(e)])[0]
        raise SweepError(f"the Optuna storage {url} cannot be used: {first}") from e
    chosen = [OBJECTIVES[o] for o in plan.objectives]
    two = len(chosen) == 2
    searcher = TrackedOptunaSearch(
        sweep=plan.name,
        mlflow_uri=plan.mlflow_uri,
        experiment=plan.experiment,
        metric_names=[o.label for o in chosen],
        metric=[o.metric for o in chosen] if two else chosen[0].metric,
        mode=[o.mode for o in chosen] if two else chosen[0].mode,
        points_to_evaluate=points,
        sampler=optuna.samplers.TPESampler(seed=t.seed, n_startup_trials=t.startup_trials),
        storage=storage,
        study_name=plan.name,
    )
    scheduler = RecordingASHA(
        sweep=plan.name,
        time_attr="tasks_done",
        # ASHA stops on the first objective (forgetting is 1.0 until the end: no signal).
        metric=chosen[0].metric,
        mode=chosen[0].mode,
        max_t=plan.n_run,
        grace_period=t.grace_tasks,
        reduction_factor=2,
    )
    return tune.Tuner(
        trainable,
        param_space=to_tune(plan.space),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent),
            scheduler=scheduler,
            num_samples=plan.num_samples,
            trial_name_creator=trial_name,
            reuse_actors=plan.reuse_actors,
            trial_dirname_creator=trial_name,
        ),
        run_config=run_config(plan),
    )
