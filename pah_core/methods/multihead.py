"""The common base of the baselines: a multi-head network trained with AdamW, one step per batch.

A subclass changes only what differs: ``task_loss`` (the objective), ``on_begin_task`` /
``end_task`` (what it carries between tasks), ``before_step`` / ``after_step`` (gradient surgery,
path integrals) and ``extra_state`` / ``load_extra_state`` (what a checkpoint must keep).
The optimiser protocol is PAH's: AdamW, ``optim.lr_backbone`` for the backbone, ``optim.lr_head``
for the heads, ``optim.weight_decay``; gradients are averaged over ranks between backward and step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from pah_core.data import StreamSpec, Task
from pah_core.distributed import LOCAL, Distributed
from pah_core.models import LinearHeadsNet, TaskHeadNet
from pah_core.search_space import loguniform

from .base import Method

if TYPE_CHECKING:  # types only: config loads the methods, so they must not import it at run time
    from pah_core.config import Config


def anchored_penalty(
    params: list[tuple[str, nn.Parameter]],
    importance: dict[str, torch.Tensor],
    anchor: dict[str, torch.Tensor],
) -> torch.Tensor:
    """sum_i importance_i * (theta_i - anchor_i)^2 over the parameters that have an importance:
    EWC's Fisher and SI's omega weigh the same quadratic pull towards the last task's weights."""
    total = torch.zeros((), device=params[0][1].device if params else None)
    for n, p in params:
        if n in importance:
            total = total + (importance[n] * (p - anchor[n]).pow(2)).sum()
    return total


class MultiHeadMethod(Method):
    """Shared backbone + one head per task; plain cross-entropy on the current task by default."""

    model: TaskHeadNet
    # The learning rates, on PAH's ranges (log 1e-5..1e-3 backbone, 1e-4..1e-2 heads), so that a
    # baseline is tuned over what PAH is; a subclass adds its own options.
    search_space = {
        "optim.lr_backbone": loguniform(1e-5, 1e-3),
        "optim.lr_head": loguniform(1e-4, 1e-2),
    }

    def __init__(
        self, cfg: Config, spec: StreamSpec, device: torch.device, dist: Distributed = LOCAL
    ):
        super().__init__(cfg, spec, device, dist)
        self.model = self.numerics.prepare(self.build_model().to(device))
        self.opt = self.adamw(self.param_groups())
        self.normalize: Callable[[torch.Tensor], torch.Tensor] | None = None

    # -- construction (overridable) --------------------------------------------------------------

    def build_model(self) -> TaskHeadNet:
        return LinearHeadsNet(self.cfg.model, self.spec.n_tasks, self.spec.classes_per_task)

    def param_groups(self) -> list[dict[str, Any]]:
        o = self.cfg.optim
        return [
            {"params": list(self.model.backbone.parameters()), "lr": o.lr_backbone},
            {"params": self.model.head_parameters(), "lr": o.lr_head},
        ]

    # -- task boundaries ------------------------------------------------------------------------

    def begin_task(self, task: Task, normalize: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.model.check_task(task.task_id)
        self.normalize = normalize
        self.model.train()
        self.on_begin_task(task)

    def on_begin_task(self, task: Task) -> None:  # noqa: B027 - optional hook
        """Method-specific setup at a task start (teacher, anchors, targets)."""

    # -- one batch ------------------------------------------------------------------------------

    def task_loss(
        self, x: torch.Tensor, y: torch.Tensor, t: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ce = F.cross_entropy(self.model(x, t), y)
        return ce, {"loss_ce": ce.detach()}

    def before_step(self, t: int) -> dict[str, torch.Tensor] | None:
        """Called with the (rank-averaged) gradients in .grad, before the optimiser step; may
        change them and return extra stats."""
        return None

    def after_step(self, t: int) -> None:  # noqa: B027 - optional hook
        """Called after the optimiser step."""

    def train_batch(
        self, x: torch.Tensor, y: torch.Tensor, task_id: int
    ) -> dict[str, torch.Tensor]:
        t = task_id
        self.opt.zero_grad(set_to_none=True)
        with self.numerics.autocast():  # the forward passes and the loss; backward outside
            loss, stats = self.task_loss(x, y, t)
        loss.backward()
        self.dist.sync_grads(self.model.parameters())
        stats.update(self.before_step(t) or {})
        self.opt.step()
        self.after_step(t)
        stats["loss"] = loss.detach()
        return stats

    # -- helpers for subclasses -----------------------------------------------------------------

    def shared_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The backbone's named parameters: what the regularisation baselines protect."""
        return [(f"backbone.{n}", p) for n, p in self.model.backbone.named_parameters()]

    def to_inputs(self, images: torch.Tensor) -> torch.Tensor:
        """Stored uint8 images -> normalised model inputs on the device."""
        if self.normalize is None:
            raise RuntimeError(f"{self.name}: begin_task must run before stored images are used")
        return self.normalize(images.to(self.device))

    # -- inference and state --------------------------------------------------------------------

    def predict(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        return self.model(x, task_id)

    def all_heads(self, x: torch.Tensor, tasks: range) -> tuple[torch.Tensor, None]:
        features = self.model.features(x)  # one backbone pass for every head
        return torch.stack([self.model.task_logits(features, t) for t in tasks]), None

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.load_extra_state(state.get("extra", {}))

    def param_counts(self) -> dict[str, int]:
        return self.model.param_counts()
