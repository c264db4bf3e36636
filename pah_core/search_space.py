"""Search spaces as data: what a method declares it may be tuned over (``Method.search_space``).

A space maps dotted config keys to ``Param``s. Each parameter knows the first task whose training it
changes (``acts_from``): a distillation weight or a penalty acts only from task 2, when there is an
old task to distil or protect. A search whose trials train fewer tasks cannot identify it
(``identifiable``), and ASHA must not stop a trial before every searched parameter acted
(``first_task_all_act``).

No Ray here: ``to_tune`` converts to Ray Tune's distributions when a sweep asks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["choice", "uniform", "loguniform", "int", "logint"]


@dataclass(frozen=True)
class Param:
    kind: Kind
    low: float = 0.0
    high: float = 0.0  # inclusive for "int" and "logint"
    values: tuple[Any, ...] = ()
    acts_from: int = 1  # the first task (from 1) whose training this value changes

    def to_tune(self) -> Any:
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.values))
        if self.kind == "uniform":
            return tune.uniform(self.low, self.high)
        if self.kind == "loguniform":
            return tune.loguniform(self.low, self.high)
        if self.kind == "int":
            return tune.randint(int(self.low), int(self.high) + 1)
        return tune.lograndint(int(self.low), int(self.high) + 1)

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.values
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind in ("int", "logint") and value != int(value):
            return False
        return math.isfinite(value) and self.low <= value <= self.high

    def describe(self) -> str:
        """How the parameter is drawn, e.g. ``log 0.01..10`` (for the parent run and messages)."""
        if self.kind == "choice":
            text = "{" + ", ".join(str(v) for v in self.values) + "}"
        else:
            prefix = {"uniform": "", "loguniform": "log ", "int": "int ", "logint": "log-int "}
            text = f"{prefix[self.kind]}{self.low:g}..{self.high:g}"
        return text + (f" (acts from task {self.acts_from})" if self.acts_from > 1 else "")


def choice(*values: Any, acts_from: int = 1) -> Param:
    return Param("choice", values=tuple(values), acts_from=acts_from)


def uniform(low: float, high: float, acts_from: int = 1) -> Param:
    return Param("uniform", low, high, acts_from=acts_from)


def loguniform(low: float, high: float, acts_from: int = 1) -> Param:
    return Param("loguniform", low, high, acts_from=acts_from)


def integer(low: int, high: int, log: bool = False, acts_from: int = 1) -> Param:
    return Param("logint" if log else "int", low, high, acts_from=acts_from)


def to_tune(space: dict[str, Param]) -> dict[str, Any]:
    return {key: p.to_tune() for key, p in space.items()}


def identifiable(space: dict[str, Param], tasks_trained: int) -> tuple[dict[str, Param], list[str]]:
    """The parameters a trial that trains ``tasks_trained`` tasks can tell apart, and the keys of
    those it cannot (they change nothing before a later task)."""
    kept = {k: p for k, p in space.items() if p.acts_from <= tasks_trained}
    return kept, [k for k in space if k not in kept]


def first_task_all_act(space: dict[str, Param]) -> int:
    """The first task (from 1) after which every searched parameter has acted: ASHA's least grace."""
    return max((p.acts_from for p in space.values()), default=1)


def describe(space: dict[str, Param]) -> dict[str, str]:
    return {key: p.describe() for key, p in space.items()}
