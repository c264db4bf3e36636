"""Which statistics BatchNorm layers use for a stretch of code, without touching their running
statistics unless the caller trains on that data."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

from torch import nn

BNMode = Literal["running", "batch"]


@contextlib.contextmanager
def batchnorm_mode(module: nn.Module, mode: BNMode) -> Iterator[None]:
    """``running``: every BatchNorm normalises with its running statistics (eval mode).
    ``batch``: with the statistics of the batch at hand (train mode), and the running statistics
    stay as they are: evaluation batches and prototype batches are not training data, so they must
    not shift the statistics that a later ``running`` pass uses. Everything is restored on exit."""
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            tracked = None if m.num_batches_tracked is None else m.num_batches_tracked.clone()
            saved.append((m, m.training, m.momentum, tracked))
            m.train(mode == "batch")
            if mode == "batch":
                m.momentum = 0.0  # running <- (1 - 0) * running + 0 * batch: unchanged
    try:
        yield
    finally:
        for m, training, momentum, tracked in saved:
            m.train(training)
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
