"""HPO protocols compared (issue #13): for each search whose selected configuration was re-run on
fresh seeds (``--final-seeds``), what it selected, on which validation score, what the selection
gives on test over the final seeds, and the compute the search spent; as in Lee, Hellan, Ericsson,
Crowley and Storkey, "Hyperparameter Selection in Continual Learning" (arXiv 2404.06466)."""

from __future__ import annotations

import statistics

from pah_core.methods import param_label

from .hpo_compare import differences_table
from .hpo_replicated import (
    MIN_REPLICATES,
    REFERENCE_PROTOCOL,
    SAME_STREAM_GROUP,
    TRANSFER_GROUP,
    Selection,
    agreement_pairs,
    comparable_pairs,
    modal_share,
    reference_agreement,
    regrets,
    replicated,
    selections,
    sensitivity_sentence,
)
from .sensitivity import search_keys
from .stats import t_half_width
from .store import Experiment, RunRecord, children
from .tables import DASH, Cell, Column, Table, provenance, stat


def _config_text(search: RunRecord | None, trial: RunRecord | None, keys: list[str]) -> str:
    """The selected settings: every searched key the search's parent run records (``best.*``
    tags), else ``keys`` from the selected trial's params."""
    if search is not None and any(k.startswith("best.") for k in search.tags):
        chosen = {k[5:]: v for k, v in sorted(search.tags.items()) if k.startswith("best.")}
    elif trial is not None:
        chosen = {k: trial.params[k] for k in keys if k in trial.params}
    else:
        return DASH
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in chosen.items()) or DASH


def protocol_tables(exp: Experiment) -> list[Table]:
    """The replicated tables (one row per search, grouped by protocol; one row per protocol) when
    some protocol has ``MIN_REPLICATES`` searches, else the one-row-per-search table (a pilot)."""
    sels = selections(exp)
    if not replicated(sels):
        single = protocol_table(exp)
        return [] if single is None else [single]
    tables = [searches_table(exp, sels), summary_table(exp, sels)]
    pairs = comparable_pairs(sels)
    return tables + ([differences_table(exp, sels, pairs)] if pairs else [])


def protocol_table(exp: Experiment) -> Table | None:
    """One row per search with final runs; None when the experiment has none."""
    # A method comparison's final runs have their own tables (analysis/comparison.py).
    finals = {
        pid: p
        for pid, p in exp.sweeps.items()
        if p.tags.get("sweep_kind") == "final" and "comparison" not in p.tags
    }
    if not finals:
        return None
    t = Table(
        "hpo_protocols",
        "HPO protocols: the configuration each selected on validation data, and its test numbers "
        "over fresh seeds (%)",
        [
            Column("protocol", "Protocol"),
            Column("search", "Search"),
            Column("selected", "Selected configuration"),
            # Not ranked: protocols validate and test on different tasks (first_task on task 1,
            # first_k's final runs on the tasks after k), so a bold "best" would compare unlike.
            Column("val", "Val acc"),
            Column("acc", "Test acc"),
            Column("forgetting", "Test forg"),
            Column("n", "n"),
            Column("tasks", "Trial-tasks ↓", "min"),
            Column("seconds", "Trial time (s) ↓", "min"),
        ],
    )
    used: list[RunRecord] = []
    by_name = {p.sweep or p.name: pid for pid, p in exp.sweeps.items()}
    for fid, final in finals.items():
        runs = children(exp, [fid])
        used += runs
        t.add(_protocol_row(t, exp, final, runs, by_name))
    t.mark_best()
    t.provenance = provenance(exp, used)
    return t


