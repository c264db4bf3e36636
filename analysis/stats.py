"""The statistics a reviewer asks of a table: a 95% t-interval of a mean over seeds, and
differences between two configurations paired by seed (mean, 95% t-interval, signs). Pure
functions on numbers; the tables call them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

LEVEL = 0.95


def t_half_width(values: Sequence[float]) -> float | None:
    """Half the width of the 95% t-interval of the mean of ``values`` (None below 2 values)."""
    n = len(values)
    if n < 2:
        return None
    t = float(scipy_stats.t.ppf(0.5 + LEVEL / 2, n - 1))
    return t * statistics.stdev(values) / math.sqrt(n)


@dataclass(frozen=True)
class Paired:
    """``a - b`` over the seeds both have: n, mean, the 95% interval, and how many are above and
    below zero."""

    n: int
    mean: float | None
    low: float | None
    high: float | None
    above: int
    below: int

    @property
    def resolved(self) -> bool:
        """The interval excludes zero."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def interval(self, digits: int = 2) -> str:
        if self.mean is None:
            return "n/a"
        if self.low is None:
            return f"{self.mean:+.{digits}f}"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"

    def signs(self) -> str:
        """How many seeds go the mean's way, e.g. ``5/5 > 0`` or ``2/3 < 0``."""
        if not self.n:
            return "n/a"
        # The mean's way, not the majority's: 1 seed at +1 and 2 at 0 and -5 is "1/3 < 0".
        if self.mean >= 0:
            return f"{self.above}/{self.n} > 0"
        return f"{self.below}/{self.n} < 0"


def paired(a: Mapping[str, float], b: Mapping[str, float]) -> Paired:
    """The differences ``a[seed] - b[seed]`` over the seeds in both."""
    diffs = [a[s] - b[s] for s in sorted(set(a) & set(b))]
    if not diffs:
        return Paired(0, None, None, None, 0, 0)
    mean = statistics.fmean(diffs)
    half = t_half_width(diffs)
    low, high = (None, None) if half is None else (mean - half, mean + half)
    return Paired(
        len(diffs),
        mean,
        low,
        high,
        sum(d > 0 for d in diffs),
        sum(d < 0 for d in diffs),
    )
