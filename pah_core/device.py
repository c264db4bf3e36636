"""Which device a run trains on: ``run.device`` resolved, with a clear error for a GPU that is not
there."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    pass


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"run.device = {name!r} but CUDA is not available here: use run.device=auto or cpu"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(
            f"run.device = {name!r} but this machine has {torch.cuda.device_count()} GPU(s): "
            f"use cuda:0..cuda:{torch.cuda.device_count() - 1} or auto"
        )
    return dev
