"""The hypernetwork of PAH: an MLP from a task embedding to the flattened weight of a task head."""

from __future__ import annotations

import torch
from torch import nn


class HyperMLP(nn.Module):
    """Linear(in, H) -> LeakyReLU -> [Linear(H, H) -> LeakyReLU] * depth -> Linear(H, out).

    As the official ``FCBlock``: no biases, LeakyReLU(0.01) always, Kaiming-normal (fan_in, relu)
    init, and the last layer divided by 10 so the first generated heads are small.
    """

    def __init__(self, in_features: int, out_features: int, width: int, depth: int):
        super().__init__()
        dims = [in_features] + [width] * (depth + 1)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b, bias=False), nn.LeakyReLU(0.01)]
        layers.append(nn.Linear(width, out_features, bias=False))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in", nonlinearity="relu")
        with torch.no_grad():
            self.net[-1].weight.div_(10.0)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(e)
