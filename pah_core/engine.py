"""The task loop: train each task, evaluate every seen task, checkpoint at task boundaries, report.

One readable loop. It knows nothing about which method runs or where results go: methods sit
behind ``Method`` and results leave through ``Reporter`` events.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pah_core import metrics, task_inference
from pah_core.config import Config
from pah_core.data import Augment, BatchLoader, Normalize, Split, TaskStream
from pah_core.distributed import LOCAL, Distributed
from pah_core.methods import Method, build_method
from pah_core.models import batchnorm_mode
from pah_core.reporters import Reporter
from pah_core.task_inference import LOGIT_RULES

CHECKPOINT_FILE = "state.pt"
# 2: tensors and plain Python data only, loaded with torch.load(weights_only=True), so a checkpoint
# from a shared folder or bucket cannot run code. 1 (before): pickled numpy state, refused.
CHECKPOINT_FORMAT = 2
# Config keys that may differ between a checkpoint and the run resuming it: they change where or
# how fast things run, never the numbers.
RESUME_FREE_KEYS = {
    "data.root",
    "data.download",
    "data.cache_dir",
    "run.device",
    # Pretrained weights only initialise a run; a resumed run takes every weight from its checkpoint.
    "model.pretrained_path",
    "run.threads",
    "run.checkpoint",
    "run.progress",
    "schedule.max_tasks",
    "schedule.eval_batch_size",
}


class CheckpointError(RuntimeError):
    pass


class DeviceError(ValueError):
    pass


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"run.device = {name!r} but CUDA is not available here: use run.device=auto or cpu"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(
            f"run.device = {name!r} but this machine has {torch.cuda.device_count()} GPU(s): "
            f"use cuda:0..cuda:{torch.cuda.device_count() - 1} or auto"
        )
    return dev


@dataclass
class RunState:
    """What the engine carries between tasks (and saves in checkpoints)."""

    n_tasks: int
    next_task: int = 0
    correct: np.ndarray = field(default=None)  # type: ignore[assignment]
    total: np.ndarray = field(default=None)  # type: ignore[assignment]
    seconds_per_task: list[float] = field(default_factory=list)
    train_images: int = 0
    train_seconds: float = 0.0
    # Per task: the method's diagnostics after it and its last epoch's mean losses.
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    # Task-agnostic counts per rule (rules x after x task): correct class among all seen classes,
    # and correct task picked. Totals are ``total``'s.
    rules: tuple[str, ...] = ()
    cil_correct: np.ndarray = field(default=None)  # type: ignore[assignment]
    task_correct: np.ndarray = field(default=None)  # type: ignore[assignment]
    # eval_future: the untrained model's counts on every task (the reference of forward transfer).
    init_correct: list[int] = field(default_factory=list)
    init_total: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.correct is None:
            self.correct = np.zeros((self.n_tasks, self.n_tasks), dtype=np.int64)
            self.total = np.zeros((self.n_tasks, self.n_tasks), dtype=np.int64)
        if self.cil_correct is None:
            shape = (len(self.rules), self.n_tasks, self.n_tasks)
            self.cil_correct = np.zeros(shape, dtype=np.int64)
            self.task_correct = np.zeros(shape, dtype=np.int64)

    def class_il_matrix(self, rule: str) -> np.ndarray:
        """The class-incremental accuracy matrix under ``rule``: rows 0..next_task-1, seen tasks."""
        k, r = self.next_task, self.rules.index(rule)
        seen = np.tril(self.total[:k])  # tasks not yet seen have no class-IL entry
        return metrics.accuracy_matrix(self.cil_correct[r, :k], seen)

    def task_inference_matrix(self, rule: str) -> np.ndarray:
        k, r = self.next_task, self.rules.index(rule)
        return metrics.accuracy_matrix(self.task_correct[r, :k], np.tril(self.total[:k]))

    def matrix(self) -> np.ndarray:
        """Rows 0..next_task-1 of the accuracy matrix (fractions; NaN above the diagonal unless
        eval_future filled it)."""
        k = self.next_task
        return metrics.accuracy_matrix(self.correct[:k], self.total[:k])


def _rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain data (what weights_only loading accepts)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    # The checkpoint is read onto the run's device; generator states must be CPU byte tensors.
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].cpu().numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([g.cpu() for g in state["cuda"]])


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = (set(saved) | set(current)) - RESUME_FREE_KEYS
    return [
        f"{k}: {saved.get(k)!r} (checkpoint) vs {current.get(k)!r} (now)"
        for k in sorted(keys)
        if saved.get(k) != current.get(k)
    ]


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint's payload, read without running code: tensors and plain data only."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch names what it blocked ("Trying to load unsupported GLOBAL posix.system ..."); torch's
        # own advice (weights_only=False) is exactly what must not be done here, so it is not shown.
        blocked = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln]
        if not blocked:
            raise CheckpointError(
                f"checkpoint {path} could not be read: not a torch checkpoint, or truncated"
            ) from e
        raise CheckpointError(
            f"checkpoint {path} refused: it holds objects other than tensors and plain data, which "
            "could run code when loaded (a tampered file, or one written before checkpoint format "
            f"{CHECKPOINT_FORMAT}). Load checkpoints written by this version of pah-platform only, "
            f"or start a new run. ({blocked[0][:200]})"
        ) from e
    except Exception as e:  # noqa: BLE001 - truncated, not a torch file, unreadable
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(e).__name__}: {str(e)[:300]})"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"checkpoint {path} is not a pah-platform checkpoint of format {CHECKPOINT_FORMAT} "
            f"(found {found!r}): start a new run, or resume with the version that wrote it"
        )
    return payload


# Training batches between two reads of the losses on the host (and two divergence checks).
LOG_EVERY = 25


def _listed(m: np.ndarray) -> list[list[float | None]]:
    """A matrix for JSON: floats, None where unknown."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in m]