def _protocol_row(
    t: Table,
    exp: Experiment,
    final: RunRecord,
    runs: list[RunRecord],
    by_name: dict[str, str],
) -> dict[str, Cell | str]:
    """One search's row: what it selected, on which validation score, its final runs' test
    numbers, and the compute the search spent."""
    search_name = final.tags.get("selected_from", "?")
    search = exp.sweeps.get(by_name.get(search_name, ""))
    trials = children(exp, [by_name[search_name]]) if search_name in by_name else []
    chosen = next(
        (r for r in trials if r.tags.get("ray_trial_id") == final.tags.get("selected_trial")),
        None,
    )
    val = final.tags.get("selected_val_avg_acc")
    acc = stat(t, runs, "final_avg_acc")
    acc.notes.append(
        t.note(
            f"{final.sweep or final.name}: trial {final.tags.get('selected_trial', '?')} of "
            f"{search_name}, selected on its {final.tags.get('selected_on', 'validation')} "
            "splits, re-run on fresh seeds"
        )
    )
    metric = (lambda k: None) if search is None else search.metric
    return {
        "protocol": final.tags.get("hpo_protocol", "?"),
        "search": search_name,
        "selected": _config_text(search, chosen, search_keys(search, trials)),
        "val": Cell(mean=100 * float(val)) if val else Cell(text=DASH),
        "acc": acc,
        "forgetting": stat(t, runs, "final_forgetting"),
        "n": Cell(text=str(len(runs)), run_ids=[r.run_id for r in runs]),
        "tasks": _number(metric("compute/trial_tasks"), "{:.0f}"),  # ranked: cost
        "seconds": _number(metric("compute/trial_seconds"), "{:.0f}"),
    }


def _number(v: float | None, fmt: str) -> Cell:
    return Cell(text=DASH) if v is None else Cell(mean=float(v), text=fmt.format(v))


# -- Replicated protocols (issue #29; the data: analysis/hpo_replicated.py) ----------------------


def _over_searches(values: list[float]) -> Cell:
    """Mean ± std [95% t-interval] over searches."""
    if not values:
        return Cell(text=DASH)
    return Cell(
        mean=statistics.fmean(values),
        std=statistics.stdev(values) if len(values) > 1 else None,
        half=t_half_width(values),
        n=len(values),
    )


def _total(values: list[float | None], fmt: str = "{:.0f}") -> Cell:
    """A sum, or a dash where some value is missing."""
    if not values or any(v is None for v in values):
        return Cell(text=DASH)
    s = float(sum(values))
    return Cell(mean=s, text=fmt.format(s))


def _paused(t: Table, cell: Cell, group: list[Selection]) -> Cell:
    """A wall time that spans the pause of an interrupted search, resumed later, says so."""
    resumed = [s.search_name for s in group if s.resumed]
    if resumed:
        cell.notes.append(
            t.note(
                f"{', '.join(resumed)}: interrupted and resumed later, its wall time includes "
                "the pause (STATUS.md gives the time it ran)"
            )
        )
    return cell


def _ratio(k: int, n: int, what: str) -> Cell:
    return Cell(text=DASH, rank=False) if not n else Cell(mean=k / n, text=f"{k}/{n} {what}")


def _config_names(sels: list[Selection]) -> dict[tuple, str]:
    names: dict[tuple, str] = {}
    for s in sels:
        names.setdefault(s.config, f"C{len(names) + 1}")
    return names


def _config_legend(t: Table, name: str, config: tuple) -> str:
    shown = ", ".join(f"{param_label(k)}={_short(v)}" for k, v in config) or "not recorded"
    return t.note(f"{name}: {shown}")


def _short(v: str) -> str:
    try:
        return f"{float(v):.4g}"
    except ValueError:
        return v


