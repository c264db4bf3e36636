"""HNET (von Oswald, Henning, Sacramento & Grewe, ICLR 2020), **head-only variant**.

The original HNET generates all target-network weights; here, to share PAH's structure and
protocol, the hypernetwork (``pah_core.models.HyperMLP``, ``model.hyper_width`` / ``hyper_depth``)
generates only each task's C x D head from a free learned task embedding e_t (``emb_dim``, one
vector per task, no prototypes), and the backbone is shared and trained by plain cross-entropy, so it
is not protected. The loss on task t is
CE(x . h(e_t; theta)^T, y) + beta * mean_{j<t} ||h(e_j; theta*) - h(e_j; theta)||^2,
theta* the hypernetwork at the task start; the old targets h(e_j; theta*) are computed once per task
and the old embeddings are fixed (no gradient, no weight decay). The hypernetwork and embeddings use
``optim.lr_hypernet`` (as PAH's hypernetwork), the backbone ``optim.lr_backbone``. Default beta = 0.01.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pah_core.checks import require
from pah_core.data import Task
from pah_core.models import HyperHeadNet
from pah_core.search_space import loguniform

from .base import register
from .multihead import MultiHeadMethod


@dataclass
class HNETOptions:
    # von Oswald et al. 2020, head-only variant: beta_output = 0.01, task embedding dim 32.
    emb_dim: int = 32
    beta: float = 0.01

    def check(self) -> None:
        require(self.emb_dim >= 1, "method.hnet.emb_dim", self.emb_dim, "an integer >= 1")
        require(self.beta >= 0, "method.hnet.beta", self.beta, "a number >= 0")


@register
class HNET(MultiHeadMethod):
    name = "hnet"
    label = "HNET"
    summary = (
        "HNET (head-only): task embedding -> hypernetwork -> head, output regulariser on old heads"
    )
    options = HNETOptions
    # Its heads learn at optim.lr_hypernet (not lr_head); beta log 1e-3..1 around von Oswald et
    # al.'s 0.01, acting from task 2 (the output regulariser needs an old task).
    search_space = {
        "optim.lr_backbone": loguniform(1e-5, 1e-3),
        "optim.lr_hypernet": loguniform(1e-4, 1e-2),
        "method.hnet.beta": loguniform(1e-3, 1.0, acts_from=2),
    }
    name_keys = {"method.hnet.beta": "beta"}

    model: HyperHeadNet

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.targets: torch.Tensor | None = (
            None  # (t, C, D): old heads from theta*, fixed in task t
        )

    def build_model(self) -> HyperHeadNet:
        return HyperHeadNet(
            self.cfg.model,
            self.spec.n_tasks,
            self.spec.classes_per_task,
            self.cfg.method.hnet.emb_dim,
        )

    def param_groups(self) -> list[dict[str, Any]]:
        o = self.cfg.optim
        return [
            {"params": list(self.model.backbone.parameters()), "lr": o.lr_backbone},
            {"params": self.model.head_parameters(), "lr": o.lr_hypernet},
        ]

    def on_begin_task(self, task: Task) -> None:
        t = task.task_id
        self.targets = None
        if t > 0:
            with torch.no_grad():
                self.targets = self.model.heads(range(t)).detach().clone()

    def end_task(self, task: Task) -> None:
        self.targets = None

    def regulariser(self, t: int) -> torch.Tensor:
        if t == 0 or self.targets is None:
            return torch.zeros((), device=self.device)
        heads = self.model.heads(range(t), detach_embeddings=True)
        return (heads - self.targets).pow(2).flatten(1).sum(1).mean()

    def task_loss(
        self, x: torch.Tensor, y: torch.Tensor, t: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, stats = super().task_loss(x, y, t)
        beta = self.cfg.method.hnet.beta
        if t > 0 and beta > 0:
            reg = self.regulariser(t)
            stats["loss_hnet"] = reg.detach()
            loss = loss + beta * reg
        return loss, stats
