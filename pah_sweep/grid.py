"""Grid sweeps (ablation.py, baselines.py, reproduce.py): named variants (groups of config
overrides) x seeds, no searcher and no early stopping, every cell run to the end."""

from __future__ import annotations

from typing import Any

from .launch import Setup, execute, launch, run_config, trial_name
from .plan import plan_sweep
from .spec import SweepSpec


def run_grid(
    dataset: str,
    spec: SweepSpec,
    kind: str,
    variants: dict[str, dict[str, Any]],
    seeds: list[int],
    base_overrides: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    seeds_outer: bool = False,
    protocol_overrides: dict[str, Any] | None = None,
    objectives: str = "acc",
) -> int:
    """Cells start in grid order: every seed of the first variant, then the next variant; with
    ``seeds_outer``, every variant for the first seed, then the next seed, so that a grid cut short
    holds whole seeds. ``objectives``: a search's, for its final runs (``plan_sweep``)."""
    plan = plan_sweep(
        dataset,
        spec,
        num_samples=len(variants) * len(seeds),
        kind=kind,
        base_overrides=base_overrides,
        variants=variants,
        protocol_overrides=protocol_overrides,
        objectives=objectives,
    )
    setup = launch(plan, spec, tags)
    space = grid_space(list(variants), seeds, seeds_outer)
    return execute(setup, lambda trainable, s: grid_tuner(trainable, s, space), space)


def grid_space(variants: list[str], seeds: list[int], seeds_outer: bool = False) -> dict[str, Any]:
    """The param space of a variants x seeds grid (``trial_driver`` reads "variant" and "run.seed").

    Tune nests grid_search keys in the sorted order of their names, the first key varying fastest
    (``parse_spec_vars`` sorts them): "run.seed" < "variant", so a plain grid runs every seed of a
    variant before the next variant. For seeds outermost the seed grid goes under "wave", which
    sorts after "variant", and "run.seed" is read from it."""
    from ray import tune

    if not seeds_outer:
        return {"variant": tune.grid_search(variants), "run.seed": tune.grid_search(seeds)}
    return {
        "variant": tune.grid_search(variants),
        "wave": tune.grid_search(seeds),
        "run.seed": tune.sample_from(_seed_of_wave),
    }


def _seed_of_wave(spec) -> int:
    return spec.config.wave


def grid_tuner(trainable, s: Setup, param_space: dict[str, Any]):
    """A plain grid (no searcher, no early stopping): every cell runs to the end."""
    from ray import tune

    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            num_samples=1,
            max_concurrent_trials=s.max_concurrent,
            trial_name_creator=trial_name,
            reuse_actors=s.plan.reuse_actors,
            trial_dirname_creator=trial_name,
        ),
        run_config=run_config(s.plan),
    )
