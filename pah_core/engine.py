"""The task loop: train each task, evaluate every seen task, checkpoint at task boundaries, report.

One readable loop. It knows nothing about which method runs or where results go: methods sit
behind ``Method`` and results leave through ``Reporter`` events.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pah_core import metrics
from pah_core.checkpoints import (
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    CheckpointError,
    config_differences,
    read_checkpoint,
    rng_state,
    set_rng_state,
    write_checkpoint,
)
from pah_core.config import Config
from pah_core.data import Augment, BatchLoader, Normalize, TaskStream
from pah_core.device import pick_device
from pah_core.distributed import LOCAL, Distributed
from pah_core.evaluation import Evaluator
from pah_core.losslog import LOG_EVERY, LossLog
from pah_core.methods import Method, build_method
from pah_core.reporters import Reporter, RunStopped, TaskEnd
from pah_core.run_state import RunState, listed
from pah_core.task_inference import LOGIT_RULES


class Engine:
    def __init__(
        self,
        cfg: Config,
        stream: TaskStream,
        reporters: list[Reporter] | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        dist: Distributed = LOCAL,
        method: Method | None = None,
        prune_checkpoints: bool = True,
    ):
        """``prune_checkpoints=False`` keeps every task's checkpoint folder for whoever owns them
        (Ray Train uploads each one and deletes the local copy when done)."""
        self.cfg = cfg
        self.prune_checkpoints = prune_checkpoints
        self.stream = stream
        self.reporters = list(reporters or [])
        self.checkpoint_dir = Path(checkpoint_dir).resolve() if checkpoint_dir else None
        self.dist = dist
        self.device = pick_device(cfg.run.device)
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        torch.manual_seed(cfg.run.seed)
        random.seed(cfg.run.seed)
        np.random.seed(cfg.run.seed)
        spec = stream.spec
        self.method = method or build_method(cfg, spec, self.device, dist)
        self.normalize = Normalize(
            spec.mean, spec.std, self.device, channels_last=cfg.run.channels_last
        )
        self.n_run = cfg.tasks_to_run
        has_prototypes = type(self.method).prototype_features is not Method.prototype_features
        rules = LOGIT_RULES + (("nearest_prototype",) if has_prototypes else ())
        if cfg.schedule.task_inference not in rules:
            raise ValueError(
                f"schedule.task_inference = {cfg.schedule.task_inference!r} needs prototypes, "
                f"which {cfg.method.name} has not: use one of {', '.join(rules)}"
            )
        self.state = RunState(n_tasks=len(stream), rules=rules)
        self.evaluator = Evaluator(cfg, stream, self.method, self.normalize, dist, rules)
        # Validation splits exist when data.val_fraction > 0; then every boundary evaluates them.
        # (task(0), not val_split(0): the stream keeps the task it built, which training starts with.)
        self.has_val = len(stream.task(0).val) > 0

    # -- events ---------------------------------------------------------------------------------

    def _emit(self, event: str, *args: Any) -> None:
        for r in self.reporters:
            getattr(r, event)(*args)

    # -- checkpoints ----------------------------------------------------------------------------

    def checkpoint_payload(self) -> dict[str, Any]:
        s = self.state
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.flat(),
            "method": self.cfg.method.name,
            "dataset_fingerprint": self.stream.spec.fingerprint,
            **s.payload(),
            "method_state": self.method.state_dict(),
            "rng": rng_state(),
        }

    def save_checkpoint(self, directory: Path) -> Path:
        return write_checkpoint(self.checkpoint_payload(), directory)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        p = Path(path)
        if p.is_dir():
            p = p / CHECKPOINT_FILE
        if not p.is_file():
            raise CheckpointError(
                f"no checkpoint at {p}: pass a task_NN folder written by a previous run, or its {CHECKPOINT_FILE}"
            )
        payload = read_checkpoint(p, self.device)
        diffs = config_differences(payload.get("config", {}), self.cfg.flat())
        if diffs:
            raise CheckpointError(
                f"checkpoint {p} was written by another config, so it cannot resume this run. "
                f"Differences: {'; '.join(diffs)}. Resume with the checkpoint's config, or start a new run."
            )
        if payload.get("dataset_fingerprint") != self.stream.spec.fingerprint:
            raise CheckpointError(
                f"checkpoint {p} was trained on other data (fingerprint {payload.get('dataset_fingerprint')} vs "
                f"{self.stream.spec.fingerprint} now): point data.root at the same dataset copy"
            )
        self.method.load_state_dict(payload["method_state"])
        self.state.restore(payload)
        set_rng_state(payload["rng"])

    def _write_task_checkpoint(self, t: int) -> Path | None:
        if self.checkpoint_dir is None or not self.cfg.run.checkpoint:
            return None
        target = self.checkpoint_dir / f"task_{t:02d}"
        if self.dist.is_main:
            self.save_checkpoint(target)
            # Keep only the newest boundary: a ResNet-18 checkpoint with AdamW state is ~130 MB.
            for old in self.checkpoint_dir.glob("task_*") if self.prune_checkpoints else ():
                if old != target and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
        self.dist.barrier()
        return target

    # -- the loop -------------------------------------------------------------------------------

    def results(self, wall_seconds: float, status: str) -> dict[str, Any]:
        s = self.state
        mat = s.matrix()
        out: dict[str, Any] = {
            "status": status,
            "method": self.cfg.method.name,
            "config": self.cfg.to_dict(),
            "dataset": self.stream.spec.dataset,
            "dataset_fingerprint": self.stream.spec.fingerprint,
            "tasks_completed": s.next_task,
            "n_tasks": len(self.stream),
            "accuracy_matrix": listed(mat),
            "correct": s.correct[: s.next_task].tolist(),
            "total": s.total[: s.next_task].tolist(),
            "wall_seconds": wall_seconds,
            "seconds_per_task": list(s.seconds_per_task),
            "eval_seconds_per_task": list(s.eval_seconds_per_task),
            "untrained_eval_seconds": s.untrained_eval_seconds,
            "train_images": s.train_images,
            "train_images_per_second": s.train_images / s.train_seconds
            if s.train_seconds
            else None,
            "param_counts": self.method.param_counts(),
            "diagnostics": list(s.diagnostics),
            "device": str(self.device),
        }
        if s.next_task:
            out.update(metrics.summary(mat))
            out.update(s.task_agnostic_metrics(self.cfg.schedule.task_inference))
            if self.has_val:
                out.update(s.val_metrics())
                out["val_accuracy_matrix"] = listed(s.val_matrix())
            out["class_il"] = s.class_il_results()
        if s.init_total:
            out["untrained_accuracy"] = s.untrained_accuracy()
            fwt = metrics.forward_transfer_if_measured(mat, out["untrained_accuracy"])
            if fwt is not None:
                out["forward_transfer"] = fwt
        if s.next_task:  # what MLflow logs and the tables read, by the same names
            out["final"] = metrics.final_metrics(mat, out, out.get("untrained_accuracy"))
        return out

    def _evaluate_untrained(self) -> None:
        """eval_future: every task's accuracy, through its own head, of the model as initialised
        (before any task began: PAH's prototypes are still random), the reference b of FWT.
        Evaluation draws from no global generator, so training is unchanged by it."""
        started = time.perf_counter()
        counts = self.evaluator.seen(-1, range(len(self.stream)))
        self.state.untrained_eval_seconds = time.perf_counter() - started
        self.state.init_correct = counts[:, 0].tolist()
        self.state.init_total = counts[:, 1].tolist()

    def run(self, resume_from: str | os.PathLike | None = None) -> dict[str, Any]:
        """Train from the state as it is: a fresh one, ``resume_from``'s checkpoint, or one that
        ``load_checkpoint`` restored before (how a sweep trial resumes)."""
        s = self.state
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        # The untrained model exists only before the first task: a restored state carries its
        # accuracies (evaluating now would measure the trained weights).
        if self.cfg.schedule.eval_future and s.next_task == 0 and not s.init_total:
            self._evaluate_untrained()
        self._wall_before = s.wall_seconds
        self._segment_start = time.perf_counter()
        self._emit("run_start", self.cfg, self.method.param_counts(), s.next_task)
        try:
            for t in range(s.next_task, self.n_run):
                self._train_task(t)
        except RunStopped:
            raise
        except BaseException as e:
            self._emit("run_failed", self.results(self.wall_seconds(), "failed"), e)
            raise
        summary = self.results(self.wall_seconds(), "finished")
        self._emit("run_end", summary)
        return summary

    def wall_seconds(self) -> float:
        """The run's wall clock so far: the segments before a resume (up to their last task
        boundary, as checkpointed) and this one."""
        return self._wall_before + time.perf_counter() - self._segment_start

    def _train_task(self, t: int) -> None:
        task_started = time.perf_counter()
        task = self.stream.task(t)
        self._emit("task_start", t, task)
        self.method.begin_task(task, self.normalize)
        epoch_stats = self._train_epochs(t, task)
        self._finish_task(t, task, task_started, epoch_stats)

    def _train_epochs(self, t: int, task) -> dict[str, Any]:
        """Task t's epochs; the last epoch's stats (mean losses, seconds, images per second)."""
        cfg, s = self.cfg, self.state
        d = cfg.data
        loader = BatchLoader(
            task.train,
            cfg.optim.batch_size,
            self.normalize,
            self.device,
            shuffle=True,
            augment=Augment(d.crop_padding, d.flip) if d.augment else None,
            seed=cfg.run.seed * 1_000 + t,
            shard=(self.dist.rank, self.dist.world_size),
            min_last_batch=2,
        )
        epoch_stats: dict[str, Any] = {}
        for epoch in range(cfg.schedule.epochs_per_task):
            loader.set_epoch(epoch)
            self._emit("epoch_start", t, epoch, len(loader))
            log = LossLog(self.method.name, t, epoch)
            images = 0
            epoch_started = time.perf_counter()
            for n_batches, (x, y) in enumerate(loader, start=1):
                log.add(self.method.train_batch(x, y, t))
                images += int(y.shape[0])
                # Losses reach the host once per interval (one sync), not once per loss per step.
                interval = log.read() if n_batches % LOG_EVERY == 0 else {}
                self._emit("batch_end", t, epoch, interval)
            epoch_stats = log.read_epoch()
            seconds = time.perf_counter() - epoch_started
            s.train_images += images
            s.train_seconds += seconds
            epoch_stats["seconds"] = seconds
            epoch_stats["images_per_second"] = images / seconds if seconds > 0 else 0.0
            self._emit("epoch_end", t, epoch, epoch_stats)
        return epoch_stats

    def evaluated_tasks(self, t: int) -> range:
        """The stream's tasks that the boundary after task t evaluates: the seen ones, and with
        eval_future every future one or the next one only (``schedule.eval_future_tasks``)."""
        s = self.cfg.schedule
        if not s.eval_future:
            return range(t + 1)
        n = len(self.stream)
        return range(n if s.eval_future_tasks == "all" else min(t + 2, n))

    def _finish_task(self, t: int, task, task_started: float, epoch_stats: dict) -> None:
        """After task t's training: evaluate, record, checkpoint, report the boundary."""
        cfg, s = self.cfg, self.state
        self.method.end_task(task)
        self.dist.sync_buffers(self.method.model)
        tasks = self.evaluated_tasks(t)
        upto = len(tasks)
        eval_started = time.perf_counter()
        # Test and validation splits under one model state (pah_core.evaluation).
        counts, val = self.evaluator.boundary(t, tasks, self.has_val)
        n_rules = len(s.rules)
        s.correct[t, :upto], s.total[t, :upto] = counts[:, 0], counts[:, 1]
        s.cil_correct[:, t, : t + 1] = counts[: t + 1, 2 : 2 + n_rules].T
        s.task_correct[:, t, : t + 1] = counts[: t + 1, 2 + n_rules :].T
        if val is not None:
            s.val_correct[t, : t + 1], s.val_total[t, : t + 1] = val[:, 0], val[:, 1]
            headline = 2 + s.rules.index(cfg.schedule.task_inference)
            s.val_cil_correct[t, : t + 1] = val[:, headline]
        eval_seconds = time.perf_counter() - eval_started
        s.eval_seconds_per_task.append(eval_seconds)
        losses = {k: v for k, v in epoch_stats.items() if k.startswith("loss")}
        s.diagnostics.append({"task": t, **self.method.diagnostics(t), "losses": losses})
        s.next_task = t + 1
        s.seconds_per_task.append(time.perf_counter() - task_started)
        s.wall_seconds = self.wall_seconds()  # what a checkpoint of this boundary carries
        ckpt_started = time.perf_counter()
        ckpt = self._write_task_checkpoint(t)
        ckpt_seconds = time.perf_counter() - ckpt_started
        mat = s.matrix()
        task_metrics = {
            "task": t,
            "avg_acc": metrics.average_accuracy(mat),
            "forgetting": metrics.forgetting(mat),
            "bwt": metrics.bwt(mat),
            **s.task_agnostic_metrics(cfg.schedule.task_inference),
            **s.val_metrics(),
            "seconds": s.seconds_per_task[-1],
            "checkpoint_seconds": ckpt_seconds,
            "eval_seconds": eval_seconds,
        }
        event = TaskEnd(
            t=t,
            matrix=mat,
            metrics=task_metrics,
            checkpoint_dir=ckpt,
            correct=s.correct[: t + 1].tolist(),
            total=s.total[: t + 1].tolist(),
            n_run=self.n_run,
            class_il_matrix=s.class_il_matrix(cfg.schedule.task_inference),
            task_inference=cfg.schedule.task_inference,
            untrained_accuracy=s.untrained_accuracy() or None,
            val_matrix=listed(s.val_matrix()) if self.has_val else None,
            val_class_il_matrix=listed(s.val_class_il_matrix()) if self.has_val else None,
        )
        # Before task_end: a scheduler may stop the trial right after task_end's Ray report.
        self._emit("task_diagnostics", t, list(s.diagnostics), self.method.pictures())
        self._emit("task_end", event)
