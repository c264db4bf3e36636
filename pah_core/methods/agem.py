"""Averaged GEM (Chaudhry et al. 2019), task-incremental.

An episodic memory of ``memory_size`` images (200 by default) is filled at each task end with
random training images of the finished task, balanced across the seen tasks (each of n tasks keeps
memory_size // n, the first memory_size % n tasks one more; older tasks drop samples to make room),
so it never exceeds its size. Per batch, after the usual backward, a reference gradient g_ref is
computed on a random memory batch (each sample through its own task's head) and, if g . g_ref < 0,
the update is projected: g <- g - (g . g_ref / g_ref . g_ref) g_ref, over all parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from pah_core.checks import require
from pah_core.data import Task

from .base import register
from .multihead import MultiHeadMethod


@dataclass
class AGEMOptions:
    # Chaudhry et al. 2019; 200 samples is the buffer of the PAH paper's replay rows (section 3.1).
    memory_size: int = 200
    # Memory samples per reference gradient (None: the training batch size).
    ref_batch_size: int | None = None

    def check(self) -> None:
        require(
            self.memory_size >= 1, "method.agem.memory_size", self.memory_size, "an integer >= 1"
        )
        if self.ref_batch_size is not None:
            require(
                self.ref_batch_size >= 1,
                "method.agem.ref_batch_size",
                self.ref_batch_size,
                "an integer >= 1, or null for the training batch size",
            )


def project(g: torch.Tensor, g_ref: torch.Tensor) -> torch.Tensor:
    """A-GEM's projection of the flat gradient ``g`` so that it does not oppose ``g_ref``."""
    dot = torch.dot(g, g_ref)
    if dot >= 0:
        return g
    return g - (dot / torch.dot(g_ref, g_ref).clamp_min(1e-12)) * g_ref


@register
class AGEM(MultiHeadMethod):
    name = "agem"
    label = "A-GEM"
    summary = (
        "A-GEM: project the gradient so it does not increase the loss on a small episodic memory"
    )
    options = AGEMOptions
    # The learning rates only (MultiHeadMethod's): the memory is a budget every compared method
    # should share, not a knob to tune, as Chaudhry et al. tuned the learning rate alone.

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        s = self.spec.image_size
        self.mem_x = torch.zeros(0, 3, s, s, dtype=torch.uint8)
        self.mem_y = torch.zeros(0, dtype=torch.long)
        self.mem_t = torch.zeros(0, dtype=torch.long)

    # -- memory ---------------------------------------------------------------------------------

    def end_task(self, task: Task) -> None:
        t, size = task.task_id, self.cfg.method.agem.memory_size
        n = t + 1
        quota = [size // n + (1 if j < size % n else 0) for j in range(n)]
        keep = [
            torch.nonzero(self.mem_t == j, as_tuple=True)[0][: quota[j]] for j in range(t)
        ]  # old samples are already in random order: keeping the first ones is a random subset
        new = torch.randperm(len(task.train))[: quota[t]]
        old = torch.cat([torch.zeros(0, dtype=torch.long), *keep])
        self.mem_x = torch.cat([self.mem_x[old], task.train.x[new]])
        self.mem_y = torch.cat([self.mem_y[old], task.train.y[new]])
        self.mem_t = torch.cat([self.mem_t[old], torch.full((len(new),), t, dtype=torch.long)])

    def memory_loss(self) -> torch.Tensor:
        """Cross-entropy of a random memory batch, each sample through its own task's head."""
        n = self.cfg.method.agem.ref_batch_size or self.cfg.optim.batch_size
        idx = torch.randperm(len(self.mem_y))[:n]
        feats = self.model.features(self.to_inputs(self.mem_x[idx]))
        y, tasks = self.mem_y[idx].to(self.device), self.mem_t[idx]
        total = torch.zeros((), device=self.device)
        for j in tasks.unique().tolist():
            rows = torch.nonzero(tasks == j, as_tuple=True)[0].to(self.device)
            logits = self.model.task_logits(feats[rows], j)
            total = total + F.cross_entropy(logits, y[rows], reduction="sum")
        return total / len(idx)

    # -- gradient projection --------------------------------------------------------------------

    def before_step(self, t: int) -> dict[str, float] | None:
        if len(self.mem_y) == 0:
            return None
        params = list(self.model.parameters())
        g = [p.grad for p in params]
        for p in params:
            p.grad = None
        with self.numerics.autocast():
            loss = self.memory_loss()
        loss.backward()
        self.dist.sync_grads(params)
        g_ref = [p.grad for p in params]

        def flat(grads: list[torch.Tensor | None]) -> torch.Tensor:
            return torch.cat(
                [
                    (gr if gr is not None else torch.zeros_like(p)).reshape(-1)
                    for gr, p in zip(grads, params, strict=True)
                ]
            )

        g_flat, ref_flat = flat(g), flat(g_ref)
        new = project(g_flat, ref_flat)
        offset = 0
        for p, gi, ri in zip(params, g, g_ref, strict=True):
            k = p.numel()
            p.grad = None if gi is None and ri is None else new[offset : offset + k].view_as(p)
            offset += k
        return {"agem_projected": (torch.dot(g_flat, ref_flat) < 0).float()}

    def extra_state(self) -> dict[str, Any]:
        return {"mem_x": self.mem_x, "mem_y": self.mem_y, "mem_t": self.mem_t}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "mem_y" in state:
            self.mem_x = state["mem_x"].cpu()
            self.mem_y = state["mem_y"].cpu()
            self.mem_t = state["mem_t"].cpu()