def searches_table(exp: Experiment, sels: list[Selection]) -> Table:
    """One row per search, grouped by protocol: its sampler seed, what it selected (C1, C2, ...:
    the same name is the same configuration), its final runs' test numbers, its regret and its
    compute."""
    t = Table(
        "hpo_protocol_searches",
        "HPO protocols, every search: the configuration it selected on validation data, its "
        "test numbers over the final seeds (%), its regret and its compute",
        [
            Column("protocol", "Protocol"),
            Column("replicate", "Replicate"),
            Column("seed", "Sampler seed"),
            Column("search", "Search"),
            Column("config", "Selected"),
            Column("val", "Val acc"),
            Column("acc", "Test acc"),
            Column("forgetting", "Test forg"),
            Column("n", "n"),
            Column("regret", "Regret (pp)"),
            Column("trial_tasks", "Trial-tasks"),
            Column("trial_seconds", "Trial time (s)"),
            Column("runs_tasks", "Final tasks"),
            Column("runs_seconds", "Final time (s)"),
            Column("wall", "Wall time (s)"),
            Column("deploy", "Tasks to deploy"),
        ],
    )
    names = _config_names(sels)
    regret = regrets(sels)
    used: list[RunRecord] = []
    for i, s in enumerate(sels):
        used += s.runs
        val = s.final.tags.get("selected_val_avg_acc")
        config = Cell(text=names[s.config], notes=[_config_legend(t, names[s.config], s.config)])
        t.add(
            {
                "protocol": s.label,
                "replicate": s.replicate,
                "seed": s.seed or DASH,
                "search": s.search_name,
                "config": config,
                "val": Cell(mean=100 * float(val)) if val else Cell(text=DASH),
                "acc": stat(t, s.runs, "final_avg_acc"),
                "forgetting": stat(t, s.runs, "final_forgetting"),
                "n": Cell(text=str(len(s.runs)), run_ids=[r.run_id for r in s.runs]),
                "regret": Cell(mean=regret[i], text=f"{regret[i]:.2f}")
                if i in regret
                else Cell(text=DASH),
                "trial_tasks": _number(s.metric("search", "compute/trial_tasks"), "{:.0f}"),
                "trial_seconds": _number(s.metric("search", "compute/trial_seconds"), "{:.0f}"),
                "runs_tasks": _number(s.metric("final", "compute/trial_tasks"), "{:.0f}"),
                "runs_seconds": _number(s.metric("final", "compute/trial_seconds"), "{:.0f}"),
                "wall": _paused(t, _number(s.wall(), "{:.0f}"), [s]),
                "deploy": _number(s.deploy_cost("compute/trial_tasks"), "{:.0f}"),
            }
        )
    _compute_notes(t, sels)
    t.provenance = provenance(exp, used)
    return t


def _compute_notes(t: Table, sels: list[Selection]) -> None:
    t.note(
        "Regret: the best mean test accuracy of any search's selection evaluated on the same "
        "stream and final seeds, minus this one's (percentage points; 0: the best)"
    )
    t.note(
        "Trial-tasks and trial time: what the search's trials trained (compute/trial_tasks, "
        "compute/trial_seconds of its parent run); final tasks and time: its selection's final "
        "runs; wall time: the search's and the final sweep's, each from its parent run's start to its "
        "last training run's end (start + wall_seconds)"
    )
    t.note(
        "Tasks to deploy: what one deployable model cost, the trial-tasks plus one final run's "
        f"tasks; {REFERENCE_PROTOCOL} counts its trial-tasks only (its winning trial trained the "
        "whole stream already: its final runs are evaluation on fresh seeds, not needed to deploy)"
    )
    if len({s.seeds for s in sels if not s.transfer}) > 1:
        t.note("the final seeds differ between searches: regret compares means over other seeds")
    if any(s.wall() is None for s in sels):
        t.note("wall time —: a sweep without start times or training runs")


