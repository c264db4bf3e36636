"""The one interface every continual-learning method implements.

The engine owns the loop, the data and the evaluation; a method owns its model(s), optimisers and
whatever it carries between tasks (teacher, Fisher, memory). Adding a method never touches the engine
or the config: its module defines its options and registers itself (``register``).
"""

from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from pah_core.data import StreamSpec, Task
from pah_core.distributed import LOCAL, Distributed
from pah_core.numerics import Numerics
from pah_core.search_space import Param

if TYPE_CHECKING:  # types only: config loads the methods, so they must not import it at run time
    from pah_core.config import Config


class Method(ABC):
    name: ClassVar[str]
    label: ClassVar[str] = ""  # its name in tables and figures (default: ``name``)
    summary: ClassVar[str]  # one line for `--list-methods`
    # The dataclass of the method's options, the config section ``method.<name>``, with a check()
    # that raises ConfigError; None: the method has no options and the config no section.
    options: ClassVar[type | None] = None
    # What a sweep may tune (``pah_core.search_space``; ``--method <name>``), dotted config keys. Its
    # published defaults are the config's defaults of these keys, evaluated as a search's first
    # trial. Empty: the method cannot be searched.
    search_space: ClassVar[dict[str, Param]] = {}
    # Searched keys a trial's run name shows, with their short labels (``#3: P10 W16``).
    name_keys: ClassVar[dict[str, str]] = {}
    # The searched keys' names in tables and figures, where the key's last part says too little
    # (``pah_core.methods.param_label``).
    labels: ClassVar[dict[str, str]] = {}
    # An ablation grid's named variants (name -> config overrides, each changing one thing; "full"
    # is the base) and those ``sweeps/ablation.py`` runs by default.
    ablation_variants: ClassVar[dict[str, dict[str, Any]]] = {}
    default_ablations: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, cfg: Config, spec: StreamSpec, device: torch.device, dist: Distributed = LOCAL
    ):
        self.cfg = cfg
        self.spec = spec
        self.device = device
        self.dist = dist
        # run.precision, run.channels_last, run.compile: a subclass prepares its model(s) with
        # it and computes its training losses under its autocast (the engine evaluates under it).
        self.numerics = Numerics.of(cfg.run, device)

    # The module evaluated by the engine and saved in checkpoints.
    model: nn.Module

    def adamw(self, params: Any, **kwargs: Any) -> torch.optim.AdamW:
        """AdamW with the run's weight decay; the fused kernel on CPU and CUDA, where it exists.

        One fused kernel instead of a dozen per-tensor ops: on 2 CPU threads a ResNet-18 step's
        update drops from ~21 ms to ~7 ms (a tenth of a fine-tune step); the arithmetic is AdamW's.
        """
        fused = self.device.type in ("cpu", "cuda")
        return torch.optim.AdamW(
            params, weight_decay=self.cfg.optim.weight_decay, fused=fused or None, **kwargs
        )

    @abstractmethod
    def begin_task(self, task: Task, normalize: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Called before task ``task.task_id`` trains; ``normalize`` maps uint8 images to model inputs."""

    @abstractmethod
    def train_batch(
        self, x: torch.Tensor, y: torch.Tensor, task_id: int
    ) -> dict[str, torch.Tensor]:
        """One optimisation step on a normalised batch; returns its scalar stats (losses) as
        detached 0-dim tensors on the device. No host sync here: the engine reads them once per
        logging interval (a ``float()`` per loss per step stalls a GPU every step)."""

    def end_task(self, task: Task) -> None:  # noqa: B027 - optional hook
        """Called after the last epoch of a task, before evaluation."""

    @abstractmethod
    def predict(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        """Logits over task ``task_id``'s C classes (task-incremental: the task id is given)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly after a task boundary (model, optimisers, method state)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def all_heads(self, x: torch.Tensor, tasks: range) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (K, B, C) of ``x`` under the head of every task in ``tasks`` (task-agnostic
        evaluation), and the images' (B, D) features when the method can compare them with
        prototypes (else None). Methods with a shared backbone override this to pass ``x``
        through it once; this default runs one forward per head."""
        return torch.stack([self.predict(x, t) for t in tasks]), None

    def prototype_features(self, tasks: range) -> torch.Tensor | None:
        """(K, C, D) backbone features of each task's class prototypes, for the nearest-prototype
        task inference; None for methods without prototypes."""
        return None

    def diagnostics(self, t: int) -> dict[str, list[float]]:
        """After task t: per-task quantities that explain the method's forgetting (one list
        entry per task 0..t), logged beside the accuracy matrix. None by default."""
        return {}

    def pictures(self) -> dict[str, Any]:
        """Tensors worth looking at (e.g. PAH's prototypes), rendered by the reporters."""
        return {}

    def param_counts(self) -> dict[str, int]:
        n = sum(p.numel() for p in self.model.parameters())
        return {"total": n}


def frozen_copy(model: nn.Module, numerics: Numerics) -> nn.Module:
    """The distillation teacher: a copy of ``model`` as it is now, without gradients, its
    BatchNorm in train mode like the student's forward, so student == teacher gives zero loss;
    laid out and compiled as the student (a deep copy drops a compiled forward)."""
    teacher = copy.deepcopy(model)
    teacher.requires_grad_(False)
    return numerics.prepare(teacher.train())


_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: the method's module registers it (name, summary, options) on import."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    opts = cls.options
    if opts is not None and not (
        dataclasses.is_dataclass(opts) and callable(getattr(opts, "check", None))
    ):
        raise TypeError(f"method {cls.name!r}: options must be a dataclass with a check() method")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Method]]:
    return dict(_REGISTRY)
