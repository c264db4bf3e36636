"""The HPO protocols replicated (issue #29): several independent searches per protocol (sampler
seeds), each followed by its selection's final runs. Per search its selection, test numbers, regret
and compute; per protocol the spread over searches of what a search selects, its regret against the
best selection any search found on the same stream, how often searches agree, and the compute to a
deployable model. A pilot (one search per protocol) keeps hpo_protocols.protocol_table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from pah_core.methods import searched_keys
from pah_core.metrics import MIN_TRIALS_FOR_IMPORTANCE, MIN_TRIALS_FOR_SENSITIVITY

from .sensitivity import selection_keys
from .store import Experiment, RunRecord, children

# The protocols in row order (pah_sweep.cli.HPO_PROTOCOLS'); any other after them, by name.
PROTOCOL_ORDER = ("end_of_training", "first_task", "first_k", "first_k_reordered")
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

    def wall(self) -> float | None:
        """The search's and the final sweep's wall-clock seconds (``wall_span``)."""
        spans = [wall_span(self.search, self.trials), wall_span(self.final, self.runs)]
        return None if None in spans else sum(spans)

    def metric(self, which: str, key: str) -> float | None:
        sweep = self.search if which == "search" else self.final
        return None if sweep is None else sweep.metric(key)

    @property
    def resumed(self) -> bool:
        """The search was interrupted and resumed later: its wall time includes the pause."""
        return any(r.tags.get("pah.interrupted") for r in self.trials)

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


def wall_span(parent: RunRecord | None, runs: list[RunRecord]) -> float | None:
    """A sweep's wall-clock seconds: from its parent run's start to the end of its last training
    run (its MLflow end time; in an export made before end times were kept, its start plus its
    ``wall_seconds``, or its start for a trial, which logs none)."""
    ends = [
        r.end_time / 1000 if r.end_time else r.start_time / 1000 + (r.metric("wall_seconds") or 0)
        for r in runs
        if r.start_time
    ]
    if parent is None or not parent.start_time or not ends:
        return None
    return max(ends) - parent.start_time / 1000


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


def comparable_pairs(sels: list[Selection]) -> list[tuple[str, str]]:
    """Pairs of protocols (labels, later minus earlier in row order) whose selections were
    evaluated on one stream: only there is a difference in test numbers a difference between
    protocols (first_k and a transfer evaluate on streams of their own)."""
    streams: dict[str, set[str]] = {}
    for s in sels:
        streams.setdefault(s.label, set()).add(s.stream)
    labels = list(streams)
    return [
        (b, a) for i, a in enumerate(labels) for b in labels[i + 1 :] if streams[a] & streams[b]
    ]


def by_sampler_seed(sels: list[Selection], label: str, value: str) -> dict[str, float]:
    """``label``'s selections' ``value`` (an attribute: acc, forgetting) per sampler seed, the
    unit a protocol difference pairs on (searches with one seed start from the same trials)."""
    out = {}
    for s in sels:
        if s.label == label and s.seed is not None and (v := getattr(s, value)) is not None:
            out[s.seed] = v
    return out


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
