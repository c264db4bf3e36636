"""The main table: method (or a baselines variant that is not plainly a method) x dataset, final
average accuracy and forgetting, beside the paper's reported rows and a PAH ours - paper delta."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .differences import differences_table
from .store import Experiment, RunRecord
from .tables import (
    CIL_KEY,
    DASH,
    Cell,
    Column,
    Table,
    cil_stat,
    config_note,
    dataset_name,
    group_stats,
    method_name,
    protocol_note,
    provenance,
    row_key,
    row_protocol_notes,
    stat,
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
        cols += [
            Column(f"{d}:acc", "Acc ↑", "max", g),
            Column(f"{d}:forgetting", "Forg ↓", "min", g),
            Column(f"{d}:cil", "CIL ↑", "max", g),
            Column(f"{d}:n", "n", None, g),
        ]
    t = Table(
        "main_table",
        "Average accuracy and forgetting (%), mean ± std [95% CI] over seeds; CIL: class-incremental "
        "(task-agnostic) average accuracy",
        cols,
    )
    task_il_only = t.note("the paper reports task-incremental results only")
    dagger = t.note(
        "† as in the paper (its caption is not available; probably a protocol matched to GCR/DER/CCLIS)"
    )
    for row in paper["main"]:
        label = row["method"] + ("†" if row.get("dagger") else "")
        cells: dict[str, Cell | str] = {
            "method": Cell(text=label, notes=[dagger] if row.get("dagger") else []),
            "source": "reported",
            "buffer": row.get("buffer", DASH),
        }
        for d in datasets:
            if d not in row:
                gap = t.note("the paper has no results on this dataset")
                cells[f"{d}:acc"] = Cell(text=DASH, notes=[gap])
                cells[f"{d}:forgetting"] = Cell(text=DASH, notes=[gap])
            else:
                cells[f"{d}:acc"] = _reported(t, row[d]["acc"])
                cells[f"{d}:forgetting"] = _reported(t, row[d]["forgetting"])
            cells[f"{d}:cil"] = Cell(text=DASH, notes=[task_il_only])
            cells[f"{d}:n"] = Cell(text=DASH)
        t.add(cells)
    by_method: dict[str, dict[str, list[RunRecord]]] = {}  # row key -> dataset -> runs
    method_of: dict[str, str] = {}
    for r in runs:
        by_method.setdefault(row_key(r), {}).setdefault(r.dataset, []).append(r)
        method_of[row_key(r)] = r.method
    ours: dict[tuple[str, str], Cell] = {}
    order = _order_methods(by_method, method_of)
    cells_of = [(m, d) for m in order for d in datasets if by_method[m].get(d)]
    groups = [by_method[m][d] for m, d in cells_of]
    accs, forgs, cils = (
        group_stats(groups, k) for k in ("final_avg_acc", "final_forgetting", CIL_KEY)
    )
    for m in order:
        cells = {
            "method": Cell(text=f"{method_name(m)} (ours)"),
            "source": "this work",
            "buffer": DASH,
        }
        for d in datasets:
            group = by_method[m].get(d, [])
            if not group:
                cells[f"{d}:acc"] = Cell(text=DASH)
                cells[f"{d}:forgetting"] = Cell(text=DASH)
                cells[f"{d}:cil"] = Cell(text=DASH)
                cells[f"{d}:n"] = Cell(text="0")
                continue
            i = cells_of.index((m, d))
            acc = stat(t, group, "final_avg_acc", accs, i)
            forg = stat(t, group, "final_forgetting", forgs, i)
            acc.notes += config_note(t, group) + protocol_note(t, group, d)
            ours[(m, d)] = acc
            ours[(m, d, "f")] = forg  # type: ignore[index]
            cells[f"{d}:acc"] = acc
            cells[f"{d}:forgetting"] = forg
            cells[f"{d}:cil"] = cil_stat(t, group, cils, i)
            cells[f"{d}:n"] = Cell(text=str(len(group)), run_ids=[r.run_id for r in group])
        t.add(cells)
    if not runs:
        t.rows[-1]["method"].notes.append(
            t.note(
                "no runs of ours selected (only baselines sweeps and standalone runs count here)"
            )
        )
    # paper-vs-ours delta for PAH
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
    if prow is not None and spec.get("ours") in by_method:
        cells = {
            "method": Cell(text=f"Δ {method_name(spec['ours'])}: ours − paper"),
            "source": "delta (pp)",
            "buffer": DASH,
        }
        for d in datasets:
            for key, metric in (("acc", "acc"), ("forgetting", "f")):
                ourcell = ours.get((spec["ours"], d) if metric == "acc" else (spec["ours"], d, "f"))  # type: ignore[arg-type]
                theirs = prow.get(d, {}).get(key) if d in prow else None
                if ourcell is None or ourcell.mean is None or theirs is None:
                    cells[f"{d}:{key}"] = Cell(text=DASH, rank=False)
                else:
                    delta = ourcell.mean - float(str(theirs).split("±")[0])
                    cells[f"{d}:{key}"] = Cell(
                        mean=delta,
                        text=f"{delta:+.2f}",
                        rank=False,
                        notes=protocol_note(t, by_method[spec["ours"]].get(d, []), d),
                    )
            cells[f"{d}:n"] = Cell(text=DASH)
        t.add(cells)
    for d in datasets:  # keys such as schedule.eval_bn that differ between our rows
        row_protocol_notes(t, [(ours[(m, d)], by_method[m][d]) for m in order if (m, d) in ours])
    t.mark_best()
    t.provenance = provenance(exp, runs, {"reported_from": paper.get("source")})
    return t


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
