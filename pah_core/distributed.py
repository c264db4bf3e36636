"""The few collective operations a method or the engine needs, behind one small object.

``LOCAL`` is the single-process default. When torch.distributed is initialised (a Ray Train worker
group, torchrun), ``from_torch_distributed()`` averages gradients and sums evaluation counts across
ranks. Methods call ``sync_grads`` between backward and step, which keeps them free to take several
optimiser steps per batch (PAH's prototype step) without DDP's one-backward-per-forward contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def sync_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Average .grad over ranks (a no-op in one process)."""
        if not self.enabled:
            return
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over ranks in place and return it."""
        if self.enabled:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Average floating buffers (BatchNorm running statistics) so every rank evaluates the same model."""
        if not self.enabled:
            return
        import torch.distributed as dist

        for b in module.buffers():
            if b.is_floating_point():
                dist.all_reduce(b, op=dist.ReduceOp.SUM)
                b.div_(self.world_size)

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()


LOCAL = Distributed()


def from_torch_distributed() -> Distributed:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size())
    return LOCAL
