"""The main table: method (or a baselines variant that is not plainly a method) x dataset, final
average accuracy and forgetting, beside the paper's reported rows and a PAH ours - paper delta."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .differences import differences_table
from .store import Experiment, RunRecord
from .tables import (
    DASH,
    METRICS,
    Cell,
    Column,
    Table,
    config_note,
    dataset_name,
    method_name,
    metric_cell,
    metric_stats,
    protocol_note,
    provenance,
    row_key,
    row_protocol_notes,
)

TASK_IL_ONLY = "the paper reports task-incremental results only"
DAGGER = (
    "† as in the paper (its caption is not available; probably a protocol matched to GCR/DER/CCLIS)"
)


def _reported(table: Table, entry: list[float] | None) -> Cell:
    if entry is None:
        return Cell(text=DASH, notes=[table.note("not reported in the paper")])
    mean, std = (float(x) for x in str(entry).split("±"))
    return Cell(mean=mean, std=std, text=" ± ".join(x.strip() for x in str(entry).split("±")))


def _order_methods(methods: Iterable[str], method_of: dict[str, str] | None = None) -> list[str]:
    """PAH first, then by name; a variant row (row_key) right after its method's row."""
    method_of = method_of or {}

    def key(m: str):
        base = method_of.get(m, m)
        return (base != "pah", method_name(base).lower(), m != base, method_name(m).lower())

    return sorted(set(methods), key=key)


def main_table(exp: Experiment, runs: list[RunRecord], paper: dict[str, Any]) -> Table:
    ours_ds = sorted({r.dataset for r in runs})
    datasets = list(paper["datasets"]) + [d for d in ours_ds if d not in paper["datasets"]]
    cols = [Column("method", "Method"), Column("source", "Source"), Column("buffer", "Buffer")]
    for d in datasets:
        g = dataset_name(d)
        cols += [Column(f"{d}:{m.short}", m.header, m.better, g) for m in METRICS]
        cols.append(Column(f"{d}:n", "n", None, g))
    t = Table(
        "main_table",
        "Average accuracy and forgetting (%), mean ± std [95% CI] over seeds; CIL: class-incremental "
        "(task-agnostic) average accuracy",
        cols,
    )
    t.note(TASK_IL_ONLY)  # the first footnotes, in this order
    t.note(DAGGER)
    for row in paper["main"]:
        t.add(_reported_row(t, row, datasets))
    by_method: dict[str, dict[str, list[RunRecord]]] = {}  # row key -> dataset -> runs
    method_of: dict[str, str] = {}
    for r in runs:
        by_method.setdefault(row_key(r), {}).setdefault(r.dataset, []).append(r)
        method_of[row_key(r)] = r.method
    order = _order_methods(by_method, method_of)
    cells_of = [(m, d) for m in order for d in datasets if by_method[m].get(d)]
    stats = metric_stats([by_method[m][d] for m, d in cells_of])
    ours: dict[tuple[str, str], dict[str, Cell]] = {}
    for m in order:
        cells: dict[str, Cell | str] = {
            "method": Cell(text=f"{method_name(m)} (ours)"),
            "source": "this work",
            "buffer": DASH,
        }
        for d in datasets:
            group = by_method[m].get(d, [])
            if group:
                ours[(m, d)] = _our_cells(t, group, d, stats, cells_of.index((m, d)))
                cells |= {f"{d}:{k}": c for k, c in ours[(m, d)].items()}
            else:
                cells |= {f"{d}:{x.short}": Cell(text=DASH) for x in METRICS}
            cells[f"{d}:n"] = Cell(text=str(len(group)), run_ids=[r.run_id for r in group])
        t.add(cells)
    if not runs:
        t.rows[-1]["method"].notes.append(
            t.note(
                "no runs of ours selected (only baselines sweeps and standalone runs count here)"
            )
        )
    delta = _delta_row(t, paper, datasets, ours, by_method)
    if delta is not None:
        t.add(delta)
    for d in datasets:  # keys such as schedule.eval_bn that differ between our rows
        rows = [(ours[(m, d)]["acc"], by_method[m][d]) for m in order if (m, d) in ours]
        row_protocol_notes(t, rows)
    t.mark_best()
    t.provenance = provenance(exp, runs, {"reported_from": paper.get("source")})
    return t


