"""Tables as data: cells that know their runs, footnotes, provenance. Rendering is in render.py.

Numbers are in % (accuracy and forgetting as fractions in MLflow, times 100). A mean +- std is over
runs (seeds); std is the sample standard deviation (ddof = 1), absent for a single run. The numbers
of a table come from one ``groupby().agg()`` per metric (``group_stats``), the footnotes and the
provenance from the runs behind each cell.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pah_core.tracking import sqlite_path

from .store import Experiment, RunRecord, short_id

PAPER_FILE = Path(__file__).with_name("paper_reported.yaml")
NA = "n/a"
DASH = "—"

METHOD_NAMES = {
    "pah": "PAH",
    "finetune": "Fine-tune",
    "joint": "Joint",
    "lwf": "LwF",
    "ewc": "EWC",
    "si": "SI",
    "agem": "A-GEM",
    "hnet": "HNET",
}
# Main-table rows of a baselines sweep's variant that is not plainly a method (row_key).
VARIANT_NAMES = {"pah_official": "PAH, official code"}
DATASET_NAMES = {"cifar100": "S-CIFAR100", "tinyimagenet": "TinyImageNet", "synthetic": "Synthetic"}
# Config keys that may differ between the seeds of one table row without changing what it means.
FREE_KEYS = {
    "run.seed",
    "run.device",
    "run.threads",
    "run.checkpoint",
    "run.progress",
    "data.root",
    "data.download",
    "data.cache_dir",
    "schedule.eval_batch_size",
}
SENSITIVITY_KEYS = [
    "model.hyper_width",
    "model.hyper_depth",
    "method.pah.lambda_sm",
    "method.pah.lambda_sp",
    "method.pah.temperature",
]
PARAM_NAMES = {
    "model.hyper_width": "HN width",
    "model.hyper_depth": "HN depth",
    "method.pah.lambda_sm": "lambda_sm",
    "method.pah.lambda_sp": "lambda_sp",
    "method.pah.temperature": "temperature",
}


def method_name(m: str) -> str:
    """The display name of a method or of a main-table row key (see row_key)."""
    return METHOD_NAMES.get(m) or VARIANT_NAMES.get(m, m)


def row_key(r: RunRecord) -> str:
    """A run's main-table row: its method, or its baselines-sweep variant when that names something
    else than the method (e.g. ``pah_official``: PAH with the official code's choices), so that
    two configurations of one method are not pooled into one row."""
    if r.kind == "baselines" and r.variant and r.variant != r.method:
        return r.variant
    return r.method


def dataset_name(d: str) -> str:
    return DATASET_NAMES.get(d, d)


def load_paper(path: Path = PAPER_FILE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@dataclass
class Cell:
    """One table entry: a statistic over runs, a reported number, or text."""

    mean: float | None = None
    std: float | None = None
    n: int = 0
    text: str | None = None  # shown as is (reported numbers, labels); else formatted from mean/std
    run_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # footnote markers
    bold: bool = False
    rank: bool = True  # takes part in "best value bold"

    def shown(self) -> str:
        if self.text is not None:
            return self.text
        if self.mean is None:
            return NA
        if self.std is None:
            return f"{self.mean:.2f}"
        return f"{self.mean:.2f} ± {self.std:.2f}"


@dataclass
class Column:
    key: str
    header: str
    better: str | None = None  # "max" or "min": the best value of the column is bold
    group: str = ""  # a header spanning columns (e.g. the dataset)


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Cell]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # marker -> text, in order
    provenance: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> str:
        for k, v in self.notes.items():
            if v == text:
                return k
        marker = "abcdefghijklmnopqrstuvwxyz"[len(self.notes) % 26] * (1 + len(self.notes) // 26)
        self.notes[marker] = text
        return marker

    def add(self, row: dict[str, Cell | str]) -> None:
        self.rows.append(
            {k: v if isinstance(v, Cell) else Cell(text=str(v)) for k, v in row.items()}
        )

    def mark_best(self) -> None:
        for c in self.columns:
            if c.better is None:
                continue
            vals = [
                round(r[c.key].mean, 2)
                for r in self.rows
                if c.key in r and r[c.key].rank and r[c.key].mean is not None
            ]
            if not vals:
                continue
            best = max(vals) if c.better == "max" else min(vals)
            for r in self.rows:
                cell = r.get(c.key)
                if cell and cell.rank and cell.mean is not None and round(cell.mean, 2) == best:
                    cell.bold = True

    def cell(self, row_label: str, key: str, label_key: str | None = None) -> Cell:
        """The cell in column ``key`` of the row whose first column reads ``row_label`` (tests)."""
        label_key = label_key or self.columns[0].key
        hits = [r for r in self.rows if r[label_key].shown() == row_label]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} rows labelled {row_label!r} in {self.name}")
        return hits[0][key]


def _stdev(values: pd.Series) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def group_stats(groups: list[list[RunRecord]], key: str, scale: float = 100.0) -> pd.DataFrame:
    """Mean, sample std and n of metric ``key`` x ``scale`` for each group of runs (indexed by its
    position in ``groups``), over the runs that have it; no row for a group where none has it.

    statistics.fmean and stdev are exactly rounded; pandas' own mean and std can differ from them
    in the last bit, which the JSON tables (full precision) would show."""
    values = [(i, r.metric(key)) for i, runs in enumerate(groups) for r in runs]
    frame = pd.DataFrame(values, columns=["group", "value"], dtype=object).dropna()
    frame["value"] = frame["value"].astype(float) * scale
    return frame.groupby("group").agg(
        mean=("value", statistics.fmean), std=("value", _stdev), n=("value", "count")
    )


def stat(
    table: Table, runs: list[RunRecord], key: str, stats: pd.DataFrame | None = None, i: int = 0
) -> Cell:
    """Mean +- std of metric ``key`` over ``runs`` (row ``i`` of ``stats``, the group_stats of a
    table's groups, else of ``runs`` alone); a footnoted gap for runs that lack it."""
    if stats is None:
        stats, i = group_stats([runs], key), 0
    lacking = [r for r in runs if r.metric(key) is None]
    cell = Cell(run_ids=[r.run_id for r in runs if r.metric(key) is not None])
    if i in stats.index:
        row = stats.loc[i]
        cell.mean, cell.n = float(row["mean"]), int(row["n"])
        cell.std = None if pd.isna(row["std"]) else float(row["std"])
        if cell.n == 1:
            cell.notes.append(table.note("a single run: no standard deviation"))
    if lacking:
        ids = ", ".join(short_id(r.run_id) for r in lacking)
        what = "none of the runs has" if not cell.n else f"{len(lacking)} of {len(runs)} runs lack"
        cell.notes.append(
            table.note(
                f"{what} {key} (stopped early, failed or still running): {ids}"
                + ("" if not cell.n else "; the value is over the others")
            )
        )
    if not runs:
        cell.notes.append(table.note("no runs for this cell"))
    return cell


def config_note(table: Table, runs: list[RunRecord]) -> list[str]:
    """A footnote when the runs pooled into one row differ in anything but the seed (or repeat a seed)."""
    notes = []
    keys = set().union(*(r.params for r in runs)) - FREE_KEYS if runs else set()
    differ = sorted(k for k in keys if len({r.params.get(k) for r in runs}) > 1)
    if differ:
        shown = ", ".join(differ[:6]) + (f" (+{len(differ) - 6} more)" if len(differ) > 6 else "")
        notes.append(table.note(f"the runs pooled in this row differ in {shown}"))
    seeds = [r.seed for r in runs]
    if len(set(seeds)) < len(seeds):
        notes.append(table.note("the same seed appears more than once in this row"))
    return notes


# What makes a result comparable with the paper's table: the data, the backbone and the schedule.
# Method hyperparameters may differ by design (each method has its own).
PROTOCOL_KEYS = (
    "data.n_tasks",
    "data.classes_per_task",
    "data.train_per_class",
    "data.test_per_class",
    "model.backbone",
    "model.pretrained",
    "optim.batch_size",
    "schedule.epochs_per_task",
    "schedule.max_tasks",
)
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Where the paper's protocol differs from the shipped config: the config trains from scratch so that
# it runs offline, the paper's backbone is ImageNet-pretrained (pah-method.md section 1.4).
PAPER_PROTOCOL_OVERRIDES = {"model.pretrained": True}


def paper_protocol(dataset: str) -> tuple[str, dict[str, str]] | None:
    """The paper's protocol for ``dataset``: the shipped config (configs/<dataset>_pah.yaml) with
    ``PAPER_PROTOCOL_OVERRIDES``, as strings the way runs log their params; None for datasets the
    paper has no protocol for."""
    from pah_core.config import load_config

    path = CONFIGS / f"{dataset}_pah.yaml"
    if not path.is_file():
        return None
    flat = load_config(str(path), dict(PAPER_PROTOCOL_OVERRIDES)).flat()
    return path.name, {k: str(flat[k]) for k in PROTOCOL_KEYS if k in flat}


def protocol_note(table: Table, runs: list[RunRecord], dataset: str) -> list[str]:
    """A footnote when the runs of a row were not trained under the paper's protocol, naming the
    differences: their numbers are then not comparable with the reported rows."""
    proto = paper_protocol(dataset)
    if proto is None or not runs:
        return []
    name, want = proto

    def shown(key: str, value: str) -> str:  # None means "every image" or "every task" there
        return "all" if value == "None" and key != "model.pretrained" else value

    differ = []
    for k, v in want.items():
        got = sorted({r.params.get(k, "?") for r in runs})
        if got != [v]:
            differ.append(f"{k}={'/'.join(shown(k, g) for g in got)} (paper {shown(k, v)})")
    if not differ:
        return []
    return [
        table.note(
            f"not the paper's protocol ({name}): {', '.join(differ)}; not comparable with the "
            "reported rows"
        )
    ]


def provenance(exp: Experiment, runs: Iterable[RunRecord], extra: dict[str, Any] | None = None):
    runs = list(runs)
    return {
        "mlflow_uri": exp.uri,
        "experiment": exp.name,
        "run_ids": sorted(r.run_id for r in runs),
        "git_sha": sorted({r.tags.get("git_sha", "unknown") for r in runs}),
        "dataset_fingerprint": sorted({r.tags.get("dataset_fingerprint", "unknown") for r in runs}),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        **(extra or {}),
    }


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


# -- main table ----------------------------------------------------------------------------------


def main_table(exp: Experiment, runs: list[RunRecord], paper: dict[str, Any]) -> Table:
    ours_ds = sorted({r.dataset for r in runs})
    datasets = list(paper["datasets"]) + [d for d in ours_ds if d not in paper["datasets"]]
    cols = [Column("method", "Method"), Column("source", "Source"), Column("buffer", "Buffer")]
    for d in datasets:
        g = dataset_name(d)
        cols += [
            Column(f"{d}:acc", "Acc ↑", "max", g),
            Column(f"{d}:forgetting", "Forg ↓", "min", g),
            Column(f"{d}:n", "n", None, g),
        ]
    t = Table("main_table", "Average accuracy and forgetting (%), mean ± std over seeds", cols)
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
    accs, forgs = (group_stats(groups, k) for k in ("final_avg_acc", "final_forgetting"))
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
    t.mark_best()
    t.provenance = provenance(exp, runs, {"reported_from": paper.get("source")})
    return t


# -- ablations -----------------------------------------------------------------------------------


def _truthy(v: str | None) -> bool | None:
    return None if v is None else str(v).lower() in ("true", "1", "yes")


ABLATIONS: dict[str, dict[str, Any]] = {
    "prototype_size": {
        "title": "Ablation: prototype size",
        "header": "Prototype size",
        "key": lambda r: (
            int(r.params["model.prototype_size"]) if "model.prototype_size" in r.params else None
        ),
        "params": ("model.prototype_size",),
        "variants": lambda v: v.startswith("proto_") and v[6:].isdigit(),
        "levels": [5, 10, 16, 20],
        "label": lambda k: f"{k}×{k}",
        "paper": lambda k, p: p.get(k),
    },
    "prototype_init": {
        "title": "Ablation: prototype initialisation",
        "header": "Initialisation",
        "key": lambda r: r.params.get("model.prototype_init"),
        "params": ("model.prototype_init",),
        "variants": lambda v: v.startswith("init_"),
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
        "variants": lambda v: v in ("ce_only", "ce+sm", "ce+sp"),
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


# On an ablation sweep's parent run: "<sweep>:<variant>", the runs that are its "full" (base)
# configuration, trained in another sweep of the experiment (sweeps/reproduce.py: the main part's
# pah runs) instead of a second time as the ablation's own "full" variant.
FULL_FROM_TAG = "pah.ablation_full_from"


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
    pab = paper.get("ablations", {})
    shared = list(shared_full or [])
    shared_ids = {r.run_id for r in shared}

    def is_full(r: RunRecord) -> bool:
        return r.variant == "full" or r.run_id in shared_ids

    def variant_label(r: RunRecord) -> str:
        return f"{r.variant} of {r.sweep}" if r.run_id in shared_ids else str(r.variant)

    for dataset in sorted({r.dataset for r in runs}):
        ds_runs = [r for r in runs if r.dataset == dataset]
        for name, spec in ABLATIONS.items():
            dedicated = [r for r in ds_runs if r.variant and spec["variants"](r.variant)]
            full = [r for r in ds_runs if r.variant == "full"]
            full += [r for r in shared if r.dataset == dataset and r not in full]
            if not dedicated:
                continue  # this ablation was not run
            paper_ds = dataset_name(pab.get("dataset", "cifar100"))
            cols = [
                Column("setting", spec["header"]),
                Column("variants", "Variant"),
                Column("n", "n"),
                Column("acc", "Acc ↑", "max", "ours"),
                Column("forgetting", "Forg ↓", "min", "ours"),
                Column("paper_acc", "Acc ↑", "max", f"paper, {paper_ds}"),
                Column("paper_forgetting", "Forg ↓", "min", f"paper, {paper_ds}"),
            ]
            suffix = "" if len({r.dataset for r in runs}) == 1 else f"_{dataset}"
            t = Table(
                f"ablation_{name}{suffix}", f"{spec['title']} ({dataset_name(dataset)}; %)", cols
            )
            groups: dict[Any, list[RunRecord]] = {}
            for r in dedicated:
                groups.setdefault(spec["key"](r), []).append(r)
            for r in full:
                k = spec["key"](r)
                if k not in groups or all(is_full(x) for x in groups[k]):
                    groups.setdefault(k, []).append(r)
            levels = list(spec["levels"]) + [k for k in groups if k not in spec["levels"]]
            ran = [k for k in levels if groups.get(k)]
            accs, forgs = (
                group_stats([groups[k] for k in ran], m)
                for m in ("final_avg_acc", "final_forgetting")
            )
            paper_table = pab.get(name, {}) or {}
            for k in levels:
                ref = spec["paper"](k, paper_table)
                if k not in groups and ref is None and k not in spec["levels"]:
                    continue
                group = groups.get(k, [])
                row: dict[str, Cell | str] = {
                    "setting": spec["label"](k),
                    "variants": ", ".join(sorted({variant_label(r) for r in group})) or DASH,
                    "n": str(len(group)),
                }
                if group:
                    row["acc"] = stat(t, group, "final_avg_acc", accs, ran.index(k))
                    row["acc"].notes += config_note(t, group) + protocol_note(t, group, dataset)
                    row["acc"].notes += shared_full_note(t, group, shared_ids, dedicated, spec)
                    row["forgetting"] = stat(t, group, "final_forgetting", forgs, ran.index(k))
                else:
                    gap = t.note("no run of ours with this setting")
                    row["acc"] = Cell(text=NA, notes=[gap])
                    row["forgetting"] = Cell(text=NA, notes=[gap])
                if ref is None:
                    gap = t.note(
                        "the paper reports no loss-term ablation"
                        if name == "loss_terms"
                        else "not in the paper"
                    )
                    row["paper_acc"] = Cell(text=DASH, notes=[gap])
                    row["paper_forgetting"] = Cell(text=DASH, notes=[gap])
                else:
                    row["paper_acc"] = Cell(mean=ref["acc"], text=f"{ref['acc']:.2f}")
                    row["paper_forgetting"] = Cell(
                        mean=ref["forgetting"], text=f"{ref['forgetting']:.2f}"
                    )
                t.add(row)
            if name == "prototype_init":
                t.note(
                    "the paper's 'semantic' initialisation is shown beside both semantic variants"
                )
            if dataset != pab.get("dataset", "cifar100"):
                t.note(
                    f"the paper's ablations are on {paper_ds}; ours here are on {dataset_name(dataset)}"
                )
            t.mark_best()
            used = [r for g in groups.values() for r in g]
            t.provenance = provenance(exp, used, {"reported_from": paper.get("source")})
            tables.append(t)
    return tables


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


# -- sensitivity (search sweeps) -----------------------------------------------------------------


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rho (ties ranked by their average); None below 3 points or without variation."""
    if len(x) < 3:
        return None
    with warnings.catch_warnings():  # scipy warns about a constant input, which gives NaN
        warnings.simplefilter("ignore")
        rho = pd.Series(x, dtype=float).corr(pd.Series(y, dtype=float), method="spearman")
    return None if pd.isna(rho) else float(rho)


def _num(v: str | None) -> float | None:
    try:
        return None if v is None else float(v)
    except ValueError:
        return None


def sensitivity_tables(
    exp: Experiment,
    sweep_label: str,
    trials: list[RunRecord],
    importances: dict[str, float] | None,
    importance_note: str,
    keys: list[str] = SENSITIVITY_KEYS,
) -> tuple[Table, Table]:
    """Per-parameter summary (range, Spearman rho with the final metrics, Optuna importance) and the
    per-trial table behind it."""
    done = [r for r in trials if r.metric("final_avg_acc") is not None]
    summary = Table(
        f"sensitivity_{_slug(sweep_label)}",
        f"Sensitivity in search sweep {sweep_label} ({len(done)} of {len(trials)} trials finished)",
        [
            Column("param", "Parameter"),
            Column("range", "Range tried"),
            Column("n", "n"),
            Column("rho_acc", "ρ(acc)"),
            Column("rho_forgetting", "ρ(forg)"),
            Column("best", "Best trial"),
            Column("importance", "Optuna importance"),
        ],
    )
    rho_note = summary.note(
        "ρ: Spearman rank correlation over the finished trials (final_avg_acc, final_forgetting); n/a below 3 trials or without variation"
    )
    imp_marker = summary.note(importance_note)
    best = max(done, key=lambda r: r.metric("final_avg_acc"), default=None)
    for k in keys:
        pts = [(_num(r.params.get(k)), r) for r in done]
        pts = [(x, r) for x, r in pts if x is not None]
        xs = [x for x, _ in pts]
        ra = spearman(xs, [100 * r.metric("final_avg_acc") for _, r in pts])
        fpts = [(x, r) for x, r in pts if r.metric("final_forgetting") is not None]
        rf = spearman([x for x, _ in fpts], [100 * r.metric("final_forgetting") for _, r in fpts])
        imp = None if importances is None else importances.get(k)
        summary.add(
            {
                "param": PARAM_NAMES.get(k, k),
                "range": f"{_fmt(min(xs))} – {_fmt(max(xs))}" if xs else NA,
                "n": str(len(xs)),
                "rho_acc": Cell(text=NA if ra is None else f"{ra:+.2f}", mean=ra, notes=[rho_note]),
                "rho_forgetting": Cell(
                    text=NA if rf is None else f"{rf:+.2f}", mean=rf, notes=[rho_note]
                ),
                "best": _fmt(_num(best.params.get(k))) if best and best.params.get(k) else NA,
                "importance": Cell(
                    text=NA if imp is None else f"{imp:.3f}", mean=imp, notes=[imp_marker]
                ),
            }
        )
    summary.provenance = provenance(exp, trials, {"sweep": sweep_label})

    detail = Table(
        f"sensitivity_trials_{_slug(sweep_label)}",
        f"Trials of search sweep {sweep_label} (%)",
        [Column("trial", "Trial"), Column("status", "Status")]
        + [Column(k, PARAM_NAMES.get(k, k)) for k in keys]
        + [Column("acc", "Acc ↑", "max"), Column("forgetting", "Forg ↓", "min")],
    )
    for r in sorted(trials, key=lambda r: -(r.metric("final_avg_acc") or -1.0)):
        row: dict[str, Cell | str] = {"trial": r.name, "status": _status(r)}
        for k in keys:
            row[k] = _fmt(_num(r.params.get(k))) if r.params.get(k) is not None else NA
        row["acc"] = stat(detail, [r], "final_avg_acc")
        row["forgetting"] = stat(detail, [r], "final_forgetting")
        for c in (row["acc"], row["forgetting"]):
            c.notes = [
                n for n in c.notes if detail.notes[n] != "a single run: no standard deviation"
            ]
        detail.add(row)
    detail.notes = {
        k: v for k, v in detail.notes.items() if v != "a single run: no standard deviation"
    }
    detail.mark_best()
    detail.provenance = provenance(exp, trials, {"sweep": sweep_label})
    return summary, detail


def _status(r: RunRecord) -> str:
    if r.tags.get("pah.stopped_early"):
        return "stopped early"
    return r.status.lower()


def _fmt(x: float | None) -> str:
    if x is None:
        return NA
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.3g}"


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in s)


# -- Optuna --------------------------------------------------------------------------------------


def optuna_importances(
    storage_url: str | None, study_name: str
) -> tuple[dict[str, float] | None, str]:
    """fANOVA importances of the study (for the first objective, accuracy), or None and why not."""
    if storage_url is None:
        return None, "no Optuna storage known (the MLflow store is a server): pass --optuna-storage"
    path = sqlite_path(storage_url)
    if path is not None and not path.is_file():
        return None, f"no Optuna study: {path} does not exist"
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
    except KeyError:
        return None, f"no Optuna study named {study_name!r} in {storage_url}"
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return (
            None,
            f"Optuna study {study_name!r} has {len(complete)} complete trial(s): importances need 2 or more",
        )
    try:
        imp = optuna.importance.get_param_importances(
            study,
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            target=(lambda t: t.values[0]) if len(study.directions) > 1 else None,
        )
    except (RuntimeError, ValueError) as e:
        return None, f"Optuna importances unavailable: {e}"
    return (
        {k: float(v) for k, v in imp.items()},
        f"fANOVA importance of each parameter for accuracy, Optuna study {study_name!r} ({len(complete)} complete trials; sums to 1 over all searched parameters)",
    )
