"""A sweep planned: every check that needs neither the data nor Ray (the flags, the configs with
each variant and point, the MLflow store, the storage, the name, a --resume against what was
started), before anything is written."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pah_core.config import Config, load_config
from pah_core.locks import FolderLock
from pah_core.search_space import Param

from . import REPO
from .claim import check_sweep_dir
from .errors import SweepError
from .presets import PRESETS
from .record import SweepState, absolute_storage, check_name, check_tracking_uri_or_default
from .resources import check_concurrency_flags, check_ray_address
from .spec import SweepSpec
from .trial import TUNE, trial_runner


@dataclass(kw_only=True)
class Plan:
    """A sweep validated: what it runs and where it records it. Nothing is started or written yet."""

    name: str
    kind: str  # search, ablation, baselines
    dataset: str
    base: Config
    n_run: int  # tasks each trial runs
    num_samples: int
    storage: str
    sweep_dir: Path
    state: SweepState  # pah_sweep.json to be (or as) written, parent run id still unknown
    resume: bool
    variants: dict[str, dict[str, Any]]
    started: float
    verbose: bool = False  # Ray's own console output (status table, worker lines, its warnings)
    space: dict[str, Param] = field(
        default_factory=dict
    )  # a search's, as sampled (pah_sweep.space)
    lock: FolderLock | None = None  # the sweep's one-writer lock, once taken
    created_dir: bool = False  # this process created the sweep folder (clean-up may remove it)
    status_before: str | None = None  # a resumed sweep's parent status before this resume

    @property
    def mlflow_uri(self) -> str:
        return self.state.mlflow_uri

    @property
    def experiment(self) -> str:
        return self.state.experiment

    @property
    def objectives(self) -> list[str]:
        return self.state.objectives

    @property
    def runner(self) -> str:
        return self.state.trial_runner

    @property
    def reuse_actors(self) -> bool:
        """A ``tune`` trial's process serves the next trial (torch imported, data cached by the OS):
        Tune resets it rather than start another."""
        return self.runner == TUNE


def plan_sweep(
    dataset: str,
    spec: SweepSpec,
    *,
    num_samples: int,
    kind: str = "search",
    base_overrides: dict[str, Any] | None = None,
    variants: dict[str, dict[str, Any]] | None = None,
    points: list[dict[str, Any]] | None = None,
    protocol_overrides: dict[str, Any] | None = None,
    objectives: str = "acc",
) -> Plan:
    """Every check that needs neither the data nor Ray: the base config with each variant and
    point, the MLflow store, the storage, the name, and a --resume against what was started.

    ``objectives``: what the summary ranks the trials by (a search's --objectives, which its final
    sweep keeps; a grid's cells by task-IL accuracy)."""
    started = time.perf_counter()
    check_ray_address(spec.address)
    check_concurrency_flags(spec.concurrency, spec.workers_per_trial, spec.cpus_per_worker)
    base_path = Path(spec.config) if spec.config else REPO / "configs" / f"{dataset}_pah.yaml"
    # The HPO protocol's overrides (a search's first_task: one task per trial) win over --set.
    overrides = {**(base_overrides or {}), **spec.overrides, **(protocol_overrides or {})}
    base = base_config(
        base_path, {**PRESETS[dataset][spec.preset], **overrides}, kind, variants, points
    )
    storage = absolute_storage(spec.storage)
    if "://" not in storage and Path(storage).is_file():
        raise SweepError(f"--storage {storage} is a file: pass a folder (or an s3:// URI)")
    name = check_name(
        spec.name or f"pah-{dataset}-{kind}-{spec.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    state = SweepState(
        mlflow_uri=check_tracking_uri_or_default(spec.mlflow_uri),
        experiment=spec.experiment or f"pah-{dataset}",
        dataset=dataset,
        preset=spec.preset,
        objectives=objectives.split(","),
        kind=kind,
        overrides=overrides,
        config=spec.config or "",
        trial_runner=trial_runner(spec.workers_per_trial, spec.ray_train),
    )
    plan = Plan(
        name=name,
        kind=kind,
        dataset=dataset,
        base=base,
        n_run=base.tasks_to_run,
        num_samples=num_samples,
        storage=storage,
        sweep_dir=Path(storage) / name,
        state=state,
        resume=spec.resume,
        verbose=spec.verbose,
        variants=dict(variants or {}),
        started=started,
    )
    check_sweep_dir(plan)
    return plan


def base_config(
    path: Path,
    overrides: dict[str, Any],
    kind: str,
    variants: dict[str, dict[str, Any]] | None,
    points: list[dict[str, Any]] | None,
) -> Config:
    """The sweep's base config, checked with each variant and point on top (each trial's config
    is valid); a search needs validation splits."""
    base = load_config(path, overrides)
    if kind == "search" and base.data.val_fraction <= 0:
        raise SweepError(
            "a search selects on the validation splits, and data.val_fraction is 0: set it above "
            "0 (e.g. --set data.val_fraction=0.1), so that no trial is chosen on test data"
        )
    for extra in [*(variants or {}).values(), *(points or [])]:
        load_config(path, {**overrides, **extra})
    return base
