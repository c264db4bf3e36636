"""Tables as data: cells that know their runs, footnotes, provenance; the names, statistics and
notes every table shares. The tables themselves: main_table.py, ablations.py, sensitivity.py;
rendering: render.py.

Numbers are in % (accuracy and forgetting as fractions in MLflow, times 100). A mean +- std is over
runs (seeds); std is the sample standard deviation (ddof = 1), absent for a single run; [low, high]
is the 95% t-interval of the mean (``analysis.stats``). The numbers
of a table come from one ``groupby().agg()`` per metric (``group_stats``), the footnotes and the
provenance from the runs behind each cell.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pah_core.config import KEYS_ADDED, RUN_ONLY_KEYS, own_method_keys

from .stats import t_half_width
from .store import Experiment, RunRecord, short_id

PAPER_FILE = Path(__file__).with_name("paper_reported.yaml")
NA = "n/a"
DASH = "—"

# Main-table rows of a baselines sweep's variant that is not plainly a method (row_key).
VARIANT_NAMES = {"pah_official": "PAH, official code"}
DATASET_NAMES = {"cifar100": "S-CIFAR100", "tinyimagenet": "TinyImageNet", "synthetic": "Synthetic"}
# Config keys that may differ between the seeds of one table row without changing what it means.
FREE_KEYS = RUN_ONLY_KEYS | {"run.seed"}


def method_name(m: str) -> str:
    """The display name of a method (its class's ``label``) or of a main-table row key (see
    row_key); a name no method or variant knows is shown as it is."""
    from pah_core.methods import registered_methods

    cls = registered_methods().get(m)
    return VARIANT_NAMES.get(m) or (cls.label or cls.name if cls else m)


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
    half: float | None = None  # half-width of the mean's 95% t-interval
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
        text = f"{self.mean:.2f} ± {self.std:.2f}"
        if self.half is not None:
            text += f" [{self.mean - self.half:.2f}, {self.mean + self.half:.2f}]"
        return text


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
        mean=("value", statistics.fmean),
        std=("value", _stdev),
        half=("value", lambda v: t_half_width(list(v))),
        n=("value", "count"),
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
        cell.half = None if pd.isna(row["half"]) else float(row["half"])
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


@dataclass(frozen=True)
class Metric:
    """A column of final numbers, declared once: the metric as logged (its producer is
    ``pah_core.metrics.final_metrics``), the column's key and header, which way is better, and,
    for a metric added later, what older runs predate (they show n/a with a note, not a gap)."""

    key: str
    short: str
    header: str
    better: str | None = None
    since: str | None = None


# The final-number columns of the main, ablation and comparison tables, in order: a new column is
# one entry here.
METRICS = (
    Metric("final_avg_acc", "acc", "Acc ↑", "max"),
    Metric("final_forgetting", "forgetting", "Forg ↓", "min"),
    Metric(
        "final_cil_avg_acc",
        "cil",
        "CIL ↑",
        "max",
        since="the task-agnostic evaluation existed (pah-platform, November 2026)",
    ),
)
CIL_KEY = "final_cil_avg_acc"


def metric_stats(groups: list[list[RunRecord]]) -> dict[str, pd.DataFrame]:
    """``group_stats`` of every column in ``METRICS``, by metric key."""
    return {m.key: group_stats(groups, m.key) for m in METRICS}


def metric_cell(
    table: Table,
    runs: list[RunRecord],
    metric: Metric,
    stats: dict[str, pd.DataFrame] | None = None,
    i: int = 0,
) -> Cell:
    """``stat`` of ``metric``; "n/a" with a note where every finished run predates the metric."""
    finished = [r for r in runs if r.metric("final_avg_acc") is not None]
    if metric.since and finished and all(r.metric(metric.key) is None for r in finished):
        note = f"{metric.header.split()[0]} n/a: runs made before {metric.since}"
        return Cell(text=NA, notes=[table.note(note)])
    return stat(table, runs, metric.key, None if stats is None else stats[metric.key], i)


def config_note(table: Table, runs: list[RunRecord]) -> list[str]:
    """A footnote when the runs pooled into one row differ in anything but the seed (or repeat a seed)."""
    notes = []
    # Other methods' options are no part of a run (older runs logged every method's section).
    keys = set().union(*(own_method_keys(r.params) for r in runs)) - FREE_KEYS if runs else set()
    keys |= set(PROTOCOL_KEYS_ADDED) & keys

    def value(r: RunRecord, k: str) -> str | None:
        return r.params.get(k, PROTOCOL_KEYS_ADDED.get(k))

    differ = sorted(k for k in keys if len({value(r, k) for r in runs}) > 1)
    if differ:
        shown = ", ".join(differ[:6]) + (f" (+{len(differ) - 6} more)" if len(differ) > 6 else "")
        notes.append(table.note(f"the runs pooled in this row differ in {shown}"))
    seeds = [r.seed for r in runs]
    if len(set(seeds)) < len(seeds):
        notes.append(table.note("the same seed appears more than once in this row"))
    return notes


# Keys whose value changes what a number means, footnoted where the rows of one table differ in
# them: the protocol keys and how the test set is evaluated.
ROW_KEYS_EXPLAINED = {
    "schedule.eval_bn": {
        "train": "BatchNorm batch statistics at test, per task batch (transductive, as the "
        "official code)",
        "eval": "BatchNorm running statistics at test",
    },
    "data.split_seed": {
        "run": "the run seed draws the validation split and prototype images",
        "order_seed": "one split for every seed (data.order_seed)",
    },
}


def row_protocol_notes(table: Table, rows: list[tuple[Cell, list[RunRecord]]]) -> None:
    """Footnote every protocol key (``PROTOCOL_KEYS``, ``schedule.eval_bn``, the validation
    fraction) on which the rows of ``table`` differ: each row whose value is not the most common
    one gets a note naming its value and the others', on its first cell in ``rows``."""
    keys = [*PROTOCOL_KEYS, "schedule.eval_bn", "data.val_fraction"]

    def values(runs: list[RunRecord], k: str) -> str:
        got = sorted({str(r.params.get(k, PROTOCOL_KEYS_ADDED.get(k, "?"))) for r in runs})
        return "/".join(got)

    for k in keys:
        per_row = [values(runs, k) for _, runs in rows if runs]
        if len(set(per_row)) < 2:
            continue
        common = max(set(per_row), key=per_row.count)
        for cell, runs in rows:
            if not runs or (v := values(runs, k)) == common:
                continue
            why = ROW_KEYS_EXPLAINED.get(k, {}).get(v)
            cell.notes.append(
                table.note(f"{k}={v} in this row{f' ({why})' if why else ''}; {common} elsewhere")
            )


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
    "data.skip_tasks",
    "data.split_seed",
)
# Config keys added after runs were logged without them, with the value such a run ran under, as
# the run's params would show it (pah_core.config.KEYS_ADDED).
PROTOCOL_KEYS_ADDED = {k: str(v) for k, v in KEYS_ADDED.items()}
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

    added = PROTOCOL_KEYS_ADDED

    def shown(key: str, value: str) -> str:  # None means "every image" or "every task" there
        return "all" if value == "None" and key != "model.pretrained" else value

    differ = []
    for k, v in want.items():
        got = sorted({r.params.get(k, added.get(k, "?")) for r in runs})
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


def data_time(runs: Iterable[RunRecord]) -> str:
    """When the newest of ``runs`` started (UTC): a table's date that depends on its data only, so
    that tables rebuilt from the same export are byte-identical."""
    starts = [r.start_time for r in runs if r.start_time]
    if not starts:
        return "n/a"
    return "data as of " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(max(starts) / 1000))


def provenance(exp: Experiment, runs: Iterable[RunRecord], extra: dict[str, Any] | None = None):
    runs = list(runs)
    return {
        "mlflow_uri": exp.uri,
        "experiment": exp.name,
        "run_ids": sorted({r.run_id for r in runs}),  # a run in two rows of a table counts once
        "git_sha": sorted({r.tags.get("git_sha", "unknown") for r in runs}),
        "dataset_fingerprint": sorted({r.tags.get("dataset_fingerprint", "unknown") for r in runs}),
        "generated": data_time(runs),
        **(extra or {}),
    }


# On an ablation sweep's parent run: "<sweep>:<variant>", the runs that are its "full" (base)
# configuration, trained in another sweep of the experiment (sweeps/reproduce.py: the main part's
# pah runs) instead of a second time as the ablation's own "full" variant.
FULL_FROM_TAG = "pah.ablation_full_from"
