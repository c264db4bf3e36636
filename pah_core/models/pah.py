"""The PAH network: a shared backbone, per-class 2-D prototypes, and one hypernetwork that turns a
task's prototypes into that task's linear head (C x D, no bias)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone
from .hypernet import HyperMLP
from .task_ids import TaskIndexed

if TYPE_CHECKING:  # types only: config loads the methods, which import this module
    from pah_core.config import ModelConfig


class PAHNet(TaskIndexed):
    def __init__(self, cfg: ModelConfig, n_tasks: int, classes_per_task: int, image_size: int):
        super().__init__()
        if cfg.prototype_size > image_size:
            raise ValueError(
                f"model.prototype_size = {cfg.prototype_size} is larger than the {image_size}x{image_size} "
                f"images: choose at most {image_size}"
            )
        self.n_tasks = n_tasks
        self.classes_per_task = classes_per_task
        self.image_size = image_size
        self.proto_size = cfg.prototype_size
        self.proto_channels = cfg.prototype_channels
        self.proto_input = cfg.prototype_input
        self.backbone = build_backbone(cfg)
        self.feature_dim = int(self.backbone.feature_dim)
        s, ch, c = cfg.prototype_size, cfg.prototype_channels, classes_per_task
        # All tasks' prototypes in one table, as the official nn.Embedding(num_tasks, C*ch*s*s).
        # N(0.5, 0.1) is the random init; semantic init overwrites a task's rows when it begins.
        self.prototypes = nn.Parameter(torch.randn(n_tasks, c, ch, s, s) * 0.1 + 0.5)
        self.hypernet = HyperMLP(
            c * ch * s * s, c * self.feature_dim, cfg.hyper_width, cfg.hyper_depth
        )

    def heads(self, tasks: list[int] | range) -> torch.Tensor:
        """Generated head weights of ``tasks``: (len(tasks), C, D), one hypernetwork pass for all."""
        for t in tasks:
            self.check_task(t)
        idx = torch.as_tensor(list(tasks), dtype=torch.long, device=self.prototypes.device)
        emb = self.prototypes[idx].flatten(1)
        return self.hypernet(emb).view(len(idx), self.classes_per_task, self.feature_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    @staticmethod
    def apply_heads(features: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        """(B, D) features x (K, C, D) heads -> (K, B, C) logits."""
        return torch.einsum("bd,kcd->kbc", features, heads)

    def forward(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        return self.apply_heads(self.features(x), self.heads([task_id]))[0]

    def prototype_images(self, t: int) -> torch.Tensor:
        """Task t's prototypes as an image batch (C, 3, s, s), or resized to the input size."""
        self.check_task(t)
        p = self.prototypes[t]
        if self.proto_channels == 1:
            p = p.expand(-1, 3, -1, -1)
        if self.proto_input == "resize" and self.proto_size != self.image_size:
            p = F.interpolate(
                p, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        return p

    @torch.no_grad()
    def init_prototypes(self, t: int, images: torch.Tensor, mode: str) -> None:
        """Semantic init of task t from its held-out images, already normalised (C, 3, H, W)."""
        if mode == "random":
            return
        s = self.proto_size
        if mode == "semantic_crop":
            # The official code's hard-coded crops ([11:21] for s=10 on 32x32, ...) are this centre crop.
            top = (images.shape[-2] - s) // 2
            left = (images.shape[-1] - s) // 2
            patch = images[:, :, top : top + s, left : left + s]
        elif mode == "semantic_resize":
            patch = F.interpolate(
                images, size=(s, s), mode="bilinear", antialias=True, align_corners=False
            )
        else:
            raise ValueError(f"unknown prototype init {mode!r}")
        if self.proto_channels == 1:
            patch = patch.mean(dim=1, keepdim=True)  # RGB average, as the official code
        self.prototypes[t].copy_(patch.to(self.prototypes.dtype))

    def param_counts(self) -> dict[str, int]:
        def count(m: nn.Module | nn.Parameter) -> int:
            return (
                m.numel() if isinstance(m, nn.Parameter) else sum(p.numel() for p in m.parameters())
            )

        counts = {
            "backbone": count(self.backbone),
            "hypernet": count(self.hypernet),
            "prototypes": count(self.prototypes),
        }
        counts["total"] = sum(counts.values())
        return counts
