"""The replicated HPO protocols compared directly (issue #29): protocols whose selections run on
one stream, their differences paired by sampler seed; and every selection against what a
deployable model cost, one panel per stream (the study at a glance). The data:
analysis/hpo_replicated.py; the per-search and per-protocol tables: analysis/hpo_protocols.py."""

from __future__ import annotations

import statistics
from pathlib import Path

from . import figures
from .differences import put_difference
from .hpo_replicated import (
    REFERENCE_PROTOCOL,
    Selection,
    by_sampler_seed,
    replicated,
    selections,
)
from .stats import paired, t_half_width
from .store import Experiment
from .tables import Cell, Column, Table, provenance


def differences_table(
    exp: Experiment, sels: list[Selection], pairs: list[tuple[str, str]]
) -> Table:
    """Per pair of protocols evaluated on one stream: the difference of their selections' test
    numbers, paired by sampler seed (the searches of one seed start from the same random trials
    and their selections run on the same final seeds), and of the compute to a deployable model."""
    cols = [Column("comparison", "Comparison (first − second)"), Column("n", "Paired searches")]
    for key, header in (("acc", "Δ Test acc"), ("forgetting", "Δ Test forg")):
        cols += [Column(key, f"{header} (pp) [95% CI]"), Column(f"{key}:signs", "Searches")]
    cols += [Column("deploy", "Δ Tasks to deploy"), Column("verdict", "Resolved?")]
    t = Table(
        "hpo_protocol_differences",
        "HPO protocols evaluated on the same stream: differences of their selections' test "
        "numbers (percentage points), paired by sampler seed",
        cols,
    )
    for first, second in pairs:
        row: dict[str, Cell | str] = {"comparison": f"{first} − {second}"}
        verdicts, n = [], 0
        for key, word in (("acc", "accuracy"), ("forgetting", "forgetting")):
            d = paired(by_sampler_seed(sels, first, key), by_sampler_seed(sels, second, key))
            n = max(n, d.n)
            verdicts.append(put_difference(row, key, d, word, "searches"))
        cost = {
            label: {s.seed: c for s in sels if s.label == label and s.seed is not None
                    and (c := s.deploy_cost("compute/trial_tasks")) is not None}
            for label in (first, second)
        }  # fmt: skip
        d = paired(cost[first], cost[second])
        row["deploy"] = Cell(mean=d.mean, text=d.interval(0), rank=False)
        row["n"] = str(n)
        row["verdict"] = "; ".join(verdicts)
        t.add(row)
    t.note(
        "first − second over the sampler seeds both protocols searched with, each search's "
        "selection's mean over its final runs (the same final seeds in every search); [95% "
        "t-interval of the mean difference]; Searches: how many go the mean's way; resolved where "
        "the interval excludes 0, else not resolved (with n searches, Student's t with n − 1 "
        "degrees of freedom: wide for few searches)"
    )
    t.note(
        "Δ Tasks to deploy: the difference of the trial-tasks plus one final run's tasks "
        f"({REFERENCE_PROTOCOL}: trial-tasks only), paired likewise"
    )
    t.provenance = provenance(exp, [r for s in sels for r in s.runs])
    return t


def protocol_figures(exp: Experiment, out: Path) -> list[Path]:
    """The replicated study at a glance (figures.protocol_plot): per evaluation stream, each
    search's selection's test accuracy against the tasks a deployable model cost; none for a
    pilot (one search per protocol)."""
    sels = selections(exp)
    if not replicated(sels):
        return []
    panels: dict[str, dict[str, list[figures.SearchPoint]]] = {}
    for s in sels:
        cost = s.deploy_cost("compute/trial_tasks")
        accs = [100 * v for r in s.runs if (v := r.metric("final_avg_acc")) is not None]
        if cost is None or not accs:
            continue
        point = (cost, statistics.fmean(accs), t_half_width(accs), s.seed)
        panels.setdefault(s.stream, {}).setdefault(s.protocol, []).append(point)
    return figures.protocol_plot(panels, out, "hpo_protocols") if panels else []
