"""Fine-tuning with label smoothing: a method with one option, as a newcomer adds one (the test
tests/integration/test_new_method.py drops this file into pah_core/methods/)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pah_core.checks import require
from pah_core.search_space import uniform

from .base import register
from .multihead import MultiHeadMethod


@dataclass
class SmoothOptions:
    # Szegedy et al. 2016 smooth the targets by 0.1.
    smoothing: float = 0.1

    def check(self) -> None:
        require(
            0 <= self.smoothing < 1, "method.smooth.smoothing", self.smoothing, "0 <= value < 1"
        )


@register
class Smooth(MultiHeadMethod):
    name = "smooth"
    label = "Fine-tune (smoothed)"
    summary = "Fine-tuning with label-smoothed cross-entropy"
    options = SmoothOptions
    search_space = {**MultiHeadMethod.search_space, "method.smooth.smoothing": uniform(0.0, 0.3)}

    def task_loss(
        self, x: torch.Tensor, y: torch.Tensor, t: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ce = F.cross_entropy(self.model(x, t), y, label_smoothing=self.cfg.method.smooth.smoothing)
        return ce, {"loss_ce": ce.detach()}
