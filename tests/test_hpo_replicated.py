"""The replicated HPO-protocol study's tables (issue #29), from a small hand-made export (no
training): per search its selection, test numbers, regret and compute; per protocol the mean,
spread and 95% interval over searches, regret, agreement and compute to a deployable model;
transfer across streams as its own row group; the pilot (one search per protocol) keeps its
one-row-per-search table; and why sensitivity is absent below the stated minimum of trials."""

import json
import math
import statistics

import pytest

from analysis.stats import t_half_width

FORMAT = "pah-export/1"
SEEDS = (2, 3, 4)  # the final seeds, the same for every search
# The selectable configurations: (HN width, lambda_sm)
A, B, C = ("16", "0.5"), ("937", "0.24"), ("64", "0.5")
# protocol -> [(sampler seed, selected configuration, final accuracies on SEEDS)]
SEARCHES = {
    "end_of_training": [
        (0, A, (0.50, 0.52, 0.51)),  # 51
        (1, B, (0.60, 0.62, 0.61)),  # 61: the best on the full stream
        (2, B, (0.59, 0.61, 0.60)),  # 60
    ],
    "first_task": [
        (0, A, (0.50, 0.51, 0.52)),  # 51
        (1, C, (0.55, 0.56, 0.57)),  # 56
        (2, B, (0.61, 0.60, 0.62)),  # 61: ties the best
    ],
    # Its final runs skip the 3 tuning tasks: another stream, regret against its own best only.
    "first_k": [(0, A, (0.55, 0.55, 0.55)), (1, B, (0.57, 0.57, 0.57))],
}
# compute per protocol: search trial-tasks, final-run tasks (3 runs), search and final wall time
COMPUTE = {"end_of_training": (160, 30, 1000, 200), "first_task": (16, 30, 100, 200)}
COMPUTE["first_k"] = (48, 21, 300, 150)


def _record(rid, name, start, params=None, metrics=None, tags=None):
    return {
        "format": FORMAT,
        "run_id": rid,
        "name": name,
        "status": "FINISHED",
        "start_time": start,
        "artifact_uri": "",
        "params": params or {},
        "metrics": metrics or {},
        "tags": tags or {},
    }


def _sweep(pid, name, kind, start, metrics, **tags):
    tags = {"pah.role": "sweep", "sweep": name, "sweep_kind": kind, "method": "pah", **tags}
    return _record(pid, name, start, metrics=metrics, tags=tags)


def _run(rid, parent, sweep, start, config, seed, metrics, skip=0):
    params = {
        "method.name": "pah",
        "run.seed": str(seed),
        "data.dataset": "cifar100",
        "data.n_tasks": "10",
        "data.skip_tasks": str(skip),
        "model.hyper_width": config[0],
        "method.pah.lambda_sm": config[1],
    }
    tags = {"mlflow.parentRunId": parent, "sweep": sweep, "method": "pah"}
    return {
        **_record(rid, rid, start, params, metrics, tags),
        "history": {"avg_acc": {}, "forgetting": {}},
    }


def _study(searches, transfer=True):
    """Sweep and run records: each search (4 finished trials, 1 stopped) and its final sweep."""
    sweeps, runs = [], []
    plan = [(p, *s) for p, ss in searches.items() for s in ss]
    if transfer:  # first_task tuned on CIFAR-100, its selection evaluated on Tiny-ImageNet
        plan.append(("first_task", 7, C, (0.40, 0.42, 0.41)))
    for k, (protocol, seed, config, accs) in enumerate(plan, start=1):
        # ms: a search's parent run starts at `start`, its final sweep's 10^6 s later; their
        # training runs 5 s after their parent's start, the last to end `wall` after it
        start, final_start = k * 10**10, k * 10**10 + 10**9
        moved = transfer and seed == 7
        name = f"hpo-{protocol}-s{seed}"
        trial_tasks, final_tasks, search_wall, final_wall = COMPUTE[protocol]
        sid, fid = f"{name}-p", f"{name}-f"
        sweeps.append(
            _sweep(
                sid,
                name,
                "search",
                start,
                {
                    "compute/trial_tasks": trial_tasks,
                    "compute/trial_seconds": 10.0 * trial_tasks,
                },
                hpo_protocol=protocol,
                sampler_seed=str(seed),
                **({"tune_stream": "cifar100"} if moved else {}),
            )
        )
        for i in range(5):
            metrics = {"val/final_avg_acc": 0.5 + i / 100, "wall_seconds": search_wall - 5 - i}
            metrics = {} if i == 4 else metrics  # stopped early: no wall_seconds either
            runs.append(_run(f"{sid}t{i}", sid, name, start + 5000, config, 1, metrics))
        sweeps.append(
            _sweep(
                fid,
                f"{name}-final",
                "final",
                final_start,
                {
                    "compute/trial_tasks": final_tasks,
                    "compute/trial_seconds": 10.0 * final_tasks,
                },
                hpo_protocol=protocol,
                selected_from=name,
                selected_trial="t0",
                selected_val_avg_acc="0.540000",
                **({"eval_stream": "tinyimagenet"} if moved else {}),
            )
        )
        skip = 3 if protocol == "first_k" else 0
        for s, acc in zip(SEEDS, accs, strict=True):
            metrics = {
                "final_avg_acc": acc,
                "final_forgetting": 0.05,
                "wall_seconds": final_wall - 5,
            }
            at = final_start + 5000
            runs.append(_run(f"{fid}{s}", fid, f"{name}-final", at, config, s, metrics, skip))
    return sweeps, runs


