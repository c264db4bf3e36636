"""Joint training, the upper bound: every step trains on the union of the tasks seen so far.

The engine iterates only the current task's batches, so Joint keeps the training splits of the
seen tasks (given by ``begin_task``) and, in each ``train_batch``, adds a batch of the same size
drawn uniformly with replacement from every earlier task. All images go through the backbone in one
pass (BatchNorm sees the union); each task's images go through their own head, and the loss is the
mean of the per-task cross-entropies, so every seen task weighs the same.

Notes: replayed images are not augmented (the engine augments only the current batch; the shipped
configs have ``data.augment: false``); a step on task t costs (t + 1) batches; the kept splits are
saved in checkpoints (uint8, ~15 MB per full CIFAR-100 task).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pah_core.data import Split, Task

from .base import register
from .multihead import MultiHeadMethod


@register
class Joint(MultiHeadMethod):
    name = "joint"
    label = "Joint"
    summary = "Upper bound: each batch plus a same-size batch from every earlier task, each through its head"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.seen: list[Split] = []  # training splits of tasks 0..t, uint8 on the CPU

    def on_begin_task(self, task: Task) -> None:
        t = task.task_id
        if len(self.seen) < t:
            raise RuntimeError(
                f"joint: task {t} begins but only {len(self.seen)} earlier training splits are kept; "
                "resume from the previous task's checkpoint"
            )
        self.seen = self.seen[:t] + [task.train]

    def sample_earlier(self, t: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n`` (normalised images, labels) drawn with replacement from each task 0..t-1."""
        out = []
        for j in range(t):
            split = self.seen[j]
            idx = torch.randint(len(split), (n,))
            out.append((self.to_inputs(split.x[idx]), split.y[idx].to(self.device)))
        return out

    def task_loss(
        self, x: torch.Tensor, y: torch.Tensor, t: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batches = [*self.sample_earlier(t, int(y.shape[0])), (x, y)]
        feats = self.model.features(torch.cat([b[0] for b in batches]))
        sizes = [int(b[1].shape[0]) for b in batches]
        ces = [
            F.cross_entropy(self.model.task_logits(f, j), yj)
            for j, (f, (_, yj)) in enumerate(zip(feats.split(sizes), batches, strict=True))
        ]
        loss = torch.stack(ces).mean()
        stats = {"loss_ce": ces[-1].detach()}
        if t > 0:
            stats["loss_replay"] = torch.stack(ces[:-1]).mean().detach()
        return loss, stats

    def extra_state(self) -> dict[str, Any]:
        return {"seen": [{"x": s.x, "y": s.y} for s in self.seen]}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.seen = [Split(s["x"].cpu(), s["y"].cpu()) for s in state.get("seen", [])]
