"""A method comparison (sweeps/compare_methods.py): each method's tuned and published-default
configurations and the untuned references on the same final seeds, and their differences paired by
seed (tuned − default per method; every other row − the first method's tuned one; every other
default − the first method's default)."""

from __future__ import annotations

from .differences import differences_table
from .store import Experiment, RunRecord, children
from .tables import (
    METRICS,
    Cell,
    Column,
    Table,
    config_note,
    method_name,
    metric_cell,
    provenance,
    row_protocol_notes,
    stat,
)

ROLES = ("tuned", "default", "reference")  # compare_methods.CONFIG_TAG's values, in row order


def comparison_groups(exp: Experiment) -> dict[tuple[str, str], list[RunRecord]]:
    """(method, role) -> the final runs of a comparison's sweeps, methods in the order their
    sweeps started, tuned before default, references last."""
    finals = [
        (p.start_time or 0, pid, p)
        for pid, p in exp.sweeps.items()
        if "comparison" in p.tags and p.tags.get("sweep_kind") == "final"
    ]
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for _, pid, p in sorted(finals, key=lambda x: x[:2]):
        role = p.tags.get("comparison_config", "?")
        for r in children(exp, [pid]):
            groups.setdefault((r.method, role), []).append(r)
    order = {role: i for i, role in enumerate(ROLES)}
    methods = list(dict.fromkeys(m for m, _ in groups))
    return dict(
        sorted(
            groups.items(),
            key=lambda kv: (
                kv[0][1] == "reference",
                methods.index(kv[0][0]),
                order.get(kv[0][1], 9),
            ),
        )
    )


def comparison_tables(exp: Experiment) -> list[Table]:
    groups = comparison_groups(exp)
    if not groups:
        return []
    t = Table(
        "comparison",
        "Tuned vs published defaults on the same final seeds (%): mean ± std [95% CI]",
        [
            Column("method", "Method"),
            Column("config", "Config"),
            *(Column(m.short, m.header, m.better) for m in METRICS),
            Column("fwt", "FWT"),
            Column("n", "n"),
            Column("seeds", "Seeds"),
        ],
    )
    rows = []
    for (method, role), runs in groups.items():
        cells = {m.short: metric_cell(t, runs, m) for m in METRICS}
        cells["acc"].notes += config_note(t, runs)
        rows.append((cells["acc"], runs))
        t.add(
            {
                "method": method_name(method),
                "config": role,
                **cells,
                "fwt": stat(t, runs, "final_forward_transfer"),
                "n": Cell(text=str(len(runs)), run_ids=[r.run_id for r in runs]),
                "seeds": ",".join(sorted({r.seed or "?" for r in runs}, key=_seed_order)),
            }
        )
    row_protocol_notes(t, rows)
    t.mark_best()
    every = [r for runs in groups.values() for r in runs]
    t.provenance = provenance(exp, every)
    return [t, comparison_differences(exp, groups)]


def comparison_differences(
    exp: Experiment, groups: dict[tuple[str, str], list[RunRecord]]
) -> Table:
    pairs = [
        (f"{method_name(m)}: tuned − default", groups[(m, "tuned")], groups[(m, "default")])
        for m, role in groups
        if role == "tuned" and (m, "default") in groups
    ]
    tuned = [m for m, role in groups if role == "tuned"]
    if tuned:
        first = tuned[0]
        pairs += [
            (
                f"{method_name(m)} {role} − {method_name(first)} tuned",
                runs,
                groups[(first, "tuned")],
            )
            for (m, role), runs in groups.items()
            if role in ("tuned", "reference") and m != first
        ]
        # Untuned against untuned: whether a gap between tuned methods is the methods' or tuning's.
        if (first, "default") in groups:
            pairs += [
                (
                    f"{method_name(m)} default − {method_name(first)} default",
                    runs,
                    groups[(first, "default")],
                )
                for (m, role), runs in groups.items()
                if role == "default" and m != first
            ]
    return differences_table(
        exp,
        "comparison_differences",
        "Differences paired by seed (percentage points): tuning's effect per method, each "
        "method against the first one, tuned, and the defaults against the first one's defaults",
        pairs,
    )


def _seed_order(seed: str) -> tuple[int, str]:
    return (int(seed), "") if seed.isdigit() else (1 << 30, seed)
