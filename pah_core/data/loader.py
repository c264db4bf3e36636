"""Batches from in-memory uint8 tensors: batched augmentation and normalisation, no per-image Python.

The uint8 images are moved to the device once per loader, so on a GPU the host copies nothing per step.
Shuffling and augmentation draw from a generator seeded by (seed, epoch), which makes every epoch
reproducible on its own and lets a resumed run continue exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .stream import Split


@dataclass(frozen=True)
class Augment:
    crop_padding: int = 4
    flip: bool = True


def random_crop(x: torch.Tensor, padding: int, g: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to the input size at a random offset per image (batched gather)."""
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=g).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=g).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]  # (n,1,h,1)
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]  # (n,1,1,w)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(x.shape[0], generator=g) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


class Normalize:
    """uint8 (N, 3, H, W) -> float32, (x / 255 - mean) / std, on the tensor's device; with
    ``channels_last`` in that memory layout (run.channels_last), converted in the same copy."""

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        channels_last: bool = False,
    ):
        self.channels_last = channels_last
        self.scale = (1.0 / (255.0 * torch.tensor(std, dtype=torch.float32, device=device))).view(
            1, -1, 1, 1
        )
        self.shift = (
            torch.tensor(mean, dtype=torch.float32, device=device)
            / torch.tensor(std, device=device)
        ).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.to(dtype=torch.float32, memory_format=torch.channels_last)
        else:
            x = x.float()
        return x.mul_(self.scale).sub_(self.shift)


class BatchLoader:
    """Iterates (images, labels) batches of one split.

    ``shard=(rank, world)``: training takes every world-th index of the shuffled order and drops the
    remainder, so all ranks run the same number of steps; evaluation (``shuffle=False``) takes a
    contiguous slice with no padding, so counts summed over ranks see every image exactly once.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        normalize: Normalize,
        device: torch.device,
        shuffle: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
        drop_last: bool = False,
        shard: tuple[int, int] = (0, 1),
        min_last_batch: int = 1,
        merge_tail_below: int = 0,
    ):
        self.x = split.x.to(device, non_blocking=True)
        self.y = split.y.to(device, non_blocking=True)
        self.batch_size = batch_size
        self.normalize = normalize
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.drop_last = drop_last
        self.rank, self.world = shard
        # Training passes 2: BatchNorm in train mode cannot normalise a last batch of one image.
        self.min_last_batch = min_last_batch
        # Evaluation must see every image: a last batch smaller than this joins the one before.
        self.merge_tail_below = merge_tail_below
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self, g: torch.Generator) -> torch.Tensor:
        n = int(self.y.shape[0])
        if self.shuffle:
            order = torch.randperm(n, generator=g)
            per_rank = n // self.world
            return order[self.rank :: self.world][:per_rank]
        lo = n * self.rank // self.world
        hi = n * (self.rank + 1) // self.world
        return torch.arange(lo, hi)

    def __len__(self) -> int:
        n = int(self.y.shape[0])
        n = (
            n // self.world
            if self.shuffle
            else (n * (self.rank + 1) // self.world - n * self.rank // self.world)
        )
        return len(self._starts(n))

    def _starts(self, n: int) -> list[int]:
        starts = list(range(0, self._stop(n), self.batch_size))
        if len(starts) > 1 and self._stop(n) - starts[-1] < self.merge_tail_below:
            starts.pop()
        return starts

    def _stop(self, n: int) -> int:
        tail = n % self.batch_size
        if self.drop_last or (tail and tail < self.min_last_batch):
            return n - tail
        return n

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        index = self._indices(g).to(self.x.device)
        stop = self._stop(len(index))
        starts = self._starts(len(index))
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else stop
            idx = index[start:end]
            x = self.x[idx]
            if self.augment is not None:
                x = random_crop(x, self.augment.crop_padding, g)
                if self.augment.flip:
                    x = random_flip(x, g)
            yield self.normalize(x), self.y[idx]