class LossLog:
    """Sums each step's loss tensors on their device; ``read`` brings the interval's means to the
    host in one transfer and fails the run when one is not finite (a diverged run is found within
    ``LOG_EVERY`` steps, without a per-step ``isfinite`` sync)."""

    def __init__(self, method: str, task: int, epoch: int):
        self.where = (method, task, epoch)
        self.sums: dict[str, torch.Tensor] = {}
        self.epoch_sums: dict[str, float] = {}
        self.n = self.epoch_n = 0

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.detach().clone()
        self.n += 1

    def read(self) -> dict[str, float]:
        if not self.n:
            return {}
        keys = list(self.sums)
        values = torch.stack([self.sums[k].float() for k in keys]).tolist()  # the one sync
        bad = [(k, v) for k, v in zip(keys, values, strict=True) if not math.isfinite(v)]
        if bad:
            method, t, epoch = self.where
            shown = ", ".join(f"{k} {v}" for k, v in bad)
            raise FloatingPointError(
                f"{method} loss is not finite ({shown}) at task {t}, epoch {epoch + 1}: training "
                "diverged; lower the learning rates or the method's loss weights"
            )
        for k, v in zip(keys, values, strict=True):
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
        means = {k: v / self.n for k, v in zip(keys, values, strict=True)}
        self.epoch_n += self.n
        self.sums, self.n = {}, 0
        return means

    def read_epoch(self) -> dict[str, float]:
        """The epoch's mean of each stat (the steps not yet read included)."""
        self.read()
        return {k: v / max(self.epoch_n, 1) for k, v in self.epoch_sums.items()}


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
        self.normalize = Normalize(spec.mean, spec.std, self.device)
        self.n_run = cfg.tasks_to_run
        self.has_prototypes = type(self.method).prototype_features is not Method.prototype_features
        rules = LOGIT_RULES + (("nearest_prototype",) if self.has_prototypes else ())
        if cfg.schedule.task_inference not in rules:
            raise ValueError(
                f"schedule.task_inference = {cfg.schedule.task_inference!r} needs prototypes, "
                f"which {cfg.method.name} has not: use one of {', '.join(rules)}"
            )
        self.state = RunState(n_tasks=len(stream), rules=rules)

    # -- events ---------------------------------------------------------------------------------

    def _emit(self, event: str, *args: Any) -> None:
        for r in self.reporters:
            getattr(r, event)(*args)

    # -- evaluation -----------------------------------------------------------------------------

    def eval_batches(self, j: int, after: int) -> BatchLoader:
        """Task j's test images as evaluated after task ``after``.

        ``eval_bn=eval``: running statistics, so batching cannot change a prediction; batches of
        ``eval_batch_size`` in the stream's content order. ``eval_bn=train`` (official protocol):
        batch statistics, so each prediction depends on its batch; as the official code, shuffled
        batches of ``optim.batch_size``, here from a generator seeded by (run.seed, after, j), so
        that the test file's class-sorted order never reaches a batch and every run is reproducible.
        """
        split = self.stream.test_split(j)
        batch_size = self.cfg.schedule.eval_batch_size
        if self.cfg.schedule.eval_bn == "train":
            g = torch.Generator().manual_seed(
                self.cfg.run.seed * 1_000_003 + after * 1_009 + j + 17
            )
            perm = torch.randperm(len(split), generator=g)
            split = Split(x=split.x[perm], y=split.y[perm])
            batch_size = self.cfg.optim.batch_size
        return BatchLoader(
            split,
            batch_size,
            self.normalize,
            self.device,
            shard=(self.dist.rank, self.dist.world_size),
            # Batch statistics need 2+ images per batch: a last batch of one joins the one before.
            merge_tail_below=2,
        )

    @torch.no_grad()
    def evaluate_task(
        self, j: int, after: int | None = None, prototypes: torch.Tensor | None = None
    ) -> np.ndarray:
        """Exact counts on task j's test set after task ``after``, summed over ranks with no padded
        duplicates: [task-IL correct, total, class-IL correct per rule..., task picked right per
        rule...]. Task-agnostic counts exist for seen tasks (j <= after) only; one backbone pass
        per image serves every head and rule."""
        after = j if after is None else after
        rules = self.state.rules
        counts = torch.zeros(2 + 2 * len(rules), dtype=torch.int64, device=self.device)
        for x, y in self.eval_batches(j, after):
            counts[1] += y.numel()
            if j > after:  # a future task (eval_future): its own head only
                counts[0] += (self.method.predict(x, j).argmax(dim=-1) == y).sum()
                continue
            logits, features = self.method.all_heads(x, range(after + 1))
            counts[0] += (logits[j].argmax(dim=-1) == y).sum()
            for r, rule in enumerate(rules):
                if rule == "nearest_prototype":
                    scores = task_inference.prototype_scores(features, prototypes)
                else:
                    scores = task_inference.task_scores(logits, rule)
                task, cls = task_inference.predict(logits, scores)
                counts[2 + r] += (cls == j * logits.shape[-1] + y).sum()
                counts[2 + len(rules) + r] += (task == j).sum()
        self.dist.sum(counts)
        return counts.cpu().numpy()

    def evaluate_seen(self, t: int, tasks: range | None = None) -> np.ndarray:
        """Counts (tasks, 2 + 2 * rules) of every task in ``tasks`` (default 0..t) after task t."""
        model = self.method.model
        # "eval": running statistics (default); "train": batch statistics, as the official code.
        # Test batches never update the running statistics (batchnorm_mode restores them).
        bn = "batch" if self.cfg.schedule.eval_bn == "train" else "running"
        with batchnorm_mode(model, bn):
            seen = range(t + 1)
            protos = (
                self.method.prototype_features(seen) if self.has_prototypes and t >= 0 else None
            )
            return np.stack([self.evaluate_task(j, t, protos) for j in (tasks or range(t + 1))])

    # -- checkpoints ----------------------------------------------------------------------------

    def checkpoint_payload(self) -> dict[str, Any]:
        s = self.state
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.flat(),
            "method": self.cfg.method.name,
            "dataset_fingerprint": self.stream.spec.fingerprint,
            "next_task": s.next_task,
            "correct": torch.from_numpy(s.correct),
            "total": torch.from_numpy(s.total),
            "seconds_per_task": s.seconds_per_task,
            "train_images": s.train_images,
            "train_seconds": s.train_seconds,
            "diagnostics": s.diagnostics,
            "rules": list(s.rules),
            "cil_correct": torch.from_numpy(s.cil_correct),
            "task_correct": torch.from_numpy(s.task_correct),
            "init_correct": s.init_correct,
            "init_total": s.init_total,
            "method_state": self.method.state_dict(),
            "rng": _rng_state(),
        }

    def save_checkpoint(self, directory: Path) -> Path:
        # Owner-only: a checkpoint holds the whole model, which may come from private data.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = directory / f"{CHECKPOINT_FILE}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            torch.save(self.checkpoint_payload(), f)
        os.replace(tmp, directory / CHECKPOINT_FILE)
        return directory

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
        s = self.state
        s.next_task = int(payload["next_task"])
        s.correct, s.total = payload["correct"].cpu().numpy(), payload["total"].cpu().numpy()
        s.seconds_per_task = list(payload["seconds_per_task"])
        s.train_images, s.train_seconds = (
            int(payload["train_images"]),
            float(payload["train_seconds"]),
        )
        s.diagnostics = list(payload["diagnostics"])
        s.cil_correct = payload["cil_correct"].cpu().numpy()
        s.task_correct = payload["task_correct"].cpu().numpy()
        s.init_correct, s.init_total = list(payload["init_correct"]), list(payload["init_total"])
        _set_rng_state(payload["rng"])

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
            "accuracy_matrix": _listed(mat),
            "correct": s.correct[: s.next_task].tolist(),
            "total": s.total[: s.next_task].tolist(),
            "wall_seconds": wall_seconds,
            "seconds_per_task": list(s.seconds_per_task),
            "train_images_per_second": s.train_images / s.train_seconds
            if s.train_seconds
            else None,
            "param_counts": self.method.param_counts(),
            "diagnostics": list(s.diagnostics),
            "device": str(self.device),
        }
        if s.next_task:
            out.update(metrics.summary(mat))
            out.update(self.task_agnostic_metrics())
            out["class_il"] = {
                rule: {
                    "accuracy_matrix": _listed(s.class_il_matrix(rule)),
                    "task_inference_matrix": _listed(s.task_inference_matrix(rule)),
                    "cil_correct": s.cil_correct[r, : s.next_task].tolist(),
                    "task_correct": s.task_correct[r, : s.next_task].tolist(),
                }
                for r, rule in enumerate(s.rules)
            }
        if s.init_total:
            out["untrained_accuracy"] = [
                c / n for c, n in zip(s.init_correct, s.init_total, strict=True)
            ]
            if s.next_task == len(self.stream):  # the full T x T matrix exists
                out["forward_transfer"] = metrics.forward_transfer(mat, out["untrained_accuracy"])
        return out

    def task_agnostic_metrics(self) -> dict[str, float]:
        """After the last trained task: class-IL average accuracy and forgetting under the
        headline rule, and per rule the class-IL average accuracy and the task-inference accuracy
        (mean over seen tasks of how often the right task was picked)."""
        s = self.state
        out: dict[str, float] = {}
        for rule in s.rules:
            cil = s.class_il_matrix(rule)
            out[f"cil_avg_acc/{rule}"] = metrics.average_accuracy(cil)
            out[f"task_inference_acc/{rule}"] = metrics.average_accuracy(
                s.task_inference_matrix(rule)
            )
            if rule == self.cfg.schedule.task_inference:
                out["cil_avg_acc"] = out[f"cil_avg_acc/{rule}"]
                out["cil_forgetting"] = metrics.forgetting(cil)
                out["task_inference_acc"] = out[f"task_inference_acc/{rule}"]
        return out

    def _evaluate_untrained(self) -> None:
        """eval_future: every task's accuracy, through its own head, of the model as initialised
        (before any task began: PAH's prototypes are still random), the reference b of FWT.
        Evaluation draws from no global generator, so training is unchanged by it."""
        counts = self.evaluate_seen(-1, range(len(self.stream)))
        self.state.init_correct = counts[:, 0].tolist()
        self.state.init_total = counts[:, 1].tolist()

    def run(self, resume_from: str | os.PathLike | None = None) -> dict[str, Any]:
        s = self.state
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        elif self.cfg.schedule.eval_future:
            self._evaluate_untrained()
        started = time.perf_counter()
        self._emit("run_start", self.cfg, self.method.param_counts(), s.next_task)
        try:
            for t in range(s.next_task, self.n_run):
                self._train_task(t)
        except BaseException as e:
            self._emit("run_failed", self.results(time.perf_counter() - started, "failed"), e)
            raise
        summary = self.results(time.perf_counter() - started, "finished")
        self._emit("run_end", summary)
        return summary

    def _train_task(self, t: int) -> None:
        cfg, s = self.cfg, self.state
        task_started = time.perf_counter()
        task = self.stream.task(t)
        self._emit("task_start", t, task)
        self.method.begin_task(task, self.normalize)
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
        self.method.end_task(task)
        self.dist.sync_buffers(self.method.model)
        upto = len(self.stream) if cfg.schedule.eval_future else t + 1
        counts = self.evaluate_seen(t, range(upto))
        n_rules = len(s.rules)
        s.correct[t, :upto], s.total[t, :upto] = counts[:, 0], counts[:, 1]
        s.cil_correct[:, t, : t + 1] = counts[: t + 1, 2 : 2 + n_rules].T
        s.task_correct[:, t, : t + 1] = counts[: t + 1, 2 + n_rules :].T
        losses = {k: v for k, v in epoch_stats.items() if k.startswith("loss")}
        s.diagnostics.append({"task": t, **self.method.diagnostics(t), "losses": losses})
        s.next_task = t + 1
        s.seconds_per_task.append(time.perf_counter() - task_started)
        ckpt_started = time.perf_counter()
        ckpt = self._write_task_checkpoint(t)
        ckpt_seconds = time.perf_counter() - ckpt_started
        mat = s.matrix()
        task_metrics = {
            "task": t,
            "avg_acc": metrics.average_accuracy(mat),
            "forgetting": metrics.forgetting(mat),
            "bwt": metrics.bwt(mat),
            **self.task_agnostic_metrics(),
            "seconds": s.seconds_per_task[-1],
            "checkpoint_seconds": ckpt_seconds,
        }
        counts = {
            "correct": s.correct[: t + 1].tolist(),
            "total": s.total[: t + 1].tolist(),
            "n_run": self.n_run,
            # The headline rule's class-incremental matrix, for the reporters' heatmaps.
            "class_il_matrix": s.class_il_matrix(cfg.schedule.task_inference),
            "task_inference": cfg.schedule.task_inference,
            "untrained_accuracy": [c / n for c, n in zip(s.init_correct, s.init_total, strict=True)]
            or None,
        }
        # Before task_end: a scheduler may stop the trial right after task_end's Ray report.
        self._emit("task_diagnostics", t, list(s.diagnostics), self.method.pictures())
        self._emit("task_end", t, mat[t, : t + 1].tolist(), mat, ckpt, task_metrics, counts)
