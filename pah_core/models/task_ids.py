"""What every task-incremental network shares: the number of tasks it has heads for, and a clear
error for a task id outside them (an off-by-one in a caller, or a checkpoint of a longer stream)."""

from __future__ import annotations

from torch import nn


class TaskIndexed(nn.Module):
    n_tasks: int

    def check_task(self, t: int) -> None:
        if not 0 <= int(t) < self.n_tasks:
            raise IndexError(
                f"task id {t} is out of range: this model has tasks 0..{self.n_tasks - 1}"
            )
