"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017).

While training task t, each backbone parameter accumulates the path integral
w_i += -g_i * delta_i over optimiser steps (g: the rank-averaged gradient of the total loss just
before the step, delta: the parameter change made by the step). At the task end the importance
grows by w_i / (Delta_i^2 + xi), Delta_i being the parameter's total change over the task; the
increment is clipped at 0, because with Adam a parameter can move against its gradient and a
negative importance would reward moving away from the anchor. Later tasks train with
CE + c * sum_i Omega_i (theta_i - theta~_i)^2, theta~ the backbone at the previous task end.
Defaults: c = 0.1 (the paper's split CIFAR value), xi = 1e-3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pah_core.checks import require
from pah_core.data import Task
from pah_core.search_space import loguniform

from .base import register
from .multihead import MultiHeadMethod, anchored_penalty


@dataclass
class SIOptions:
    # Zenke et al. 2017: c = 0.1 (their split CIFAR-10/100 value), damping xi = 1e-3.
    c: float = 0.1
    xi: float = 1e-3

    def check(self) -> None:
        require(self.c >= 0, "method.si.c", self.c, "a number >= 0")
        require(self.xi > 0, "method.si.xi", self.xi, "a number > 0")


@register
class SI(MultiHeadMethod):
    name = "si"
    label = "SI"
    summary = "Synaptic Intelligence: path-integral importance, quadratic penalty on the backbone"
    options = SIOptions
    # Zenke et al.'s c = 0.1 inside log 0.01..10; it acts from task 2.
    search_space = {
        **MultiHeadMethod.search_space,
        "method.si.c": loguniform(0.01, 10.0, acts_from=2),
    }
    name_keys = {"method.si.c": "c"}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.omega: dict[str, torch.Tensor] = {}  # importance Omega, >= 0
        self.anchor: dict[str, torch.Tensor] = {}  # backbone at the previous task end
        self.path: dict[str, torch.Tensor] = {}  # running w of the current task
        self._start: dict[str, torch.Tensor] = {}
        self._prev: dict[str, torch.Tensor] = {}
        self._grad: dict[str, torch.Tensor] = {}

    def on_begin_task(self, task: Task) -> None:
        params = self.shared_parameters()
        self.path = {n: torch.zeros_like(p) for n, p in params}
        self._start = {n: p.detach().clone() for n, p in params}

    def penalty(self) -> torch.Tensor:
        return self.cfg.method.si.c * anchored_penalty(
            self.shared_parameters(), self.omega, self.anchor
        )

    def task_loss(
        self, x: torch.Tensor, y: torch.Tensor, t: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, stats = super().task_loss(x, y, t)
        if self.omega:
            pen = self.penalty()
            stats["loss_si"] = pen.detach()
            loss = loss + pen
        return loss, stats

    def before_step(self, t: int) -> None:
        params = [(n, p) for n, p in self.shared_parameters() if p.grad is not None]
        self._grad = {n: p.grad.detach().clone() for n, p in params}
        self._prev = {n: p.detach().clone() for n, p in params}

    def after_step(self, t: int) -> None:
        for n, p in self.shared_parameters():
            if n in self._grad:
                self.path[n] -= self._grad[n] * (p.detach() - self._prev[n])
        self._grad, self._prev = {}, {}

    def end_task(self, task: Task) -> None:
        xi = self.cfg.method.si.xi
        for n, p in self.shared_parameters():
            delta = p.detach() - self._start[n]
            inc = (self.path[n] / (delta.pow(2) + xi)).clamp_min(0.0)
            self.omega[n] = self.omega[n] + inc if n in self.omega else inc
        self.anchor = {n: p.detach().clone() for n, p in self.shared_parameters()}
        self.path, self._start = {}, {}

    def extra_state(self) -> dict[str, Any]:
        return {"omega": self.omega, "anchor": self.anchor}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.omega = {n: v.to(self.device) for n, v in state.get("omega", {}).items()}
        self.anchor = {n: v.to(self.device) for n, v in state.get("anchor", {}).items()}
