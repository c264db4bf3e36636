"""One sweep trial: a Tune function trainable that runs the PAH engine, in Tune's trial process or
inside a Ray Train TorchTrainer.

Two runners (``trial_runner``), the same engine and reports either way:

- ``tune``: a one-worker trial runs the ordinary ``Engine`` right in its Tune trial process
  (``trial_in_process``), reporting with ``ray.tune.report``. Ray Train would add six processes
  per trial (controller, worker, their helper actors), ~15 s on a small machine before any
  training; Tune restarts a dead trial from its last task checkpoint (``TRIAL_RETRIES``).
- ``train`` (more than one worker, or ``--ray-train always``): ``trial_driver`` is a light Tune
  trial that builds a ``TorchTrainer`` whose workers run ``train_fn_per_worker``. Gradients are
  averaged across workers by ``pah_core.distributed`` over the gloo/nccl process group that Ray
  Train sets up; training data is sharded per rank and evaluation counts are summed exactly; Ray
  Train restarts the worker group from the last task checkpoint when a worker dies.

Rank 0 also logs to MLflow (``MLflowReporter``), keyed by the trial, so that a replayed task is
logged once.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from pah_core.reporters import Reporter, RunStopped

# The objectives' names are imported from here by the sweeps and the tests that came before
# pah_sweep.objectives.
from .objectives import (  # noqa: F401
    OBJECTIVE_CHOICES,
    OBJECTIVES,
    Objective,
    mlflow_objectives,
    objective_metrics,
    selection_numbers,
    trial_objectives,
)

# A Tune trial's own process needs almost no CPU; asking for a whole core would idle one per trial.
DRIVER_CPUS = 0.01
# Restarts of a trial whose process dies (a killed process, a lost node), or of a Train trial's
# worker group: from the trial's last task checkpoint, whose MLflow rows are not logged twice. A
# diverged trial fails again on its retry (the same data, the same seed) and then for good.
TRIAL_RETRIES = 1
# Where a trial's engine runs (module docstring): the values recorded in pah_sweep.json.
TUNE, TRAIN = "tune", "train"
# What a trial writes (its checkpoints, its copies in --storage, MLflow artifacts) is owner-only,
# as the driver's files are (launch.SWEEP_UMASK): the processes of a joined cluster do not inherit
# the driver's umask.
PRIVATE_UMASK = 0o077


def trial_runner(workers: int, ray_train: str) -> str:
    """Where a trial's engine runs: Tune's trial process (one worker) or Ray Train's workers."""
    return TRAIN if workers > 1 or ray_train == "always" else TUNE


@dataclass
class TrialPlumbing:
    """What every trial needs besides its sampled config (all paths absolute)."""

    base_config: dict[str, Any]
    data_root: str
    storage_path: str
    mlflow_uri: str | None
    experiment: str
    parent_run_id: str | None
    sweep_name: str
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    tags: dict[str, str] = field(default_factory=dict)
    # Named groups of overrides (ablation variants); a trial's "variant" key picks one.
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    runner: str = TUNE  # trial_runner(): TUNE runs one worker in the trial's own process


class RayReporter(Reporter):
    """Reports each task boundary to Tune (through Ray Train under the ``train`` runner), with
    rank 0's checkpoint; ``send`` is the runner's."""

    def __init__(self, rank: int = 0):
        self.rank = rank
        self.n_run = 1
        self._last_boundary = time.perf_counter()

    def run_start(self, config, param_counts, first_task):
        self.n_run = config.tasks_to_run
        self._last_boundary = time.perf_counter()

    def task_end(self, e):
        now, m = time.perf_counter(), e.metrics
        report = {
            "tasks_done": e.t + 1,
            "avg_acc": m["avg_acc"],
            "forgetting": m["forgetting"],
            "bwt": m["bwt"],
            "cil_avg_acc": m["cil_avg_acc"],
            **{k: v for k, v in m.items() if k.startswith("val_")},
            "task_seconds": m["seconds"],
            # What the trial really spent on this task where the engine runs: training,
            # evaluation, checkpointing and the previous report; Tune's time_this_iter_s is taken
            # when the report arrives, and jitters with delivery.
            "worker_seconds": now - self._last_boundary,
            # Search sweeps select on the validation splits (plan.plan_sweep requires them); a
            # grid selects nothing, and without them its objectives are the test numbers.
            **trial_objectives(e),
        }
        self._last_boundary = now
        ckpt = e.checkpoint_dir if self.rank == 0 else None
        self.send(report, ckpt, e.t, last=e.last)

    def send(self, report: dict[str, Any], checkpoint_dir, t: int, last: bool) -> None:
        """Tune's own report (the ``tune`` runner): the checkpoint is copied to the trial's
        storage before it returns, and the local copy can go."""
        import shutil

        import ray.tune

        ckpt = (
            None
            if checkpoint_dir is None
            else ray.tune.Checkpoint.from_directory(str(checkpoint_dir))
        )
        try:
            ray.tune.report(report, checkpoint=ckpt)
        except SystemExit as stop:  # how Tune ends a trial it stopped (ASHA) while it reports
            raise RunStopped from stop
        if checkpoint_dir is not None:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)


