"""Learning without Forgetting (Li & Hoiem 2017), task-incremental.

At each task start the current model is frozen as the teacher. Per batch of task t:
CE(head_t(x), y) + lambda_kd * KD, where KD is the temperature-T distillation (KL(teacher || student)
times T^2, mean over old tasks; ``pah_core.losses.distillation_kl``) of the teacher's old heads
on the current images. Defaults T = 2, lambda_kd = 1 (the paper's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pah_core.checks import require
from pah_core.data import Task
from pah_core.losses import distillation_kl
from pah_core.models import TaskHeadNet
from pah_core.search_space import loguniform, uniform

from .base import frozen_copy, register
from .multihead import MultiHeadMethod


@dataclass
class LwFOptions:
    # Li & Hoiem 2017: temperature 2 and loss weight 1 on the distillation of the old heads.
    temperature: float = 2.0
    lambda_kd: float = 1.0

    def check(self) -> None:
        require(self.temperature > 0, "method.lwf.temperature", self.temperature, "a number > 0")
        require(self.lambda_kd >= 0, "method.lwf.lambda_kd", self.lambda_kd, "a number >= 0")


@register
class LwF(MultiHeadMethod):
    name = "lwf"
    label = "LwF"
    summary = "Learning without Forgetting: distil the frozen previous model's old heads on current images"
    options = LwFOptions
    # Li & Hoiem's lambda 1 and T 2 inside: lambda a decade either way, T from 1 (no softening)
    # to 8 (PAH's temperature range). Both act from task 2.
    search_space = {
        **MultiHeadMethod.search_space,
        "method.lwf.lambda_kd": loguniform(0.1, 10.0, acts_from=2),
        "method.lwf.temperature": uniform(1.0, 8.0, acts_from=2),
    }
    name_keys = {"method.lwf.lambda_kd": "kd", "method.lwf.temperature": "T"}

    teacher: TaskHeadNet | None = None

    def on_begin_task(self, task: Task) -> None:
        self.teacher = None
        if task.task_id == 0:
            return
        self.teacher = frozen_copy(self.model, self.numerics)

    def end_task(self, task: Task) -> None:
        self.teacher = None  # rebuilt at the next task start; keeps checkpoints small

    def old_logits(self, net: TaskHeadNet, feats: torch.Tensor, t: int) -> torch.Tensor:
        """(t, B, C): the old heads 0..t-1 of ``net`` on the features."""
        return torch.stack([net.task_logits(feats, j) for j in range(t)])

    def task_loss(
        self, x: torch.Tensor, y: torch.Tensor, t: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = self.model.features(x)
        ce = F.cross_entropy(self.model.task_logits(feats, t), y)
        stats = {"loss_ce": ce.detach()}
        if t == 0 or self.cfg.method.lwf.lambda_kd == 0:
            return ce, stats
        assert self.teacher is not None
        with torch.no_grad():
            target = self.old_logits(self.teacher, self.teacher.features(x), t)
        p = self.cfg.method.lwf
        kd = distillation_kl(self.old_logits(self.model, feats, t), target, p.temperature)
        stats["loss_kd"] = kd.detach()
        return ce + p.lambda_kd * kd, stats
