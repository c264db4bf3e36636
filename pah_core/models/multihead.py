"""Task-incremental networks for the baselines: one shared backbone and one head per task.

``LinearHeadsNet`` keeps a ``Linear(D, C)`` per task (finetune, joint, LwF, EWC, SI, A-GEM);
``HyperHeadNet`` generates each task's C x D head from a learned task embedding (HNET, head-only).
Both expose the same small interface: ``features``, ``task_logits``, ``forward``, ``head_parameters``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .backbones import build_backbone
from .hypernet import HyperMLP
from .task_ids import TaskIndexed

if TYPE_CHECKING:  # types only: config loads the methods, which import this module
    from pah_core.config import ModelConfig


class TaskHeadNet(TaskIndexed):
    """A shared backbone; subclasses add the per-task heads."""

    def __init__(self, model: ModelConfig, n_tasks: int, classes_per_task: int):
        super().__init__()
        self.n_tasks = n_tasks
        self.classes_per_task = classes_per_task
        self.backbone = build_backbone(model)
        self.feature_dim = int(self.backbone.feature_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def task_logits(self, features: torch.Tensor, t: int) -> torch.Tensor:
        """(B, D) features -> (B, C) logits of task ``t``'s head."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        self.check_task(task_id)
        return self.task_logits(self.features(x), task_id)

    def head_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not the backbone's."""
        shared = {id(p) for p in self.backbone.parameters()}
        return [p for p in self.parameters() if id(p) not in shared]

    def param_counts(self) -> dict[str, int]:
        counts = {
            "backbone": sum(p.numel() for p in self.backbone.parameters()),
            "heads": sum(p.numel() for p in self.head_parameters()),
        }
        counts["total"] = counts["backbone"] + counts["heads"]
        return counts


class LinearHeadsNet(TaskHeadNet):
    """Backbone + ``nn.ModuleList`` of per-task ``Linear(D, C)`` heads."""

    def __init__(self, model: ModelConfig, n_tasks: int, classes_per_task: int):
        super().__init__(model, n_tasks, classes_per_task)
        self.heads = nn.ModuleList(
            nn.Linear(self.feature_dim, classes_per_task) for _ in range(n_tasks)
        )

    def task_logits(self, features: torch.Tensor, t: int) -> torch.Tensor:
        return self.heads[t](features)


class HyperHeadNet(TaskHeadNet):
    """Backbone + a hypernetwork that maps a free task embedding e_t to task t's C x D head (no bias).

    The embeddings are one ``nn.Parameter`` per task, so an old task's embedding gets no gradient
    (and no weight decay from AdamW) once its task is over.
    """

    def __init__(
        self,
        model: ModelConfig,
        n_tasks: int,
        classes_per_task: int,
        emb_dim: int,
    ):
        super().__init__(model, n_tasks, classes_per_task)
        # N(0, 1) task embeddings, as hypnettorch's default.
        self.embeddings = nn.ParameterList(
            nn.Parameter(torch.randn(emb_dim)) for _ in range(n_tasks)
        )
        self.hypernet = HyperMLP(
            emb_dim, classes_per_task * self.feature_dim, model.hyper_width, model.hyper_depth
        )

    def heads(self, tasks: list[int] | range, detach_embeddings: bool = False) -> torch.Tensor:
        """Generated heads of ``tasks``: (len(tasks), C, D), one hypernetwork pass."""
        for t in tasks:
            self.check_task(t)
        emb = torch.stack([self.embeddings[t] for t in tasks])
        if detach_embeddings:
            emb = emb.detach()
        return self.hypernet(emb).view(len(emb), self.classes_per_task, self.feature_dim)

    def task_logits(self, features: torch.Tensor, t: int) -> torch.Tensor:
        return features @ self.heads([t])[0].t()