def _reported_row(t: Table, row: dict[str, Any], datasets: list[str]) -> dict[str, Cell | str]:
    """A row of the paper's table, as reported (the paper is task-incremental only: no CIL)."""
    dagger = t.note(DAGGER)
    cells: dict[str, Cell | str] = {
        "method": Cell(
            text=row["method"] + ("†" if row.get("dagger") else ""),
            notes=[dagger] if row.get("dagger") else [],
        ),
        "source": "reported",
        "buffer": row.get("buffer", DASH),
    }
    for d in datasets:
        for m in METRICS:
            if m.short not in ("acc", "forgetting"):
                only = t.note(TASK_IL_ONLY)
                cells[f"{d}:{m.short}"] = Cell(text=DASH, notes=[only])
            elif d not in row:
                gap = t.note("the paper has no results on this dataset")
                cells[f"{d}:{m.short}"] = Cell(text=DASH, notes=[gap])
            else:
                cells[f"{d}:{m.short}"] = _reported(t, row[d][m.short])
        cells[f"{d}:n"] = Cell(text=DASH)
    return cells


def _our_cells(
    t: Table, group: list[RunRecord], dataset: str, stats: dict, i: int
) -> dict[str, Cell]:
    """Our row's cells for one dataset: a statistic per column of ``METRICS``, the accuracy cell
    carrying the row's footnotes (config differences within it, the paper's protocol)."""
    cells = {m.short: metric_cell(t, group, m, stats, i) for m in METRICS}
    cells["acc"].notes += config_note(t, group) + protocol_note(t, group, dataset)
    return cells


def _delta_row(
    t: Table,
    paper: dict[str, Any],
    datasets: list[str],
    ours: dict[tuple[str, str], dict[str, Cell]],
    by_method: dict[str, dict[str, list[RunRecord]]],
) -> dict[str, Cell | str] | None:
    """Ours minus the paper's, for the method the paper file names (``delta``), per dataset."""
    spec = paper.get("delta", {})
    prow = next(
        (
            p
            for p in paper["main"]
            if p["method"] == spec.get("paper")
            and bool(p.get("dagger")) == bool(spec.get("dagger"))
        ),
        None,
    )
    if prow is None or spec.get("ours") not in by_method:
        return None
    cells: dict[str, Cell | str] = {
        "method": Cell(text=f"Δ {method_name(spec['ours'])}: ours − paper"),
        "source": "delta (pp)",
        "buffer": DASH,
    }
    for d in datasets:
        for key in ("acc", "forgetting"):
            ourcell = ours.get((spec["ours"], d), {}).get(key)
            theirs = prow.get(d, {}).get(key) if d in prow else None
            if ourcell is None or ourcell.mean is None or theirs is None:
                cells[f"{d}:{key}"] = Cell(text=DASH, rank=False)
                continue
            delta = ourcell.mean - float(str(theirs).split("±")[0])
            notes = protocol_note(t, by_method[spec["ours"]].get(d, []), d)
            cells[f"{d}:{key}"] = Cell(mean=delta, text=f"{delta:+.2f}", rank=False, notes=notes)
        cells[f"{d}:n"] = Cell(text=DASH)
    return cells


def main_differences(exp: Experiment, runs: list[RunRecord]) -> Table | None:
    """Each of our main-table rows minus PAH's, paired by seed, per dataset; None without PAH
    runs or another row."""
    rows: dict[tuple[str, str], list[RunRecord]] = {}
    method_of: dict[str, str] = {}
    for r in runs:
        rows.setdefault((row_key(r), r.dataset), []).append(r)
        method_of[row_key(r)] = r.method
    pairs = [
        (f"{method_name(m)} − PAH ({dataset_name(d)})", rows[(m, d)], rows[("pah", d)])
        for m in _order_methods({m for m, _ in rows}, method_of)
        for d in sorted({d for _, d in rows})
        if m != "pah" and (m, d) in rows and ("pah", d) in rows
    ]
    if not pairs:
        return None
    return differences_table(
        exp,
        "main_differences",
        "Our rows minus PAH's, paired by seed (percentage points)",
        pairs,
    )
