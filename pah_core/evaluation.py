"""Evaluation at a task boundary: exact counts on every evaluated task's test images (and on the
validation splits), task-incremental and task-agnostic under every rule, from one backbone pass per
image.

A boundary evaluates its test splits and its validation splits under one model state: one
inference-mode context (no autograd bookkeeping), the run's numerics (``pah_core.numerics``: bf16
autocast, with the rules computed in fp32), the BatchNorm mode of ``schedule.eval_bn``, and the
seen tasks' prototype features computed once for both. Batches are those of ``schedule.eval_batch_size`` (the official protocol's shuffled ones under
``eval_bn=train``), so the counts are the ones a separate pass per split gives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from pah_core import task_inference
from pah_core.data import BatchLoader, Normalize, Split, TaskStream
from pah_core.distributed import Distributed
from pah_core.methods import Method
from pah_core.models import batchnorm_mode

if TYPE_CHECKING:  # types only, as everywhere below pah_core.config
    from pah_core.config import Config


class Evaluator:
    def __init__(
        self,
        cfg: Config,
        stream: TaskStream,
        method: Method,
        normalize: Normalize,
        dist: Distributed,
        rules: tuple[str, ...],
    ):
        self.cfg = cfg
        self.stream = stream
        self.method = method
        self.normalize = normalize
        self.dist = dist
        self.rules = rules
        self.has_prototypes = type(method).prototype_features is not Method.prototype_features

    def batches(self, j: int, after: int, split: str = "test") -> BatchLoader:
        """Task j's test (or validation) images as evaluated after task ``after``.

        ``eval_bn=eval``: running statistics, so batching cannot change a prediction; batches of
        ``eval_batch_size`` in the stream's content order. ``eval_bn=train`` (official protocol):
        batch statistics, so each prediction depends on its batch; as the official code, shuffled
        batches of ``optim.batch_size``, here from a generator seeded by (run.seed, after, j), so
        that the test file's class-sorted order never reaches a batch and every run is reproducible.
        """
        images = self.stream.split(j, split)
        batch_size = self.cfg.schedule.eval_batch_size
        if self.cfg.schedule.eval_bn == "train":
            g = torch.Generator().manual_seed(
                self.cfg.run.seed * 1_000_003 + after * 1_009 + j + 17
            )
            perm = torch.randperm(len(images), generator=g)
            images = Split(x=images.x[perm], y=images.y[perm])
            batch_size = self.cfg.optim.batch_size
        return BatchLoader(
            images,
            batch_size,
            self.normalize,
            self.method.device,
            shard=(self.dist.rank, self.dist.world_size),
            # Batch statistics need 2+ images per batch: a last batch of one joins the one before.
            merge_tail_below=2,
        )

    @contextlib.contextmanager
    def model_state(self, t: int) -> Iterator[torch.Tensor | None]:
        """The model as evaluated after task t: inference mode, the run's autocast, the BatchNorm
        statistics of ``schedule.eval_bn`` (evaluation batches never update the running
        statistics: ``batchnorm_mode`` restores them); yields the seen tasks' prototype features
        (None without prototypes, or before any task)."""
        bn = "batch" if self.cfg.schedule.eval_bn == "train" else "running"
        with (
            torch.inference_mode(),
            self.method.numerics.autocast(),
            batchnorm_mode(self.method.model, bn),
        ):
            protos = None
            if self.has_prototypes and t >= 0:
                protos = self.method.prototype_features(range(t + 1)).float()
            yield protos

    def task_counts(
        self, j: int, after: int, prototypes: torch.Tensor | None, split: str = "test"
    ) -> np.ndarray:
        """Exact counts on task j's ``split`` after task ``after``, summed over ranks with no padded
        duplicates: [task-IL correct, total, class-IL correct per rule..., task picked right per
        rule...]. Task-agnostic counts exist for seen tasks (j <= after) only; one backbone pass
        per image serves every head and rule. Call it inside ``model_state(after)``."""
        rules = self.rules
        counts = torch.zeros(2 + 2 * len(rules), dtype=torch.int64, device=self.method.device)
        for x, y in self.batches(j, after, split):
            counts[1] += y.numel()
            if j > after:  # a future task (eval_future): its own head only
                counts[0] += (self.method.predict(x, j).argmax(dim=-1) == y).sum()
                continue
            logits, features = self.method.all_heads(x, range(after + 1))
            logits = logits.float()  # the rules in fp32 whatever the forward's precision
            counts[0] += (logits[j].argmax(dim=-1) == y).sum()
            for r, rule in enumerate(rules):
                if rule == "nearest_prototype":
                    scores = task_inference.prototype_scores(features.float(), prototypes)
                else:
                    scores = task_inference.task_scores(logits, rule)
                task, cls = task_inference.predict(logits, scores)
                counts[2 + r] += (cls == j * logits.shape[-1] + y).sum()
                counts[2 + len(rules) + r] += (task == j).sum()
        self.dist.sum(counts)
        return counts.cpu().numpy()

    def seen(self, t: int, tasks: range | None = None, split: str = "test") -> np.ndarray:
        """Counts (tasks, 2 + 2 * rules) of every task in ``tasks`` (default 0..t) after task t,
        on the ``test`` splits or the ``val`` splits (what sweeps select on)."""
        with self.model_state(t) as protos:
            return self._stack(t, tasks or range(t + 1), protos, split)

    def boundary(self, t: int, tasks: range, val: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """After task t, under one model state: the test counts of ``tasks`` and, with ``val``,
        the validation counts of the seen tasks 0..t."""
        with self.model_state(t) as protos:
            test = self._stack(t, tasks, protos, "test")
            return test, self._stack(t, range(t + 1), protos, "val") if val else None

    def _stack(self, t: int, tasks: range, protos: torch.Tensor | None, split: str) -> np.ndarray:
        return np.stack([self.task_counts(j, t, protos, split) for j in tasks])
