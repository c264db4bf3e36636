"""Training losses kept on the device and read on the host once per interval."""

from __future__ import annotations

import math

import torch

# Training batches between two reads of the losses on the host (and two divergence checks).
LOG_EVERY = 25


class LossLog:
    """Sums each step's loss tensors on their device; ``read`` brings the interval's means to the
    host in one transfer and fails the run when one is not finite (a diverged run is found within
    ``LOG_EVERY`` steps, without a per-step ``isfinite`` sync)."""

    def __init__(self, method: str, task: int, epoch: int):
        self.where = (method, task, epoch)
        self.sums: dict[str, torch.Tensor] = {}
        self.epoch_sums: dict[str, float] = {}
        self.n = self.epoch_n = 0

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.detach().clone()
        self.n += 1

    def read(self) -> dict[str, float]:
        if not self.n:
            return {}
        keys = list(self.sums)
        values = torch.stack([self.sums[k].float() for k in keys]).tolist()  # the one sync
        bad = [(k, v) for k, v in zip(keys, values, strict=True) if not math.isfinite(v)]
        if bad:
            method, t, epoch = self.where
            shown = ", ".join(f"{k} {v}" for k, v in bad)
            raise FloatingPointError(
                f"{method} loss is not finite ({shown}) at task {t}, epoch {epoch + 1}: training "
                "diverged; lower the learning rates or the method's loss weights"
            )
        for k, v in zip(keys, values, strict=True):
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
        means = {k: v / self.n for k, v in zip(keys, values, strict=True)}
        self.epoch_n += self.n
        self.sums, self.n = {}, 0
        return means

    def read_epoch(self) -> dict[str, float]:
        """The epoch's mean of each stat (the steps not yet read included)."""
        self.read()
        return {k: v / max(self.epoch_n, 1) for k, v in self.epoch_sums.items()}
