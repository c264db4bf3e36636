"""Ablation tables (prototype size, prototype initialisation, loss terms) from ablation sweeps:
their runs grouped by config value, not by variant name, beside the paper's numbers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pah_core.methods import registered_methods

from .store import Experiment, RunRecord
from .tables import (
    DASH,
    FREE_KEYS,
    FULL_FROM_TAG,
    METRICS,
    NA,
    Cell,
    Column,
    Table,
    config_note,
    dataset_name,
    metric_cell,
    metric_stats,
    protocol_note,
    provenance,
)


def _truthy(v: str | None) -> bool | None:
    return None if v is None else str(v).lower() in ("true", "1", "yes")


def variants_changing(params: Iterable[str]) -> set[str]:
    """The ablation variants (every method's, declared in its file) that change only ``params``:
    the dedicated variants of the table over those keys."""
    keys = set(params)
    return {
        name
        for cls in registered_methods().values()
        for name, overrides in cls.ablation_variants.items()
        if overrides and set(overrides) <= keys
    }


# Each table groups runs by the values of its ``params``; its dedicated variants are those that
# change nothing else (``variants_changing``).
ABLATIONS: dict[str, dict[str, Any]] = {
    "prototype_size": {
        "title": "Ablation: prototype size",
        "header": "Prototype size",
        "key": lambda r: (
            int(r.params["model.prototype_size"]) if "model.prototype_size" in r.params else None
        ),
        "params": ("model.prototype_size",),
        "levels": [5, 10, 16, 20],
        "label": lambda k: f"{k}×{k}",
        "paper": lambda k, p: p.get(k),
    },
    "prototype_init": {
        "title": "Ablation: prototype initialisation",
        "header": "Initialisation",
        "key": lambda r: r.params.get("model.prototype_init"),
        "params": ("model.prototype_init",),
        "levels": ["semantic_crop", "semantic_resize", "random"],
        "label": lambda k: {
            "semantic_crop": "semantic (centre crop)",
            "semantic_resize": "semantic (resize)",
            "random": "random (noise)",
        }.get(k, k),
        "paper": lambda k, p: p.get("random" if k == "random" else "semantic"),
    },
    "loss_terms": {
        "title": "Ablation: loss terms",
        "header": "Loss",
        "key": lambda r: (
            _truthy(r.params.get("method.pah.use_sm")),
            _truthy(r.params.get("method.pah.use_sp")),
        ),
        "params": ("method.pah.use_sm", "method.pah.use_sp"),
        "levels": [(False, False), (True, False), (False, True), (True, True)],
        "label": lambda k: {
            (False, False): "CE only",
            (True, False): "CE + L_sm",
            (False, True): "CE + L_sp",
            (True, True): "CE + L_sm + L_sp",
        }.get(k, str(k)),
        "paper": lambda k, p: None,
    },
}


def shared_full_runs(
    exp: Experiment, parent_ids: Iterable[str]
) -> tuple[list[RunRecord], list[str]]:
    """The runs that the ablation sweeps ``parent_ids`` name as their full configuration
    (``FULL_FROM_TAG``), and a warning for each such tag that names no run."""
    runs: list[RunRecord] = []
    warnings = []
    for pid in parent_ids:
        spec = exp.sweeps[pid].tags.get(FULL_FROM_TAG) if pid in exp.sweeps else None
        if not spec:
            continue
        sweep, _, variant = spec.rpartition(":")
        hits = [r for r in exp.runs if r.sweep == sweep and r.variant == variant]
        if not hits:
            warnings.append(
                f"ablation sweep {exp.sweep_label(pid)}: its full configuration is variant "
                f"{variant!r} of sweep {sweep!r}, which has no such runs in {exp.name!r}"
            )
        runs += [r for r in hits if r not in runs]
    return runs, warnings


def ablation_tables(
    exp: Experiment,
    runs: list[RunRecord],
    paper: dict[str, Any],
    shared_full: list[RunRecord] | None = None,
) -> list[Table]:
    """One table per ablation and dataset, from runs with a ``variant`` tag (ablation sweeps).

    The base configuration's row takes the ablation's own "full" runs and ``shared_full``: runs of
    the same configuration trained in another sweep (``shared_full_runs``)."""
    tables = []
    shared = list(shared_full or [])
    datasets = sorted({r.dataset for r in runs})
    for dataset in datasets:
        ds_runs = [r for r in runs if r.dataset == dataset]
        for name, spec in ABLATIONS.items():
            dedicated = [r for r in ds_runs if r.variant in variants_changing(spec["params"])]
            if not dedicated:
                continue  # this ablation was not run
            full = [r for r in ds_runs if r.variant == "full"]
            full += [r for r in shared if r.dataset == dataset and r not in full]
            suffix = "" if len(datasets) == 1 else f"_{dataset}"
            ablation = _Ablation(name, spec, dataset, dedicated, {r.run_id for r in shared})
            tables.append(ablation.table(exp, full, paper, f"ablation_{name}{suffix}"))
    return tables


class _Ablation:
    """One ablation's table on one dataset: its runs grouped by the ablated setting."""

    def __init__(
        self,
        name: str,
        spec: dict[str, Any],
        dataset: str,
        dedicated: list[RunRecord],
        shared_ids: set[str],
    ):
        self.name, self.spec, self.dataset = name, spec, dataset
        self.dedicated, self.shared_ids = dedicated, shared_ids

    def is_full(self, r: RunRecord) -> bool:
        return r.variant == "full" or r.run_id in self.shared_ids

    def variant_label(self, r: RunRecord) -> str:
        return f"{r.variant} of {r.sweep}" if r.run_id in self.shared_ids else str(r.variant)

    def groups(self, full: list[RunRecord]) -> dict[Any, list[RunRecord]]:
        key = self.spec["key"]
        groups: dict[Any, list[RunRecord]] = {}
        for r in self.dedicated:
            groups.setdefault(key(r), []).append(r)
        for r in full:
            k = key(r)
            if k not in groups or all(self.is_full(x) for x in groups[k]):
                groups.setdefault(k, []).append(r)
        return groups

    def table(
        self, exp: Experiment, full: list[RunRecord], paper: dict[str, Any], table_name: str
    ) -> Table:
        pab = paper.get("ablations", {})
        paper_ds = dataset_name(pab.get("dataset", "cifar100"))
        cols = [Column("setting", self.spec["header"]), Column("variants", "Variant")]
        cols.append(Column("n", "n"))
        cols += [Column(m.short, m.header, m.better, "ours") for m in METRICS]
        cols += [
            Column("paper_acc", "Acc ↑", "max", f"paper, {paper_ds}"),
            Column("paper_forgetting", "Forg ↓", "min", f"paper, {paper_ds}"),
        ]
        title = f"{self.spec['title']} ({dataset_name(self.dataset)}; %)"
        t = Table(table_name, title, cols)
        groups = self.groups(full)
        levels = list(self.spec["levels"]) + [k for k in groups if k not in self.spec["levels"]]
        ran = [k for k in levels if groups.get(k)]
        stats = metric_stats([groups[k] for k in ran])
        paper_table = pab.get(self.name, {}) or {}
        for k in levels:
            ref = self.spec["paper"](k, paper_table)
            if k not in groups and ref is None and k not in self.spec["levels"]:
                continue
            group = groups.get(k, [])
            row: dict[str, Cell | str] = {
                "setting": self.spec["label"](k),
                "variants": ", ".join(sorted({self.variant_label(r) for r in group})) or DASH,
                "n": str(len(group)),
            }
            row |= self.our_cells(t, group, stats, ran.index(k) if group else -1)
            row |= self.paper_cells(t, ref)
            t.add(row)
        if self.name == "prototype_init":
            t.note("the paper's 'semantic' initialisation is shown beside both semantic variants")
        if self.dataset != pab.get("dataset", "cifar100"):
            t.note(
                f"the paper's ablations are on {paper_ds}; ours here are on "
                f"{dataset_name(self.dataset)}"
            )
        t.mark_best()
        used = [r for g in groups.values() for r in g]
        t.provenance = provenance(exp, used, {"reported_from": paper.get("source")})
        return t

    def our_cells(self, t: Table, group: list[RunRecord], stats: dict, i: int) -> dict[str, Cell]:
        if not group:
            gap = t.note("no run of ours with this setting")
            return {m.short: Cell(text=NA, notes=[gap]) for m in METRICS}
        cells = {m.short: metric_cell(t, group, m, stats, i) for m in METRICS}
        cells["acc"].notes += config_note(t, group) + protocol_note(t, group, self.dataset)
        cells["acc"].notes += shared_full_note(t, group, self.shared_ids, self.dedicated, self.spec)
        return cells

    def paper_cells(self, t: Table, ref: dict[str, float] | None) -> dict[str, Cell]:
        if ref is None:
            gap = t.note(
                "the paper reports no loss-term ablation"
                if self.name == "loss_terms"
                else "not in the paper"
            )
            return {
                "paper_acc": Cell(text=DASH, notes=[gap]),
                "paper_forgetting": Cell(text=DASH, notes=[gap]),
            }
        return {
            "paper_acc": Cell(mean=ref["acc"], text=f"{ref['acc']:.2f}"),
            "paper_forgetting": Cell(mean=ref["forgetting"], text=f"{ref['forgetting']:.2f}"),
        }


def shared_full_note(
    t: Table,
    group: list[RunRecord],
    shared_ids: set[str],
    dedicated: list[RunRecord],
    spec: dict[str, Any],
) -> list[str]:
    """Where a row's runs come from another sweep, say so, and say in what their config differs
    from the ablation's own runs besides the ablated keys (nothing, when the study is sound)."""
    borrowed = [r for r in group if r.run_id in shared_ids]
    if not borrowed:
        return []
    sources = sorted({f"{r.variant} of sweep {r.sweep}" for r in borrowed})
    notes = [
        t.note(
            f"the full configuration's runs are those of {', '.join(sources)} (the same config, "
            "trained once for the main table and this ablation)"
        )
    ]
    ignore = FREE_KEYS | set(spec["params"])
    keys = set().union(*(r.params for r in borrowed + dedicated)) - ignore
    differ = sorted(k for k in keys if len({r.params.get(k) for r in borrowed + dedicated}) > 1)
    if differ:
        shown = ", ".join(differ[:6]) + (f" (+{len(differ) - 6} more)" if len(differ) > 6 else "")
        notes.append(t.note(f"the full configuration's runs differ from the ablation's in {shown}"))
    return notes
