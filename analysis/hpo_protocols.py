"""HPO protocols compared (issue #13): for each search whose selected configuration was re-run on
fresh seeds (``--final-seeds``), what it selected, on which validation score, what the selection
gives on test over the final seeds, and the compute the search spent; as in Lee, Hellan, Ericsson,
Crowley and Storkey, "Hyperparameter Selection in Continual Learning" (arXiv 2404.06466)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from pah_core.methods import param_label, searched_keys
from pah_core.metrics import MIN_TRIALS_FOR_IMPORTANCE, MIN_TRIALS_FOR_SENSITIVITY

from .sensitivity import search_keys, selection_keys
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


# -- Replicated protocols (issue #29) -------------------------------------------------------------
# Several independent searches per protocol (sampler seeds), each followed by its selection's final
# runs: per protocol the spread of what a search selects, its regret against the best selection
# any search found, how often searches agree, and the compute to a deployable model.

# The protocols in row order (pah_sweep.cli.HPO_PROTOCOLS'); any other after them, by name.
PROTOCOL_ORDER = ("end_of_training", "first_task", "first_k")
# The protocol the others' selections are compared with (same sampler seed): the costly one.
REFERENCE_PROTOCOL = "end_of_training"
# On a final sweep's parent run: the stream its runs evaluate on, when it is not the stream the
# search tuned on (protocol transfer across streams: tune on one stream, evaluate on a disjoint
# one); on the search's parent, ``tune_stream`` may name the stream it tuned on.
EVAL_STREAM_TAG = "eval_stream"
TUNE_STREAM_TAG = "tune_stream"
# On a search's parent run: which replicate of its protocol it is (else its sampler seed says).
REPLICATE_TAG = "replicate"
SAMPLER_SEED_TAG = "sampler_seed"  # pah_sweep.search tags every search's parent with it
# On a search's and a final sweep's parent run: the sweep's wall-clock seconds, start to end.
WALL_SECONDS = "compute/wall_seconds"
# A protocol with this many searches makes the replicated tables (else the one-row-per-search one).
MIN_REPLICATES = 2
TRANSFER_GROUP = "Protocol transfer across streams"
SAME_STREAM_GROUP = "Tuned and evaluated on one stream"


@dataclass
class Selection:
    """One search and the final runs of its selection: what the replicated tables are made of."""

    protocol: str
    transfer: bool  # the final runs evaluate on another stream than the search tuned on
    stream: str  # the stream the final runs evaluate on: regret compares only within one
    search_name: str
    search: RunRecord | None
    final: RunRecord
    runs: list[RunRecord]
    trials: list[RunRecord]
    config: tuple[tuple[str, str], ...]  # the selected method settings, as the final runs ran them
    acc: float | None  # % over the final runs
    forgetting: float | None

    @property
    def label(self) -> str:
        if not self.transfer:
            return self.protocol
        tuned = (self.search.tags.get(TUNE_STREAM_TAG) if self.search else None) or "?"
        return f"{self.protocol}, tuned on {tuned}, evaluated on {self.stream}"

    @property
    def seed(self) -> str | None:
        """The sampler seed: searches of two protocols with the same one start from the same
        random trials."""
        return None if self.search is None else self.search.tags.get(SAMPLER_SEED_TAG)

    @property
    def replicate(self) -> str:
        tags = self.search.tags if self.search is not None else {}
        return tags.get(REPLICATE_TAG) or tags.get(SAMPLER_SEED_TAG) or "?"

    @property
    def seeds(self) -> frozenset[str]:
        return frozenset(r.seed or "?" for r in self.runs)

    def metric(self, which: str, key: str) -> float | None:
        sweep = self.search if which == "search" else self.final
        return None if sweep is None else sweep.metric(key)

    @property
    def trained_by_search(self) -> bool:
        """The selection is a deployable model already: end-of-training HPO's winning trial
        trained the whole stream it is evaluated on (not so when it is evaluated on another)."""
        return self.protocol == REFERENCE_PROTOCOL and not self.transfer

    def deploy_cost(self, key: str) -> float | None:
        """What a deployable model cost (``key``: compute/trial_tasks or _seconds): the search's
        trials, plus one final run (the mean of the final runs) unless the search trained it."""
        trials = self.metric("search", key)
        if trials is None or self.trained_by_search:
            return trials
        final = self.metric("final", key)
        return None if final is None or not self.runs else trials + final / len(self.runs)


def _mean_metric(runs: list[RunRecord], key: str) -> float | None:
    values = [100 * v for r in runs if (v := r.metric(key)) is not None]
    return statistics.fmean(values) if values else None


def _stream(final: RunRecord, runs: list[RunRecord]) -> str:
    """The stream final runs evaluate on: their final sweep's ``eval_stream`` tag, else their
    dataset and tasks (first_k's final runs skip the tuning tasks: another stream)."""
    if final.tags.get(EVAL_STREAM_TAG):
        return final.tags[EVAL_STREAM_TAG]
    if not runs:
        return "?"
    r = runs[0]
    skip = int(r.params.get("data.skip_tasks") or 0)
    n = r.params.get("schedule.max_tasks")
    n = r.params.get("data.n_tasks", "?") if n in (None, "None") else n
    return f"{r.dataset} tasks {skip + 1}-{n}"


def _identity(search: RunRecord | None, runs: list[RunRecord]) -> tuple[tuple[str, str], ...]:
    """The selected configuration as the final runs trained it: the method's searched settings
    (a protocol that does not search a setting trains its default: the same key, compared too)."""
    if runs:
        keys = searched_keys(runs[0].method)
        return tuple((k, runs[0].params[k]) for k in keys if k in runs[0].params)
    if search is not None:
        return tuple(sorted((k[5:], v) for k, v in search.tags.items() if k.startswith("best.")))
    return ()


def selections(exp: Experiment) -> list[Selection]:
    """Every final sweep of an HPO search (not a method comparison's) with its search, in row order:
    one stream before transfer, protocols in ``PROTOCOL_ORDER``, replicates by sampler seed."""
    by_name = {p.sweep or p.name: pid for pid, p in exp.sweeps.items()}
    out = []
    for fid, final in exp.sweeps.items():
        if final.tags.get("sweep_kind") != "final" or "comparison" in final.tags:
            continue
        name = final.tags.get("selected_from", "?")
        sid = by_name.get(name)
        runs = children(exp, [fid])
        out.append(
            Selection(
                protocol=final.tags.get("hpo_protocol", "?"),
                transfer=bool(final.tags.get(EVAL_STREAM_TAG)),
                stream=_stream(final, runs),
                search_name=name,
                search=exp.sweeps.get(sid or ""),
                final=final,
                runs=runs,
                trials=children(exp, [sid]) if sid else [],
                config=_identity(exp.sweeps.get(sid or ""), runs),
                acc=_mean_metric(runs, "final_avg_acc"),
                forgetting=_mean_metric(runs, "final_forgetting"),
            )
        )

    def order(s: Selection):
        p = PROTOCOL_ORDER.index(s.protocol) if s.protocol in PROTOCOL_ORDER else 99
        seed = s.replicate
        return (s.transfer, s.stream if s.transfer else "", p, s.protocol, _num_key(seed),
                s.final.start_time or 0)  # fmt: skip

    return sorted(out, key=order)


def _num_key(s: str) -> tuple[int, str]:
    return (int(s), "") if s.lstrip("-").isdigit() else (1 << 30, s)


def replicated(sels: list[Selection]) -> bool:
    """Some protocol has ``MIN_REPLICATES`` searches or more with final runs."""
    counts: dict[str, int] = {}
    for s in sels:
        counts[s.label] = counts.get(s.label, 0) + 1
    return any(n >= MIN_REPLICATES for n in counts.values())


def regrets(sels: list[Selection]) -> dict[int, float]:
    """Per selection (by position): the best mean final accuracy of any selection evaluated on
    the same stream minus its own, in percentage points (0 for the best)."""
    best: dict[str, float] = {}
    for s in sels:
        if s.acc is not None:
            best[s.stream] = max(best.get(s.stream, s.acc), s.acc)
    return {i: best[s.stream] - s.acc for i, s in enumerate(sels) if s.acc is not None}


def agreement_pairs(configs: list[tuple]) -> tuple[int, int]:
    """(pairs of selections with identical configurations, pairs)."""
    pairs = [(a, b) for i, a in enumerate(configs) for b in configs[i + 1 :]]
    return sum(a == b for a, b in pairs), len(pairs)


def modal_share(configs: list[tuple]) -> tuple[int, int]:
    """(selections whose configuration is the most common one, selections)."""
    if not configs:
        return 0, 0
    return max(configs.count(c) for c in configs), len(configs)


def reference_agreement(group: list[Selection], sels: list[Selection]) -> tuple[int, int] | None:
    """(sampler seeds where ``group``'s search selected what the reference protocol's search
    with the same sampler seed, on the same stream, selected; seeds paired); None for the
    reference protocol itself."""
    if not group or group[0].protocol == REFERENCE_PROTOCOL:
        return None
    ref = {
        s.seed: s.config
        for s in sels
        if s.protocol == REFERENCE_PROTOCOL and s.transfer == group[0].transfer and s.seed
    }
    paired = [(s.config, ref[s.seed]) for s in group if s.seed in ref]
    return sum(a == b for a, b in paired), len(paired)


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


def _ratio(k: int, n: int, what: str) -> Cell:
    return Cell(text=DASH, rank=False) if not n else Cell(mean=k / n, text=f"{k}/{n} {what}")


def protocol_tables(exp: Experiment) -> list[Table]:
    """The replicated tables (one row per search, grouped by protocol; one row per protocol) when
    some protocol has ``MIN_REPLICATES`` searches, else the one-row-per-search table (a pilot)."""
    sels = selections(exp)
    if not replicated(sels):
        single = protocol_table(exp)
        return [] if single is None else [single]
    return [searches_table(exp, sels), summary_table(exp, sels)]


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
            Column("final_tasks", "Final tasks"),
            Column("final_seconds", "Final time (s)"),
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
                "final_tasks": _number(s.metric("final", "compute/trial_tasks"), "{:.0f}"),
                "final_seconds": _number(s.metric("final", "compute/trial_seconds"), "{:.0f}"),
                "wall": _total([s.metric("search", WALL_SECONDS), s.metric("final", WALL_SECONDS)]),
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
        "runs; wall time: the search's and the final sweep's, start to end (compute/wall_seconds)"
    )
    t.note(
        "Tasks to deploy: what one deployable model cost, the trial-tasks plus one final run's "
        f"tasks; {REFERENCE_PROTOCOL} counts its trial-tasks only (its winning trial trained the "
        "whole stream already: its final runs are evaluation on fresh seeds, not needed to deploy)"
    )
    if len({s.seeds for s in sels if not s.transfer}) > 1:
        t.note("the final seeds differ between searches: regret compares means over other seeds")
    if any(s.metric("search", WALL_SECONDS) is None for s in sels):
        t.note(f"wall time —: a sweep's parent run has no {WALL_SECONDS} (logged by newer drivers)")


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
            Column("final_tasks", "Final tasks"),
            Column("final_seconds", "Final time (s)"),
            Column("wall", "Wall time (s)"),
            Column("deploy", "Tasks to deploy ↓", "min"),
        ],
    )
    regret = regrets(sels)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(sels):
        groups.setdefault(s.label, []).append(i)
    for label, idx in groups.items():
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
        t.add(
            {
                "group": TRANSFER_GROUP if group[0].transfer else SAME_STREAM_GROUP,
                "protocol": label,
                "n": Cell(text=str(len(group)), run_ids=[r.run_id for s in group for r in s.runs]),
                **cells,
                "pairs": _ratio(*agreement_pairs(configs), "identical"),
                "modal": _ratio(*modal_share(configs), "searches"),
                "reference": Cell(text=DASH) if ref is None else _ratio(*ref, "seeds"),
                "trial_tasks": _total([s.metric("search", "compute/trial_tasks") for s in group]),
                "trial_seconds": _total(
                    [s.metric("search", "compute/trial_seconds") for s in group]
                ),
                "final_tasks": _total([s.metric("final", "compute/trial_tasks") for s in group]),
                "final_seconds": _total(
                    [s.metric("final", "compute/trial_seconds") for s in group]
                ),
                "wall": _total(
                    [s.metric(w, WALL_SECONDS) for s in group for w in ("search", "final")]
                ),
                "deploy": _over_searches(
                    [d for s in group if (d := s.deploy_cost("compute/trial_tasks")) is not None]
                ),
            }
        )
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