class TrainReporter(RayReporter):
    """Ray Train's report (the ``train`` runner). Checkpoints upload in Ray's background thread
    (``ASYNC``) while the next task trains, and Ray deletes each local copy once it is stored: on
    cloud storage a ~130 MB upload per task would otherwise stall training. The last task's report
    is synchronous, so when the run returns every checkpoint is stored and the local folder can go.
    """

    def send(self, report, checkpoint_dir, t, last):
        import ray.train

        ckpt = (
            None
            if checkpoint_dir is None
            else ray.train.Checkpoint.from_directory(str(checkpoint_dir))
        )
        mode = ray.train.CheckpointUploadMode
        ray.train.report(
            report,
            checkpoint=ckpt,
            checkpoint_dir_name=f"task_{t:02d}",
            checkpoint_upload_mode=mode.SYNC if last else mode.ASYNC,
            delete_local_checkpoint_after_upload=True,
        )


def run_engine(loop: dict[str, Any], ray_reporter: RayReporter, device: str, checkpoint) -> None:
    """The engine of one trial (or one Train worker): from ``checkpoint`` (Ray's, or None), with
    ``ray_reporter`` and, on rank 0, MLflow."""
    import torch

    from pah_core.config import from_dict
    from pah_core.data import TaskStream, load_source
    from pah_core.distributed import from_torch_distributed
    from pah_core.engine import Engine

    torch.set_num_threads(max(1, round(loop["cpus_per_worker"])))
    cfg = from_dict(loop["config"], {"run.device": device, "run.progress": False})
    stream = TaskStream(load_source(cfg.data, loop["data_root"]), cfg.data, cfg.run.seed)
    reporters: list[Reporter] = [ray_reporter]
    if ray_reporter.rank == 0 and loop.get("mlflow_uri"):
        from pah_core.mlflow_reporter import MLflowReporter

        reporters.insert(
            0,
            MLflowReporter(
                loop["mlflow_uri"],
                loop["experiment"],
                run_name=loop["run_name"],
                run_key=f"{loop['sweep_name']}/{loop['trial_id']}",
                parent_run_id=loop["parent_run_id"],
                tags={
                    **loop["tags"],
                    "sweep": loop["sweep_name"],
                    "ray_trial_id": loop["trial_id"],
                    "dataset_fingerprint": stream.spec.fingerprint,
                },
                extra_metrics=mlflow_objectives,
            ),
        )
    with tempfile.TemporaryDirectory(prefix="pah-ckpt-") as local_ckpt:
        engine = Engine(
            cfg,
            stream,
            reporters,
            checkpoint_dir=local_ckpt,
            dist=from_torch_distributed(),
            prune_checkpoints=False,  # the reporter removes each local checkpoint once stored
        )
        if checkpoint is not None:  # a resumed sweep, or a restarted trial or worker group
            with checkpoint.as_directory() as d:
                engine.load_checkpoint(d)
        engine.run()


