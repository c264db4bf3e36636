"""Online EWC (Kirkpatrick et al. 2017; online form of Schwarz et al. 2018).

At each task end the diagonal (empirical) Fisher of the shared backbone is estimated on the task's
training images with their true labels: the squared gradient of the mean cross-entropy of a batch,
times the batch size, averaged over the images (as FACIL; eval-mode BatchNorm, so the estimate does
not move the running statistics). The running Fisher is F <- gamma * F + F_task and the anchor
theta* is the backbone at the task end. While training later tasks the loss is
CE + lambda_ewc / 2 * sum_i F_i (theta_i - theta*_i)^2. Heads are task-specific and receive no
gradient after their task, so only the backbone is regularised.
Defaults: lambda_ewc = 5000 (FACIL's EWC default), gamma = 1 (no decay).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from pah_core.checks import require
from pah_core.data import Task
from pah_core.search_space import loguniform

from .base import register
from .multihead import MultiHeadMethod, anchored_penalty


@dataclass
class EWCOptions:
    # Online EWC (Schwarz et al. 2018): penalty lambda/2 * sum F (theta - theta*)^2, with
    # F <- gamma * F + F_task after each task. lambda 5000 as FACIL's EWC default (Masana et al.
    # 2022); gamma 1.0 (no decay) is our choice: the sequence is only 10 tasks long.
    lambda_ewc: float = 5000.0
    gamma: float = 1.0
    # Images of the finished task used to estimate its diagonal Fisher (None: the whole training split).
    fisher_samples: int | None = None

    def check(self) -> None:
        require(self.lambda_ewc >= 0, "method.ewc.lambda_ewc", self.lambda_ewc, "a number >= 0")
        require(0 <= self.gamma <= 1, "method.ewc.gamma", self.gamma, "0 <= value <= 1")
        if self.fisher_samples is not None:
            require(
                self.fisher_samples >= 1,
                "method.ewc.fisher_samples",
                self.fisher_samples,
                "an integer >= 1, or null for the whole training split",
            )


@register
class EWC(MultiHeadMethod):
    name = "ewc"
    label = "EWC"
    summary = (
        "Online EWC: diagonal-Fisher quadratic penalty on the backbone, Fisher decayed by gamma"
    )
    options = EWCOptions
    # lambda on a log range, 10^2..10^5 around FACIL's 5000 (Masana et al. 2022); it acts from
    # task 2, when there is a Fisher to weigh the penalty.
    search_space = {
        **MultiHeadMethod.search_space,
        "method.ewc.lambda_ewc": loguniform(1e2, 1e5, acts_from=2),
    }
    name_keys = {"method.ewc.lambda_ewc": "lambda"}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def penalty(self) -> torch.Tensor:
        return (
            0.5
            * self.cfg.method.ewc.lambda_ewc
            * anchored_penalty(self.shared_parameters(), self.fisher, self.anchor)
        )

    def task_loss(
        self, x: torch.Tensor, y: torch.Tensor, t: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, stats = super().task_loss(x, y, t)
        if self.fisher:
            pen = self.penalty()
            stats["loss_ewc"] = pen.detach()
            loss = loss + pen
        return loss, stats

    def estimate_fisher(self, task: Task) -> dict[str, torch.Tensor]:
        split, t = task.train, task.task_id
        limit = self.cfg.method.ewc.fisher_samples
        idx = torch.randperm(len(split))[:limit] if limit else torch.arange(len(split))
        params = self.shared_parameters()
        fisher = {n: torch.zeros_like(p) for n, p in params}
        was_training = self.model.training
        self.model.eval()
        try:
            for chunk in idx.split(self.cfg.optim.batch_size):
                x, y = self.to_inputs(split.x[chunk]), split.y[chunk].to(self.device)
                loss = F.cross_entropy(self.model(x, t), y)
                grads = torch.autograd.grad(loss, [p for _, p in params])
                for (n, _), g in zip(params, grads, strict=True):
                    fisher[n] += g.detach().pow(2) * len(chunk)
        finally:
            self.model.train(was_training)
        return {n: f / len(idx) for n, f in fisher.items()}

    def end_task(self, task: Task) -> None:
        new = self.estimate_fisher(task)
        gamma = self.cfg.method.ewc.gamma
        self.fisher = {
            n: gamma * self.fisher[n] + f if n in self.fisher else f for n, f in new.items()
        }
        self.anchor = {n: p.detach().clone() for n, p in self.shared_parameters()}

    def extra_state(self) -> dict[str, Any]:
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.fisher = {n: v.to(self.device) for n, v in state.get("fisher", {}).items()}
        self.anchor = {n: v.to(self.device) for n, v in state.get("anchor", {}).items()}