def summary_table(exp: Experiment, sels: list[Selection]) -> Table:
    """One row per protocol (transfer across streams as its own row group): n searches; mean ±
    std [95% CI] over searches of the selection's test accuracy, forgetting and regret; how often
    its searches agree, with each other and with the reference protocol's search of the same
    sampler seed; and the compute, in total and to a deployable model."""
    t = Table(
        "hpo_protocol_summary",
        "HPO protocols replicated: over independent searches (sampler seeds), mean ± std [95% CI] "
        "of the selection's test numbers (%) and regret (pp); agreement; compute",
        [
            Column("group", "Group"),
            Column("protocol", "Protocol"),
            Column("n", "Searches"),
            # Not ranked: first_k and a transfer row test on other tasks than the rest.
            Column("acc", "Test acc"),
            Column("forgetting", "Test forg"),
            Column("regret", "Regret (pp)"),
            Column("pairs", "Same config (pairs)"),
            Column("modal", "Modal config"),
            Column("reference", f"Same as {REFERENCE_PROTOCOL} (sampler seed)"),
            Column("trial_tasks", "Trial-tasks"),
            Column("trial_seconds", "Trial time (s)"),
            Column("runs_tasks", "Final tasks"),
            Column("runs_seconds", "Final time (s)"),
            Column("wall", "Wall time (s)"),
            Column("deploy", "Tasks to deploy ↓", "min"),
        ],
    )
    regret = regrets(sels)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(sels):
        groups.setdefault(s.label, []).append(i)
    for label, idx in groups.items():
        t.add(_summary_row(t, label, idx, sels, regret))
    t.note(
        "Test acc, Test forg: each search's selection's mean over its final runs, then mean ± std "
        "[95% t-interval] over the searches; Regret likewise (per search: the best selection on "
        "the same stream minus this one, pp)"
    )
    t.note(
        "Same config: pairs of this protocol's searches that selected identical settings (as the "
        "final runs trained them); Modal config: searches that selected the most common one; "
        f"Same as {REFERENCE_PROTOCOL}: sampler seeds where this protocol's search selected what "
        f"{REFERENCE_PROTOCOL}'s search with that seed did"
    )
    _compute_notes(t, sels)
    t.note(
        "Compute: totals over the protocol's searches; Tasks to deploy: mean ± std over searches"
    )
    t.note(sensitivity_sentence(sels))
    t.mark_best()
    t.provenance = provenance(exp, [r for s in sels for r in s.runs])
    return t


def _summary_row(
    t: Table, label: str, idx: list[int], sels: list[Selection], regret: dict[int, float]
) -> dict[str, Cell | str]:
    """One protocol's row of the summary: the selections at positions ``idx`` of ``sels``."""
    group = [sels[i] for i in idx]
    configs = [s.config for s in group]
    cells = {
        "acc": _over_searches([s.acc for s in group if s.acc is not None]),
        "forgetting": _over_searches([s.forgetting for s in group if s.forgetting is not None]),
        "regret": _over_searches([regret[i] for i in idx if i in regret]),
    }
    if len(group) < MIN_REPLICATES:
        cells["acc"].notes.append(
            t.note("a single search: no spread between searches, no interval")
        )
    streams = sorted({s.stream for s in group})
    if group[0].protocol != REFERENCE_PROTOCOL and not group[0].transfer:
        ref_streams = {s.stream for s in sels if s.protocol == REFERENCE_PROTOCOL}
        if ref_streams and not ref_streams & set(streams):
            cells["regret"].notes.append(
                t.note(
                    f"evaluated on {', '.join(streams)}, which no {REFERENCE_PROTOCOL} "
                    "selection was: regret against this protocol's own best selection only, "
                    "and its test numbers are not comparable with the other rows'"
                )
            )
    ref = reference_agreement(group, sels)
    return {
        "group": TRANSFER_GROUP if group[0].transfer else SAME_STREAM_GROUP,
        "protocol": label,
        "n": Cell(text=str(len(group)), run_ids=[r.run_id for s in group for r in s.runs]),
        **cells,
        "pairs": _ratio(*agreement_pairs(configs), "identical"),
        "modal": _ratio(*modal_share(configs), "searches"),
        "reference": Cell(text=DASH) if ref is None else _ratio(*ref, "seeds"),
        "trial_tasks": _total([s.metric("search", "compute/trial_tasks") for s in group]),
        "trial_seconds": _total([s.metric("search", "compute/trial_seconds") for s in group]),
        "runs_tasks": _total([s.metric("final", "compute/trial_tasks") for s in group]),
        "runs_seconds": _total([s.metric("final", "compute/trial_seconds") for s in group]),
        "wall": _paused(t, _total([s.wall() for s in group]), group),
        "deploy": _over_searches(
            [d for s in group if (d := s.deploy_cost("compute/trial_tasks")) is not None]
        ),
    }