def train_fn_per_worker(loop: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    os.umask(PRIVATE_UMASK)
    rank = ray.train.get_context().get_world_rank()
    device = str(ray.train.torch.get_device())
    run_engine(loop, TrainReporter(rank), device, ray.train.get_checkpoint())


def trial_loop(config: dict[str, Any], plumbing: TrialPlumbing) -> dict[str, Any]:
    """What the engine of a trial needs, from Tune's sampled ``config`` (a bad point fails here,
    clearly); a plain dict, as Ray Train ships it to its workers."""
    import ray.tune

    from pah_core.config import from_dict

    from .names import PAPER_DEFAULTS_TAG, TRIAL_NUMBER, TRIAL_NUMBER_TAG, differences
    from .space import method_class, overrides_of, published_defaults, run_name

    os.umask(PRIVATE_UMASK)
    trial_id = ray.tune.get_context().get_trial_id()
    variant = config.get("variant")
    overrides = {**plumbing.variants.get(variant, {}), **overrides_of(config)}
    cfg = from_dict(plumbing.base_config, overrides)
    method = cfg.method.name
    labels = method_class(method).name_keys
    number = config.get(TRIAL_NUMBER)  # a search trial's (pah_sweep.tracked_search)
    defaults = None if number is None else published_defaults(method)
    search_tags = (
        {}
        if number is None
        else {
            TRIAL_NUMBER_TAG: str(number),
            PAPER_DEFAULTS_TAG: str(not differences(config, defaults)).lower(),
        }
    )
    return {
        "config": cfg.to_dict(),
        "data_root": plumbing.data_root,
        "mlflow_uri": plumbing.mlflow_uri,
        "experiment": plumbing.experiment,
        "parent_run_id": plumbing.parent_run_id,
        "sweep_name": plumbing.sweep_name,
        "trial_id": trial_id,
        "run_name": run_name(plumbing.sweep_name, trial_id, config, labels, defaults),
        "tags": {**plumbing.tags, **({"variant": variant} if variant else {}), **search_tags},
        "cpus_per_worker": plumbing.cpus_per_worker,
    }


def trial_in_process(config: dict[str, Any], plumbing: TrialPlumbing) -> None:
    """The Tune trainable of the ``tune`` runner: the engine runs here, in the trial's process,
    which holds the whole trial's resources (``trial_resources``)."""
    import ray
    import ray.tune

    loop = trial_loop(config, plumbing)
    device = "cuda" if ray.get_gpu_ids() else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES to its GPUs
    try:
        run_engine(loop, RayReporter(), device, ray.tune.get_checkpoint())
    except RunStopped:
        # Stopped as a Train trial's workers would be, mid-run: its MLflow run stays RUNNING
        # until the sweep's end closes it as stopped early (record.finish_parent_run).
        raise SystemExit(0) from None


def trial_driver(config: dict[str, Any], plumbing: TrialPlumbing) -> None:
    """The Tune trainable of the ``train`` runner: one TorchTrainer per trial, named by the trial
    id so a resumed sweep finds the trial's Train run (and its last task checkpoint) again."""
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    loop = trial_loop(config, plumbing)
    per_worker = {"CPU": plumbing.cpus_per_worker}
    if plumbing.gpus_per_worker:
        per_worker["GPU"] = plumbing.gpus_per_worker
    trainer = TorchTrainer(
        train_fn_per_worker,
        train_loop_config=loop,
        scaling_config=ray.train.ScalingConfig(
            num_workers=plumbing.workers,
            use_gpu=plumbing.gpus_per_worker > 0,
            resources_per_worker=per_worker,
        ),
        run_config=ray.train.RunConfig(
            name=f"train-{loop['trial_id']}",
            storage_path=plumbing.storage_path,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            # No controller retries (one after a worker-group start timeout keeps the old placement
            # group and deadlocks); a dead worker restarts the group from the last task checkpoint.
            failure_config=ray.train.FailureConfig(
                max_failures=TRIAL_RETRIES, controller_failure_limit=0
            ),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()


def trainable(plumbing: TrialPlumbing):
    """The Tune trainable of a sweep's trials, with the resources one trial holds: the same total
    either way (``pah_sweep.resources.check_resources`` counts it)."""
    from ray import tune

    if plumbing.runner == TRAIN:
        fn, resources = trial_driver, {"cpu": DRIVER_CPUS}
    else:
        resources = {"cpu": DRIVER_CPUS + plumbing.cpus_per_worker}
        if plumbing.gpus_per_worker:
            resources["gpu"] = plumbing.gpus_per_worker
        fn = trial_in_process
    return tune.with_resources(tune.with_parameters(fn, plumbing=plumbing), resources)