def finished_trials(s: Selection) -> int:
    """The search's trials with final numbers on the split it selected on."""
    acc, _, _ = selection_keys(s.trials)
    return sum(r.metric(acc) is not None for r in s.trials)


def sensitivity_sentence(sels: list[Selection]) -> str:
    """Why the searches' sensitivity tables show, or do not show, rank correlations and
    importances: the stated minimums of finished trials against what the searches finished."""
    done = {s.search_name: finished_trials(s) for s in sels}
    below = sorted(n for n in done.values() if n < MIN_TRIALS_FOR_SENSITIVITY)
    rule = (
        f"Sensitivity (Spearman rank correlations) and Optuna parameter importances are shown "
        f"per search, in its sensitivity table, from {MIN_TRIALS_FOR_SENSITIVITY} and "
        f"{MIN_TRIALS_FOR_IMPORTANCE} finished trials"
    )
    if not below:
        return f"{rule}; every search here finished {min(done.values(), default=0)} or more"
    span = f"{below[0]}" if below[0] == below[-1] else f"{below[0]}-{below[-1]}"
    return (
        f"{rule}; {len(below)} of the {len(done)} searches here finished fewer ({span}), so "
        "theirs are absent: below that a rank correlation's 95% interval spans most of [-1, 1] "
        "and importances are noise"
    )