def _write(folder, sweeps, runs):
    for sub, records in (("sweeps", sweeps), ("runs", runs)):
        (folder / sub).mkdir(parents=True)
        for r in records:
            (folder / sub / f"{r['run_id']}.json").write_text(json.dumps(r))
    meta = {
        "format": FORMAT,
        "mlflow_uri": "sqlite:///mlflow.db",
        "experiment": "hpo",
        "experiment_id": "1",
        "sweeps": [s["run_id"] for s in sweeps],
        "runs": [r["run_id"] for r in runs],
    }
    (folder / "experiment.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from analysis.export import ExportSource
    from analysis.paper_tables import build

    tmp = tmp_path_factory.mktemp("hpo")
    folder = _write(tmp / "export", *_study(SEARCHES))
    rep = build(None, tmp / "out", source=ExportSource(folder))
    return rep, tmp / "out"


def _tables(report):
    return {t.name: t for t in report[0].tables}


def _ci(values):
    m, sd, h = statistics.fmean(values), statistics.stdev(values), t_half_width(values)
    return f"{m:.2f} ± {sd:.2f} [{m - h:.2f}, {m + h:.2f}]"


def test_one_row_per_search_grouped_by_protocol(report):
    t = _tables(report)["hpo_protocol_searches"]
    assert "hpo_protocols" not in _tables(report)  # replaced by the replicated tables
    assert [(r["protocol"].shown(), r["seed"].shown()) for r in t.rows] == [
        ("end_of_training", "0"),
        ("end_of_training", "1"),
        ("end_of_training", "2"),
        ("first_task", "0"),
        ("first_task", "1"),
        ("first_task", "2"),
        ("first_k", "0"),
        ("first_k", "1"),
        ("first_task, tuned on cifar100, evaluated on tinyimagenet", "7"),
    ]
    # C1, C2, ...: one name per configuration, in order of appearance, its settings in a note
    assert [r["config"].shown() for r in t.rows] == ["C1", "C2", "C2", "C1", "C3", "C2"] + [
        "C1",
        "C2",
        "C3",
    ]
    legend = t.notes[t.rows[1]["config"].notes[0]]
    assert legend == "C2: HN width=937, lambda_sm=0.24"
    # per search: mean ± std [95% CI] over its 3 final seeds
    assert t.rows[0]["acc"].shown() == _ci([50.0, 52.0, 51.0])
    # regret: the best selection on the same stream (61) minus this one, per search
    regrets = [r["regret"].shown() for r in t.rows]
    assert regrets == ["10.00", "0.00", "1.00", "10.00", "5.00", "0.00", "2.00", "0.00", "0.00"]
    # compute: the search's trials, the final runs, both sweeps' wall time, and to deploy:
    # end_of_training's trial-tasks only (its winner trained the stream), the others plus one
    # final run (first_task: 16 + 30 / 3; first_k: 48 + 21 / 3)
    row = t.rows[0]
    assert [row[k].shown() for k in ("trial_tasks", "runs_tasks", "wall", "deploy")] == [
        "160",
        "30",
        "1200",
        "160",
    ]
    assert t.rows[3]["deploy"].shown() == "26" and t.rows[6]["deploy"].shown() == "55"
    # transferred to another stream, end-of-training style counting does not apply: 16 + 10
    assert t.rows[8]["deploy"].shown() == "26"


def test_summary_per_protocol_with_regret_agreement_and_compute(report):
    t = _tables(report)["hpo_protocol_summary"]
    rows = {r["protocol"].shown(): r for r in t.rows}
    eot, ft, fk = rows["end_of_training"], rows["first_task"], rows["first_k"]
    assert eot["n"].shown() == "3" and fk["n"].shown() == "2"
    assert eot["group"].shown() == "Tuned and evaluated on one stream"
    assert eot["acc"].shown() == _ci([51.0, 61.0, 60.0])
    assert ft["acc"].shown() == _ci([51.0, 56.0, 61.0])
    assert eot["forgetting"].mean == pytest.approx(5.0) and eot["forgetting"].std == 0
    # regret, mean ± std [95% CI] over searches: (10, 0, 1) and (10, 5, 0)
    assert eot["regret"].shown() == _ci([10.0, 0.0, 1.0])
    assert ft["regret"].mean == pytest.approx(5.0) and ft["regret"].std == pytest.approx(5.0)
    assert ft["regret"].half == pytest.approx(4.302653 * 5 / math.sqrt(3), rel=1e-6)
    # first_k is evaluated on tasks 4-10, where no end_of_training selection was: footnoted
    note = " ".join(t.notes[m] for m in fk["regret"].notes)
    assert "cifar100 tasks 4-10" in note and "own best selection only" in note
    assert fk["regret"].shown() == _ci([2.0, 0.0])
    # agreement: end_of_training selected A, B, B; first_task A, C, B
    assert eot["pairs"].shown() == "1/3 identical" and eot["modal"].shown() == "2/3 searches"
    assert ft["pairs"].shown() == "0/3 identical" and ft["modal"].shown() == "1/3 searches"
    assert eot["reference"].shown() == "—"
    assert ft["reference"].shown() == "2/3 seeds"  # same choice with sampler seeds 0 and 2
    assert fk["reference"].shown() == "2/2 seeds"
    # compute totals over the searches, and the mean to a deployable model
    assert [eot[k].shown() for k in ("trial_tasks", "trial_seconds", "runs_tasks", "wall")] == [
        "480",
        "4800",
        "90",
        "3600",
    ]
    assert eot["deploy"].mean == 160 and ft["deploy"].mean == pytest.approx(26.0)
    assert ft["deploy"].bold and not eot["deploy"].bold  # cheapest to a deployable model
    # transfer across streams: its own row group, a single search (no spread)
    moved = t.rows[-1]
    assert moved["group"].shown() == "Protocol transfer across streams"
    assert moved["protocol"].shown() == "first_task, tuned on cifar100, evaluated on tinyimagenet"
    assert moved["n"].shown() == "1" and moved["acc"].std is None
    assert "a single search" in t.notes[moved["acc"].notes[0]]


def test_protocols_on_one_stream_are_compared_paired_by_sampler_seed(report):
    """first_task and end_of_training select on one stream: their difference per sampler seed
    (51-51, 56-61, 61-60), with its t-interval and whether it resolves; first_k and the
    transfer evaluate on streams of their own, so they get no row."""
    from analysis.stats import paired

    t = _tables(report)["hpo_protocol_differences"]
    assert [r["comparison"].shown() for r in t.rows] == ["first_task − end_of_training"]
    row = t.rows[0]
    diffs = [0.0, -5.0, 1.0]
    d = paired(dict(enumerate(diffs)), dict.fromkeys(range(3), 0.0))
    assert row["n"].shown() == "3"
    assert row["acc"].mean == pytest.approx(statistics.fmean(diffs))
    assert row["acc"].shown() == d.interval()
    assert row["acc:signs"].shown() == "1/3 < 0"
    assert row["deploy"].shown() == "-134 [-134, -134]"  # 26 - 160 for every seed
    assert row["verdict"].shown() == "accuracy: not resolved; forgetting: not resolved"
    assert not d.resolved


def test_a_single_paired_search_gives_no_interval_and_says_why(tmp_path):
    from analysis.export import ExportSource
    from analysis.hpo_protocols import protocol_tables

    searches = {"end_of_training": SEARCHES["end_of_training"], "first_task": [(1, C, (0.5,) * 3)]}
    folder = _write(tmp_path / "export", *_study(searches, transfer=False))
    tables = {t.name: t for t in protocol_tables(ExportSource(folder).experiment())}
    (row,) = tables["hpo_protocol_differences"].rows
    assert row["n"].shown() == "1" and row["acc"].shown() == "-11.00"  # 50 - 61, seed 1 only
    assert row["verdict"].shown() == (
        "accuracy: n/a (fewer than 2 paired searches); forgetting: n/a (fewer than 2 paired "
        "searches)"
    )


def test_the_study_at_a_glance_one_panel_per_evaluation_stream(report, monkeypatch):
    """hpo_protocols.png: accuracies of different streams are never on one axis; per panel one
    point per search (its final runs' mean) and one diamond per protocol (the mean over
    searches) at the mean cost to a deployable model."""
    import matplotlib

    matplotlib.use("Agg")
    from analysis import figures
    from analysis.export import ExportSource
    from analysis.hpo_compare import protocol_figures

    assert (report[1] / "figures" / "hpo_protocols.png").is_file()
    shown = []
    monkeypatch.setattr(figures, "save", lambda fig, *a, **k: shown.append(fig) or [])
    exp = ExportSource(report[1].parent / "export").experiment()
    protocol_figures(exp, report[1] / "again")
    (fig,) = shown
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["cifar100 tasks 1-10", "cifar100 tasks 4-10", "tinyimagenet"]
    full = fig.axes[0]
    legend = [t.get_text() for t in full.get_legend().get_texts()]
    assert legend == ["end_of_training (n = 3)", "first_task (n = 3)"]
    diamonds = [
        line for line in full.get_lines() if line.get_marker() == "D"
    ]  # the means over searches: (51 + 61 + 60) / 3 at 160 tasks, (51 + 56 + 61) / 3 at 26
    got = sorted((line.get_xdata()[0], round(line.get_ydata()[0], 6)) for line in diamonds)
    assert got == [(26.0, round(56.0, 6)), (160.0, round(172 / 3, 6))]


def test_wall_time_ends_at_the_last_runs_end_and_a_resumed_search_says_it_paused(tmp_path):
    """With MLflow end times in the export (trials log no wall_seconds), a sweep's wall time ends
    where its last run ended; a search with an interrupted trial (resumed later) is footnoted,
    its wall time spanning the pause."""
    from analysis.export import ExportSource
    from analysis.hpo_protocols import protocol_tables

    sweeps, runs = _study({"end_of_training": SEARCHES["end_of_training"][:2]}, transfer=False)
    search = next(s for s in sweeps if s["name"] == "hpo-end_of_training-s0")
    trials = [r for r in runs if r["tags"]["sweep"] == "hpo-end_of_training-s0"]
    for r in trials:
        r["end_time"] = r["start_time"] + 7_000  # 7 s after the trials' start, 12 after the parent
    trials[0]["tags"]["pah.interrupted"] = "true"
    folder = _write(tmp_path / "export", sweeps, runs)
    tables = {t.name: t for t in protocol_tables(ExportSource(folder).experiment())}
    t = tables["hpo_protocol_searches"]
    first, second = t.rows
    final_wall = 200  # the final sweep's, from start + wall_seconds (no end times there)
    assert first["wall"].shown() == f"{12 + final_wall}"
    assert search["start_time"] + 12_000 == trials[0]["end_time"]
    assert "interrupted and resumed later" in t.notes[first["wall"].notes[0]]
    assert not second["wall"].notes  # not interrupted: start + wall_seconds as before
    summary = tables["hpo_protocol_summary"].rows[0]
    assert summary["wall"].notes


def test_sensitivity_absent_below_the_minimum_says_why(report):
    from pah_core.metrics import MIN_TRIALS_FOR_IMPORTANCE, MIN_TRIALS_FOR_SENSITIVITY

    t = _tables(report)["hpo_protocol_summary"]
    sentence = (
        f"from {MIN_TRIALS_FOR_SENSITIVITY} and {MIN_TRIALS_FOR_IMPORTANCE} finished trials; "
        "9 of the 9 searches here finished fewer (4), so theirs are absent"
    )
    assert any(sentence in n for n in t.notes.values())
    md = (report[1] / "report.md").read_text()
    assert sentence in md
    # each search's own sensitivity table: no rank correlation, no importance, and why
    sens = _tables(report)["sensitivity_hpo-first_task-s0"]
    cell = sens.cell("HN width", "importance")
    assert cell.shown() == "n/a"
    assert sens.notes[cell.notes[0]].startswith(
        f"Optuna importance n/a: 4 finished trial(s); importances are shown from "
        f"{MIN_TRIALS_FOR_IMPORTANCE}"
    )
    rho = sens.cell("HN width", "rho_acc")
    assert (
        f"rank correlations are shown from {MIN_TRIALS_FOR_SENSITIVITY}" in sens.notes[rho.notes[0]]
    )


def test_replicated_tables_are_written_in_every_format(report):
    out = report[1]
    for name in ("hpo_protocol_searches", "hpo_protocol_summary", "hpo_protocol_differences"):
        for ext in ("md", "tex", "csv", "json"):
            assert (out / f"{name}.{ext}").is_file(), (name, ext)
    md = (out / "report.md").read_text()
    assert "### HPO protocols replicated" in md and "Protocol transfer across streams" in md


def test_a_pilot_keeps_its_one_row_per_search_table(tmp_path):
    """One search per protocol: no spread to report, the pilot's table as before, no figure."""
    from analysis.export import ExportSource
    from analysis.hpo_compare import protocol_figures
    from analysis.hpo_protocols import protocol_tables

    pilot = {p: s[:1] for p, s in SEARCHES.items()}
    folder = _write(tmp_path / "export", *_study(pilot, transfer=False))
    tables = protocol_tables(ExportSource(folder).experiment())
    assert [t.name for t in tables] == ["hpo_protocols"]
    assert protocol_figures(ExportSource(folder).experiment(), tmp_path / "figures") == []
    assert [r["protocol"].shown() for r in tables[0].rows] == [
        "end_of_training",
        "first_task",
        "first_k",
    ]
