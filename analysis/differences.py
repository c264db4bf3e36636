"""Differences between two configurations, paired by seed: what a comparison of methods reports
(mean difference, its 95% t-interval, the seeds that go its way, whether the interval excludes 0)."""

from __future__ import annotations

import statistics

from .stats import Paired, paired
from .store import Experiment, RunRecord
from .tables import Cell, Column, Table, provenance

# (metric, column header, its name in the verdict)
METRICS = (("final_avg_acc", "Δ Acc", "accuracy"), ("final_forgetting", "Δ Forg", "forgetting"))


def by_seed(runs: list[RunRecord], key: str) -> dict[str, float]:
    """``key`` x 100 per seed (the mean where a seed repeats), over the runs that have it."""
    values: dict[str, list[float]] = {}
    for r in runs:
        if r.seed is not None and (v := r.metric(key)) is not None:
            values.setdefault(r.seed, []).append(100 * v)
    return {s: statistics.fmean(v) for s, v in values.items()}


def verdict(d: Paired, name: str, unit: str = "seeds") -> str:
    """E.g. ``accuracy: first higher``, ``forgetting: not resolved``; ``unit``: what pairs."""
    if d.n < 2:
        return f"{name}: n/a (fewer than 2 paired {unit})"
    if not d.resolved:
        return f"{name}: not resolved"
    return f"{name}: first {'higher' if d.mean > 0 else 'lower'}"


def put_difference(row: dict[str, Cell | str], key: str, d: Paired, name: str, unit="seeds") -> str:
    """``d`` into ``row``'s ``key`` (mean [95% CI]) and ``key:signs`` columns; its verdict."""
    row[key] = Cell(mean=d.mean, text=d.interval(), rank=False)
    row[f"{key}:signs"] = d.signs()
    return verdict(d, name, unit)


def differences_table(
    exp: Experiment,
    name: str,
    title: str,
    pairs: list[tuple[str, list[RunRecord], list[RunRecord]]],
) -> Table:
    """One row per ``(label, first runs, second runs)``: first minus second, paired by seed."""
    cols = [Column("comparison", "Comparison (first − second)"), Column("n", "Paired seeds")]
    for key, header, _ in METRICS:
        cols += [Column(f"{key}", f"{header} (pp) [95% CI]"), Column(f"{key}:signs", "Seeds")]
    cols.append(Column("verdict", "Resolved?"))
    t = Table(name, title, cols)
    used: list[RunRecord] = []
    for label, first, second in pairs:
        used += first + second
        row: dict[str, Cell | str] = {"comparison": label}
        verdicts, n = [], 0
        for key, _, word in METRICS:
            d = paired(by_seed(first, key), by_seed(second, key))
            n = max(n, d.n)
            verdicts.append(put_difference(row, key, d, word))
        row["n"] = str(n)
        row["verdict"] = "; ".join(verdicts)
        t.add(row)
    t.note(
        "first − second over the seeds both have, in percentage points; [95% t-interval of the "
        "mean difference]; Seeds: how many go the mean's way; resolved where the interval "
        "excludes 0, else not resolved"
    )
    t.provenance = provenance(exp, used)
    return t
