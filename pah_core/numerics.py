"""How a run computes (issue #28): bf16 autocast, the channels_last memory layout, a compiled backbone.

- ``run.precision=bf16``: the forward passes and losses of every training step, and evaluation, run
  under ``torch.autocast(<the run's device type>, torch.bfloat16)`` (CPU or CUDA, chosen when the
  run starts); weights, gradients and optimiser state stay fp32, backward runs outside autocast, and
  distillation losses and task-inference scores are computed in fp32 from the bf16 logits. Refused
  on a device without native bf16 (autocast would emulate it, slower than fp32).
- ``run.channels_last``: the model's convolution weights and the input images (``Normalize``) in
  channels_last layout, which oneDNN and cuDNN convolutions prefer.
- ``run.compile``: a ``torch.compile`` mode (null: none) for the backbone of every model the method runs (its
  teacher too), compiled in place (``nn.Module.compile``): parameter names, state dicts and
  checkpoints are those of the uncompiled model, and load into one. ``reduce-overhead`` (CUDA
  graphs) needs CUDA.

All off by default until ``benchmarks/numerics.py`` measures them (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:  # types only, as everywhere below pah_core.config
    from pah_core.config import RunConfig

# torch.compile's backend. Tests trace with "aot_eager" (dynamo and autograd's graphs, no C++ build).
COMPILE_BACKEND = "inductor"


class NumericsError(ValueError):
    """A numerics setting the run's device cannot do; the message says which and what to use."""


def bf16_supported(device: torch.device) -> bool:
    """Native bfloat16 on ``device``: CUDA's own answer; on a CPU, oneDNN's (AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(probe is not None and probe())
    return False


@dataclass(frozen=True)
class Numerics:
    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False
    compile: str | None = None

    @classmethod
    def of(cls, run: RunConfig, device: torch.device) -> Numerics:
        """The run's settings, checked against ``device``."""
        if run.precision == "bf16" and not bf16_supported(device):
            raise NumericsError(
                f"run.precision = 'bf16' but {device} has no native bfloat16 (a CPU needs "
                "AVX512-BF16 or AMX, a GPU compute capability 8.0+): use run.precision=fp32"
            )
        if run.compile == "reduce-overhead" and device.type != "cuda":
            raise NumericsError(
                f"run.compile = 'reduce-overhead' captures CUDA graphs, and this run is on {device}: "
                "use run.compile=default (or max-autotune), or null"
            )
        return cls(device, run.precision, run.channels_last, run.compile)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward passes' precision: bf16 autocast on the run's device, or nothing."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, model: nn.Module) -> nn.Module:
        """``model`` laid out and compiled as the run says, in place; returned for chaining. Call it
        again on a copy: a deep copy drops ``nn.Module.compile``'s compiled forward."""
        if self.channels_last:
            # The convolutions' 4-D weights; Module.to would also reach PAH's 5-D prototype table,
            # which has no channels_last layout.
            for m in model.modules():
                if isinstance(m, nn.Conv2d):
                    m.to(memory_format=torch.channels_last)
        if self.compile is not None:
            backbone = getattr(model, "backbone", None)
            if not isinstance(backbone, nn.Module):
                raise NumericsError(
                    f"run.compile = {self.compile!r} compiles a model's backbone, and "
                    f"{type(model).__name__} has none: use run.compile=null"
                )
            mode = None if self.compile == "default" else self.compile
            backbone.compile(mode=mode, backend=COMPILE_BACKEND)
        return model
