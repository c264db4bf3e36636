"""analysis/: tables and figures from a real MLflow store of real tiny runs (synthetic data, small CNN).

Every number a table shows is checked against the runs, with means and stds computed here.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess

import numpy as np
import pytest
import scipy.stats

from analysis import paper_tables, store
from analysis.export import portable
from analysis.store import AnalysisError
from analysis.tables import load_paper
from tests.helpers import tiny_config, tiny_stream

EXP = "pah-analysis-test"
BASE_SWEEP = "base-sweep"
ABL_SWEEP = "abl-sweep"
SEARCH_SWEEP = "search-sweep"
SEARCH_POINTS = [  # (width, depth, lambda_sm, lambda_sp, temperature)
    (8, 1, 0.5, 1.0, 2.0),
    (16, 2, 0.05, 3.0, 4.0),
    (32, 1, 2.0, 0.1, 1.5),
    (12, 2, 0.2, 0.5, 6.0),
]


def _train(uri, run_name, overrides, parent=None, tags=None):
    from pah_core.engine import Engine
    from pah_core.mlflow_reporter import MLflowReporter

    cfg = tiny_config("schedule.epochs_per_task=1", *overrides)
    stream = tiny_stream(cfg)
    rep = MLflowReporter(
        tracking_uri=uri,
        experiment=EXP,
        run_name=run_name,
        parent_run_id=parent,
        tags={
            "git_sha": "abc123def456",
            "dataset_fingerprint": stream.spec.fingerprint,
            **(tags or {}),
        },
    )
    Engine(cfg, stream, [rep]).run()
    return rep.run_id


def _parent(client, exp_id, name, kind, **tags):
    return client.create_run(
        exp_id,
        run_name=name,
        tags={"pah.role": "sweep", "sweep": name, "sweep_kind": kind, **tags},
    ).info.run_id


@pytest.fixture(scope="module")
def mlstore(tmp_path_factory):
    """One sqlite store: a baselines sweep (3 methods x seeds), an ablation sweep, a search sweep
    (4 trials + 1 stopped early) with its Optuna study, and a hand-made experiment with gaps."""
    import optuna
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from pah_core.mlflow_reporter import get_or_create_experiment

    tmp = tmp_path_factory.mktemp("mlstore")
    uri = f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp_id = get_or_create_experiment(client, EXP)

    base = _parent(client, exp_id, BASE_SWEEP, "baselines")
    for method, seeds in (("pah", (0, 1, 2)), ("finetune", (0, 1, 2)), ("lwf", (0, 1))):
        for s in seeds:
            _train(
                uri,
                f"{method}-s{s}",
                [f"method.name={method}", f"run.seed={s}"],
                base,
                {"sweep": BASE_SWEEP, "sweep_kind": "baselines", "variant": method},
            )
    abl = _parent(client, exp_id, ABL_SWEEP, "ablation")
    variants = {
        "full": ([], (0, 1)),
        "proto_5": (["model.prototype_size=5"], (0, 1)),
        "init_random": (["model.prototype_init=random"], (0, 1)),
        "ce_only": (["method.pah.use_sm=false", "method.pah.use_sp=false"], (0,)),
    }
    for v, (ov, seeds) in variants.items():
        for s in seeds:
            _train(
                uri,
                f"{v}-s{s}",
                [*ov, f"run.seed={s}"],
                abl,
                {"sweep": ABL_SWEEP, "sweep_kind": "ablation", "variant": v},
            )
    search = _parent(client, exp_id, SEARCH_SWEEP, "search", objectives="acc,forgetting")
    study = optuna.create_study(
        study_name=SEARCH_SWEEP, storage=f"sqlite:///{tmp}/optuna.db", direction="maximize"
    )
    dists = {
        "model.hyper_width": optuna.distributions.IntDistribution(8, 64, log=True),
        "model.hyper_depth": optuna.distributions.IntDistribution(1, 4),
        "method.pah.lambda_sm": optuna.distributions.FloatDistribution(0.01, 10, log=True),
        "method.pah.lambda_sp": optuna.distributions.FloatDistribution(0.01, 10, log=True),
        "method.pah.temperature": optuna.distributions.FloatDistribution(1, 8),
    }
    for i, (w, d, sm, sp, temp) in enumerate(SEARCH_POINTS):
        ov = {
            "model.hyper_width": w,
            "model.hyper_depth": d,
            "method.pah.lambda_sm": sm,
            "method.pah.lambda_sp": sp,
            "method.pah.temperature": temp,
        }
        rid = _train(
            uri,
            f"trial_{i}",
            [f"{k}={v}" for k, v in ov.items()],
            search,
            {"sweep": SEARCH_SWEEP, "sweep_kind": "search"},
        )
        acc = client.get_run(rid).data.metrics["final_avg_acc"]
        study.add_trial(optuna.trial.create_trial(params=ov, distributions=dists, value=acc))
    # a trial ASHA stopped after its first task: no final_* metrics
    stopped = client.create_run(
        exp_id,
        run_name="trial_stopped",
        tags={
            "mlflow.parentRunId": search,
            "sweep": SEARCH_SWEEP,
            "method": "pah",
            "dataset": "synthetic",
            "pah.stopped_early": "asha",
        },
    ).info.run_id
    client.log_param(stopped, "model.hyper_width", "64")
    client.log_batch(stopped, metrics=[Metric("avg_acc", 0.3, 0, 0)])
    client.set_terminated(stopped, status="KILLED")

    # hand-made runs on cifar100 (for the paper-vs-ours delta) with gaps
    gap_id = get_or_create_experiment(client, "gaps")
    vals = {"pah": [(0.70, 0.02), (0.72, None), (0.75, 0.03)], "si": [(None, None)]}
    for method, rows in vals.items():
        for s, (acc, forg) in enumerate(rows):
            r = client.create_run(
                gap_id,
                run_name=f"{method}-{s}",
                tags={"method": method, "dataset": "cifar100", "git_sha": "g"},
            ).info.run_id
            client.log_param(r, "run.seed", str(s))
            ms = [Metric("avg_acc", 0.9, 0, 0)]
            if acc is not None:
                ms.append(Metric("final_avg_acc", acc, 0, 2))
            if forg is not None:
                ms.append(Metric("final_forgetting", forg, 0, 2))
            client.log_batch(r, metrics=ms)
    get_or_create_experiment(client, "empty")
    return {"uri": uri, "tmp": tmp, "client": client, "exp_id": exp_id}


@pytest.fixture(scope="module")
def built(mlstore, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return paper_tables.build(EXP, out, mlflow_uri=mlstore["uri"])


def _table(rep, name):
    (t,) = [t for t in rep.tables if t.name == name]
    return t


def _runs(mlstore, filt):
    return mlstore["client"].search_runs([mlstore["exp_id"]], filter_string=filt, max_results=1000)


def _expect(values):
    vals = [100 * v for v in values]
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def test_main_table_cells_match_runs(built, mlstore):
    t = _table(built, "main_table")
    for method, label in (
        ("pah", "PAH (ours)"),
        ("finetune", "Fine-tune (ours)"),
        ("lwf", "LwF (ours)"),
    ):
        runs = _runs(mlstore, f"tags.method = '{method}' and tags.sweep = '{BASE_SWEEP}'")
        assert len(runs) == (2 if method == "lwf" else 3)
        for metric, col in (
            ("final_avg_acc", "acc"),
            ("final_forgetting", "forgetting"),
            ("final_cil_avg_acc", "cil"),
        ):
            mean, std = _expect([r.data.metrics[metric] for r in runs])
            cell = t.cell(label, f"synthetic:{col}")
            assert cell.mean == pytest.approx(mean, abs=1e-9)
            assert cell.std == pytest.approx(std, abs=1e-9)
            # the 95% t-interval of the mean: t(0.975, n-1) * std / sqrt(n) either side
            n = len(runs)
            half = scipy.stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)
            assert cell.half == pytest.approx(half, abs=1e-9)
            assert cell.shown() == f"{mean:.2f} ± {std:.2f} [{mean - half:.2f}, {mean + half:.2f}]"
            assert sorted(cell.run_ids) == sorted(r.info.run_id for r in runs)
        assert t.cell(label, "synthetic:n").shown() == str(len(runs))
    # ablation and search runs are not pooled into the main table
    assert "PAH (ours)" in [r["method"].shown() for r in t.rows]
    assert len(t.cell("PAH (ours)", "synthetic:acc").run_ids) == 3
    # the paper's rows, marked reported, from the shipped data file
    paper = load_paper()
    for row in paper["main"]:
        label = row["method"] + ("†" if row["dagger"] else "")
        r = [x for x in t.rows if x["method"].shown() == label]
        assert len(r) == 1 and r[0]["source"].shown() == "reported"
        for d in ("cifar100", "tinyimagenet"):
            acc = row[d]["acc"]
            assert r[0][f"{d}:acc"].shown() == ("—" if acc is None else acc)
            assert r[0][f"{d}:cil"].shown() == "—"  # the paper is task-incremental only
    assert t.cell("PAH", "cifar100:acc").shown() == "74.46 ± 0.08"
    assert t.cell("PNN", "cifar100:forgetting").shown() == "—"
    # best value bold: the highest accuracy in the CIFAR column is the paper's PAH
    assert t.cell("PAH", "cifar100:acc").bold and not t.cell("CCLIS†", "cifar100:acc").bold
    md = (built.out / "main_table.md").read_text()
    assert "**74.46 ± 0.08**" in md and "reported" in md
    # provenance: run ids, git SHA, fingerprint, date
    prov = t.provenance
    base = _runs(mlstore, f"tags.sweep = '{BASE_SWEEP}'")
    assert set(prov["run_ids"]) == {r.info.run_id for r in base if "pah.role" not in r.data.tags}
    assert prov["git_sha"] == ["abc123def456"] and prov["dataset_fingerprint"][0] != "unknown"
    for ext in ("md", "tex", "csv"):
        text = (built.out / f"main_table.{ext}").read_text()
        assert prov["run_ids"][0] in text and "abc123def456" in text and "generated" in text


def test_csv_holds_the_numbers(built, mlstore):
    import pandas as pd

    df = pd.read_csv(built.out / "main_table.csv", comment="#")
    row = df[df["Method"] == "PAH (ours)"].iloc[0]
    runs = _runs(mlstore, f"tags.method = 'pah' and tags.sweep = '{BASE_SWEEP}'")
    mean, std = _expect([r.data.metrics["final_avg_acc"] for r in runs])
    assert float(row["Synthetic Acc ↑"]) == pytest.approx(mean, rel=1e-5)
    assert float(row["Synthetic Acc ↑ std"]) == pytest.approx(std, rel=1e-5)


def test_delta_and_gaps(mlstore, tmp_path):
    rep = paper_tables.build("gaps", tmp_path, mlflow_uri=mlstore["uri"])
    t = _table(rep, "main_table")
    acc = t.cell("PAH (ours)", "cifar100:acc")
    mean, std = _expect([0.70, 0.72, 0.75])
    assert acc.mean == pytest.approx(mean) and acc.std == pytest.approx(std)
    # one of three runs lacks final_forgetting: the value is over the other two, and says so
    forg = t.cell("PAH (ours)", "cifar100:forgetting")
    fm, fs = _expect([0.02, 0.03])
    assert forg.mean == pytest.approx(fm) and forg.std == pytest.approx(fs) and forg.n == 2
    assert any("1 of 3 runs lack final_forgetting" in t.notes[n] for n in forg.notes)
    # a method whose runs lack the metric entirely: n/a with a footnote, never a number
    si = t.cell("SI (ours)", "cifar100:acc")
    assert si.shown() == "n/a" and si.mean is None
    assert any("none of the runs has final_avg_acc" in t.notes[n] for n in si.notes)
    assert "n/a<sup>" in (tmp_path / "main_table.md").read_text()
    # paper-vs-ours delta for PAH (paper: 74.46 / 1.71 on S-CIFAR100)
    delta = t.cell("Δ PAH: ours − paper", "cifar100:acc")
    assert delta.mean == pytest.approx(mean - 74.46) and delta.shown() == f"{mean - 74.46:+.2f}"
    assert t.cell("Δ PAH: ours − paper", "cifar100:forgetting").mean == pytest.approx(fm - 1.71)
    assert not delta.bold


def test_ablation_tables(built, mlstore):
    def check(cell, variant, metric, seeds):
        runs = _runs(mlstore, f"tags.variant = '{variant}' and tags.sweep = '{ABL_SWEEP}'")
        assert len(runs) == seeds
        mean, std = _expect([r.data.metrics[metric] for r in runs])
        assert cell.mean == pytest.approx(mean, abs=1e-9)
        assert (cell.std is None) if std is None else cell.std == pytest.approx(std, abs=1e-9)

    size = _table(built, "ablation_prototype_size")
    check(size.cell("5×5", "acc"), "proto_5", "final_avg_acc", 2)
    check(size.cell("5×5", "forgetting"), "proto_5", "final_forgetting", 2)
    check(size.cell("6×6", "acc"), "full", "final_avg_acc", 2)  # the base config's size
    assert size.cell("5×5", "paper_acc").shown() == "73.72"
    assert size.cell("20×20", "paper_forgetting").shown() == "2.66"
    assert size.cell("16×16", "acc").shown() == "n/a"  # in the paper, not run here
    init = _table(built, "ablation_prototype_init")
    check(init.cell("random (noise)", "acc"), "init_random", "final_avg_acc", 2)
    check(init.cell("semantic (centre crop)", "forgetting"), "full", "final_forgetting", 2)
    assert init.cell("random (noise)", "paper_acc").shown() == "72.54"
    assert init.cell("semantic (centre crop)", "paper_acc").shown() == "74.46"
    loss = _table(built, "ablation_loss_terms")
    check(loss.cell("CE only", "acc"), "ce_only", "final_avg_acc", 1)
    check(loss.cell("CE + L_sm + L_sp", "acc"), "full", "final_avg_acc", 2)
    assert loss.cell("CE only", "paper_acc").shown() == "—"
    assert loss.cell("CE + L_sp", "acc").shown() == "n/a"
    assert "no loss-term ablation" in " ".join(loss.notes.values())


def test_sensitivity_and_importances(built, mlstore):
    summary = _table(built, f"sensitivity_{SEARCH_SWEEP}")
    runs = [
        r
        for r in _runs(mlstore, f"tags.sweep = '{SEARCH_SWEEP}'")
        if "final_avg_acc" in r.data.metrics
    ]
    assert len(runs) == len(SEARCH_POINTS)
    # 4 finished trials: no rank correlation and no importance (below the stated minimums), a
    # note that says why.
    for label in ("HN width", "temperature"):
        cell = summary.cell(label, "rho_acc")
        assert cell.mean is None and cell.shown() == "n/a"
        assert "rank correlations are shown from 10" in summary.notes[cell.notes[0]]
        imp = summary.cell(label, "importance")
        assert imp.mean is None and "importances are shown from 20" in summary.notes[imp.notes[0]]
    assert "4 of 5 trials finished" in summary.title
    detail = _table(built, f"sensitivity_trials_{SEARCH_SWEEP}")
    stopped = detail.cell("trial_stopped", "acc", "trial")
    assert (
        stopped.shown() == "n/a"
        and detail.cell("trial_stopped", "status", "trial").shown() == "stopped early"
    )
    best = max(runs, key=lambda r: r.data.metrics["final_avg_acc"])
    assert detail.cell(best.info.run_name, "acc", "trial").bold


def test_no_optuna_study_is_a_clear_note(mlstore, tmp_path):
    rep = paper_tables.build(
        EXP,
        tmp_path,
        sweeps=[SEARCH_SWEEP],
        mlflow_uri=mlstore["uri"],
        optuna_storage=f"sqlite:///{tmp_path}/missing.db",
    )
    summary = _table(rep, f"sensitivity_{SEARCH_SWEEP}")
    cell = summary.cell("HN width", "importance")
    assert cell.shown() == "n/a" and "does not exist" in summary.notes[cell.notes[0]]
    # a sweep by parent run id selects the same runs
    pid = _runs(mlstore, f"tags.sweep = '{SEARCH_SWEEP}' and tags.`pah.role` = 'sweep'")[
        0
    ].info.run_id
    rep2 = paper_tables.build(EXP, tmp_path / "b", sweeps=[pid], mlflow_uri=mlstore["uri"])
    assert (
        _table(rep2, f"sensitivity_{SEARCH_SWEEP}").provenance["run_ids"]
        == summary.provenance["run_ids"]
    )


def test_latex_compiles(built):
    engine = shutil.which("pdflatex")
    if engine is None:
        if os.environ.get("CI"):
            pytest.fail(
                "pdflatex is missing: .ci/run installs texlive-latex-base + texlive-latex-recommended"
            )
        pytest.skip(
            "pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended)"
        )
    tex = (built.out / "tables.tex").read_text()
    assert r"\toprule" in tex and r"\textbf{74.46 $\pm$ 0.08}" in tex
    r = subprocess.run(
        [engine, "-interaction=nonstopmode", "-halt-on-error", "tables.tex"],
        cwd=built.out,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout[-3000:]
    assert (built.out / "tables.pdf").stat().st_size > 10_000


def _png(path):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)[..., :3]
    assert img.shape[0] > 200 and img.shape[1] > 200
    assert img.std() > 0.05  # not blank
    return img


def test_heatmap_shows_the_matrix(built, mlstore):
    import matplotlib

    from analysis.figures import heatmap_figure

    # the main-table run whose matrix spans the widest range of accuracies
    exp = store.load_experiment(mlstore["client"], EXP)
    runs = [r for r in exp.runs if r.sweep == BASE_SWEEP]
    mats = {r.run_id: store.load_matrix(r)[0] for r in runs}
    rec = max(runs, key=lambda r: np.nanmax(mats[r.run_id]) - np.nanmin(mats[r.run_id]))
    m, rid = mats[rec.run_id], rec.run_id
    path = built.out / "figures" / "heatmaps" / f"heatmap_{rid[:8]}.png"
    img = _png(path)
    assert (built.out / "figures" / "heatmaps" / f"heatmap_{rid[:8]}.pdf").stat().st_size > 1000
    # where each cell lands in the saved PNG (same figure size; saved at 150 dpi)
    fig = heatmap_figure(rec, m)  # the figure the PNG was saved from
    fig.canvas.draw()  # imshow's equal aspect settles the axes box at draw time
    ax = fig.axes[0]
    scale = 150 / fig.dpi
    cmap = matplotlib.colormaps["viridis"]

    def pixel(i, j):
        x, y = ax.transData.transform((j + 0.3, i + 0.3))  # off the centre: the label is there
        return img[int(round(img.shape[0] - y * scale)), int(round(x * scale))]

    colours = {}
    for i in range(m.shape[0]):
        for j in range(i + 1):
            want = np.asarray(cmap(m[i, j]))[:3]
            got = pixel(i, j)
            assert np.abs(got - want).max() < 0.06, (i, j, got, want)
            colours[m[i, j]] = got
    assert np.allclose(pixel(0, 2), 1.0, atol=0.02)  # not evaluated yet: blank
    lo, hi = min(colours), max(colours)
    assert hi - lo > 0.2 and np.abs(colours[hi] - colours[lo]).max() > 0.2
    matplotlib.pyplot.close(fig)


def test_each_pah_run_gets_its_drift_figure(built, mlstore):
    exp = store.load_experiment(mlstore["client"], EXP)
    runs = [r for r in exp.runs if r.sweep == BASE_SWEEP]
    folder = built.out / "figures" / "drift"
    for r in runs:
        drawn = (folder / f"drift_{r.run_id[:8]}.png").is_file()
        assert drawn == (r.method == "pah"), (r.method, r.run_id)
    pah = next(r for r in runs if r.method == "pah")
    history = store.load_diagnostics(pah)
    assert len(history) == 3 and len(history[-1]["head_drift"]) == 3
    _png(folder / f"drift_{pah.run_id[:8]}.png")  # a real picture, not a blank canvas


def _count_colour(img, rgb, tol=0.08):
    return int((np.abs(img - np.asarray(rgb)).max(axis=-1) < tol).sum())


def test_curves_and_pareto_figures(built, mlstore):
    from matplotlib.colors import to_rgb

    img = _png(built.out / "figures" / "avg_acc_vs_tasks_synthetic.png")
    for c in ("C0", "C1", "C2"):  # three methods, three lines
        assert _count_colour(img, to_rgb(c)) > 50, c
    assert (built.out / "figures" / "avg_acc_vs_tasks_synthetic.pdf").is_file()
    img = _png(built.out / "figures" / f"pareto_{SEARCH_SWEEP}.png")
    assert _count_colour(img, to_rgb("C3")) > 50  # the front
    _png(built.out / "figures" / f"sensitivity_{SEARCH_SWEEP}.png")
    # the front is the non-dominated set of the finished trials
    from pah_core.metrics import pareto_front

    runs = [
        r
        for r in _runs(mlstore, f"tags.sweep = '{SEARCH_SWEEP}'")
        if "final_avg_acc" in r.data.metrics
    ]
    front = pareto_front(
        [
            (r.info.run_id, r.data.metrics["final_avg_acc"], r.data.metrics["final_forgetting"])
            for r in runs
        ]
    )
    assert 1 <= len(front) <= len(runs)


def test_errors_are_clear(mlstore, tmp_path, capsys):
    uri = mlstore["uri"]
    with pytest.raises(AnalysisError, match="no experiment 'nope'.*pah-analysis-test"):
        paper_tables.build("nope", tmp_path, mlflow_uri=uri)
    with pytest.raises(AnalysisError, match="'empty' .* has no runs"):
        paper_tables.build("empty", tmp_path, mlflow_uri=uri)
    with pytest.raises(AnalysisError, match=f"no sweep 'nosuch'.*{SEARCH_SWEEP}"):
        paper_tables.build(EXP, tmp_path, sweeps=["nosuch"], mlflow_uri=uri)
    with pytest.raises(AnalysisError, match="no MLflow store"):
        paper_tables.build(EXP, tmp_path, mlflow_uri=f"sqlite:///{tmp_path}/absent.db")
    assert not (tmp_path / "absent.db").exists()
    rc = paper_tables.main(["--experiment", "nope", "--mlflow-uri", uri, "--out", str(tmp_path)])
    assert rc == 2 and "error: no experiment 'nope'" in capsys.readouterr().err


def test_cli_and_batched_reads(mlstore, tmp_path, monkeypatch, capsys):
    """One paginated search per experiment (mlflow.search_runs pages itself), no run read alone."""
    import mlflow.tracking.fluent
    from mlflow.tracking import MlflowClient

    n = len(mlstore["client"].search_runs([mlstore["exp_id"]], max_results=1000))
    calls = {"search_runs": 0, "get_run": 0}

    def counting(name):
        real = getattr(MlflowClient, name)

        def counted(self, *args, **kwargs):
            calls[name] += 1
            return real(self, *args, **kwargs)

        return counted

    for name in calls:
        monkeypatch.setattr(MlflowClient, name, counting(name))
    monkeypatch.setattr(mlflow.tracking.fluent, "NUM_RUNS_PER_PAGE_PANDAS", 7)
    paper_tables.build(EXP, tmp_path / "a", mlflow_uri=mlstore["uri"])
    assert calls["search_runs"] == math.ceil(n / 7) and calls["get_run"] == 0
    monkeypatch.undo()
    rc = paper_tables.main(
        [
            "--experiment",
            EXP,
            "--mlflow-uri",
            mlstore["uri"],
            "--sweep",
            BASE_SWEEP,
            "--out",
            str(tmp_path / "b"),
        ]
    )
    assert rc == 0 and "table(s)" in capsys.readouterr().out
    for f in ("report.md", "tables.tex", "main_table.csv", "main_table.json", "index.json"):
        assert (tmp_path / "b" / f).is_file(), f
    assert not list((tmp_path / "b").glob("ablation_*"))  # only the chosen sweep


@pytest.fixture(scope="module")
def mlflow_http(mlstore):
    """The same store behind a real MLflow tracking server on 127.0.0.1 (cluster/mlflow-server.sh;
    no authentication: the analysis is what this tests, authentication is test_cluster.py's)."""
    from tests.helpers import mlflow_server

    with mlflow_server(mlstore["uri"], mlstore["tmp"]) as url:
        yield url


def _shown(report) -> dict[str, list[dict[str, str]]]:
    return {t.name: [{k: c.shown() for k, c in r.items()} for r in t.rows] for t in report.tables}


def test_http_server_gives_the_same_report(built, mlstore, mlflow_http, tmp_path, capsys):
    """An http:// tracking server and the embedded sqlite store give the same tables, cell for
    cell, with the same run ids; the CLI takes the server's URL."""
    optuna_db = f"sqlite:///{mlstore['tmp']}/optuna.db"
    rc = paper_tables.main(
        [
            "--experiment",
            EXP,
            "--mlflow-uri",
            mlflow_http,
            "--optuna-storage",
            optuna_db,
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    via_http = paper_tables.build(EXP, tmp_path, mlflow_uri=mlflow_http, optuna_storage=optuna_db)
    assert _shown(via_http) == _shown(built)
    for a, b in zip(via_http.tables, built.tables, strict=True):
        assert a.provenance.get("run_ids") == b.provenance.get("run_ids"), a.name
    main = _table(via_http, "main_table")
    runs = _runs(mlstore, f"tags.method = 'pah' and tags.sweep = '{BASE_SWEEP}'")
    mean, _ = _expect([r.data.metrics["final_avg_acc"] for r in runs])
    assert main.cell("PAH (ours)", "synthetic:acc").mean == pytest.approx(mean, abs=1e-9)
    # heatmaps come from each run's acc_matrix.json, read through the server's URL too
    heatmaps = sorted(p.name for p in (tmp_path / "figures" / "heatmaps").glob("*.png"))
    assert heatmaps == sorted(p.name for p in (built.out / "figures" / "heatmaps").glob("*.png"))
    assert len(heatmaps) >= len(runs)
    # an unknown experiment on the server is the same clear error as on sqlite
    with pytest.raises(AnalysisError, match="no experiment"):
        paper_tables.build("no-such-experiment", tmp_path / "x", mlflow_uri=mlflow_http)


def test_rows_off_the_paper_protocol_say_so():
    """Our rows trained under another protocol than the paper's (configs/<dataset>_pah.yaml with an
    ImageNet-pretrained backbone) carry a footnote naming the differences; rows under the paper's
    protocol carry none."""
    from analysis.tables import CONFIGS, Table, protocol_note
    from pah_core.config import load_config

    cfg = load_config(str(CONFIGS / "cifar100_pah.yaml"), {"model.pretrained": True})
    paper = {k: str(v) for k, v in cfg.flat().items()}

    def run(i, **changes):
        params = {**paper, "run.seed": str(i), **changes}
        return store.RunRecord(f"r{i}", f"r{i}", "FINISHED", params, {}, {}, "")

    t = Table("t", "t", [])
    assert protocol_note(t, [run(0), run(1)], "cifar100") == []
    assert protocol_note(t, [run(0)], "synthetic") == []  # no paper protocol for it
    (marker,) = protocol_note(
        t,
        [run(0, **{"model.backbone": "small_cnn"}), run(1, **{"schedule.max_tasks": "4"})],
        "cifar100",
    )
    text = t.notes[marker]
    assert "model.backbone=resnet18/small_cnn (paper resnet18)" in text
    assert "schedule.max_tasks=4/all (paper all)" in text
    assert "not comparable" in text and "data.n_tasks" not in text
    # The shipped config trains from scratch (offline); the paper's backbone is pretrained.
    (marker,) = protocol_note(t, [run(0, **{"model.pretrained": "False"})], "cifar100")
    assert "model.pretrained=False (paper True)" in t.notes[marker]
    # first_k's report stream (the tasks after the tuning ones) is another protocol; a run logged
    # before data.skip_tasks existed ran the whole stream
    (marker,) = protocol_note(t, [run(0, **{"data.skip_tasks": "3"})], "cifar100")
    assert "data.skip_tasks=3 (paper 0)" in t.notes[marker]
    old = run(0)
    del old.params["data.skip_tasks"]
    assert protocol_note(t, [old], "cifar100") == []


def test_long_accuracy_table_has_each_cell_once(mlstore):
    """acc_matrix_table.json (MLflow appends to tables) holds each (train, eval) cell exactly once,
    with the values of acc_matrix.json."""
    import mlflow.artifacts

    runs = _runs(mlstore, f"tags.method = 'pah' and tags.sweep = '{BASE_SWEEP}'")
    for r in runs:
        table = mlflow.artifacts.load_dict(f"{r.info.artifact_uri}/acc_matrix_table.json")
        matrix = mlflow.artifacts.load_dict(f"{r.info.artifact_uri}/acc_matrix.json")["acc_matrix"]
        cols = table["columns"]
        cells = [dict(zip(cols, row, strict=True)) for row in table["data"]]
        keys = [(c["train_task"], c["eval_task"]) for c in cells]
        n = len(matrix)
        assert sorted(keys) == [(i, j) for i in range(n) for j in range(i + 1)]
        for c in cells:
            assert c["acc"] == pytest.approx(matrix[c["train_task"]][c["eval_task"]])


def test_an_export_written_over_an_earlier_one_keeps_the_sweeps_the_store_lacks(mlstore, tmp_path):
    """A study continued from another store (the first one lost, its export kept): exporting the
    new store's sweeps over the old export keeps the old export's other sweeps and their runs,
    names the store they came from, and reads back as one export of both."""
    import json

    from analysis.export import ExportSource, write_export

    source = store.MlflowSource(mlstore["client"])
    both = write_export(source, EXP, tmp_path / "both", [BASE_SWEEP, ABL_SWEEP])
    merged = write_export(source, EXP, tmp_path / "merged", [BASE_SWEEP])
    meta = json.loads((merged / "experiment.json").read_text())
    lost = "sqlite:////elsewhere/lost.db"  # the base sweep "came from" a store since lost
    (merged / "experiment.json").write_text(json.dumps({**meta, "mlflow_uri": lost}))
    write_export(source, EXP, merged, [ABL_SWEEP], keep_other_sweeps=True)

    m, b = ExportSource(merged), ExportSource(both)
    # Stores by their last folders only: an export holds no path of the machine that made it.
    assert m.merged_from == [{"mlflow_uri": portable(lost), "sweeps": [BASE_SWEEP]}]
    assert m.uri == f"export {merged} of {portable(mlstore['uri'])} and {portable(lost)}"
    assert sorted(m.meta["sweeps"]) == sorted(b.meta["sweeps"])
    assert sorted(m.meta["runs"]) == sorted(b.meta["runs"])
    for sub in ("sweeps", "runs"):
        names = sorted(f.name for f in (merged / sub).glob("*.json"))
        assert names == sorted(f.name for f in (both / sub).glob("*.json"))
        for f in (both / sub).glob("*.json"):
            assert (merged / sub / f.name).read_bytes() == f.read_bytes(), f.name
    rep_m = paper_tables.build(None, tmp_path / "rm", source=m)
    rep_b = paper_tables.build(None, tmp_path / "rb", source=b)
    assert _shown(rep_m) == _shown(rep_b)
    # the kept sweep's store is remembered through a second merge
    write_export(source, EXP, merged, [ABL_SWEEP], keep_other_sweeps=True)
    assert ExportSource(merged).merged_from == [
        {"mlflow_uri": portable(lost), "sweeps": [BASE_SWEEP]}
    ]
    # without the flag, the export is replaced: only the exported sweep is left
    write_export(source, EXP, merged, [ABL_SWEEP])
    assert len(ExportSource(merged).meta["sweeps"]) == 1
    # never merged across experiments
    other = json.loads((both / "experiment.json").read_text())
    (both / "experiment.json").write_text(json.dumps({**other, "experiment": "another"}))
    with pytest.raises(AnalysisError, match="holds experiment 'another', not"):
        write_export(source, EXP, both, [ABL_SWEEP], keep_other_sweeps=True)


def test_export_gives_the_same_report(built, mlstore, tmp_path):
    """An export (analysis/export.py) of the store rebuilds the same tables and figures without
    MLflow: cell for cell, with the same run ids; only the source named in the provenance differs."""
    import json

    from analysis.export import ExportSource, write_export

    folder = write_export(store.MlflowSource(mlstore["client"]), EXP, tmp_path / "export")
    n = len([r for r in _runs(mlstore, "") if r.data.tags.get("pah.role") != "sweep"])
    assert len(list((folder / "runs").glob("*.json"))) == n
    stopped = [
        json.loads(f.read_text())
        for f in (folder / "runs").glob("*.json")
        if json.loads(f.read_text())["name"] == "trial_stopped"
    ]
    assert stopped[0]["acc_matrix"] is None and stopped[0]["history"]["avg_acc"] == {"0": 0.3}
    optuna_db = f"sqlite:///{mlstore['tmp']}/optuna.db"
    rep = paper_tables.build(
        None, tmp_path / "report", source=ExportSource(folder), optuna_storage=optuna_db
    )
    assert _shown(rep) == _shown(built)
    for a, b in zip(rep.tables, built.tables, strict=True):
        assert a.provenance["run_ids"] == b.provenance["run_ids"], a.name
        # The store by its last folders only: an export holds no path of the machine that made it.
        assert a.provenance["mlflow_uri"] == f"export {folder} of {portable(mlstore['uri'])}"
    for t in built.tables:
        want = (built.out / f"{t.name}.csv").read_text().splitlines()
        got = (rep.out / f"{t.name}.csv").read_text().splitlines()
        diff = [(a, b) for a, b in zip(want, got, strict=True) if a != b]
        assert all(a.startswith(("# MLflow:", "# generated:")) for a, _ in diff), diff
    pngs = sorted(p.relative_to(built.out) for p in built.out.rglob("*.png"))
    assert pngs == sorted(p.relative_to(rep.out) for p in rep.out.rglob("*.png"))
    with pytest.raises(AnalysisError, match="no experiment 'other' in export"):
        paper_tables.build("other", tmp_path / "x", source=ExportSource(folder))
    with pytest.raises(AnalysisError, match="no export at"):
        ExportSource(tmp_path / "nothing")


def _record(rid, parent, sweep, kind, variant, method="pah", acc=0.5, **params):
    p = {"run.seed": rid[-1], "method.name": method, "method.pah.use_sm": "True"}
    p.update({"method.pah.use_sp": "True", "model.hyper_width": "16", **params})
    tags = {"sweep": sweep, "variant": variant, "method": method, "dataset": "synthetic"}
    tags["mlflow.parentRunId"] = parent
    metrics = {"final_avg_acc": acc, "final_forgetting": 0.1}
    return store.RunRecord(rid, rid, "FINISHED", p, metrics, tags, "")


def test_variant_rows_and_a_full_row_from_another_sweep():
    """A baselines variant that is not plainly a method (pah_official) gets its own main-table row
    after PAH's; an ablation sweep that names another sweep's runs as its full configuration
    (FULL_FROM_TAG) gets them as the full row, footnoted, and a footnote if their config differs."""
    from analysis.ablations import ablation_tables, shared_full_runs
    from analysis.main_table import main_table
    from analysis.tables import FULL_FROM_TAG

    def parent(rid, sweep, kind, **tags):
        tags = {"pah.role": "sweep", "sweep": sweep, "sweep_kind": kind, **tags}
        return store.RunRecord(rid, sweep, "FINISHED", {}, {}, tags, "")

    official = {"method.pah.kl_direction": "student_teacher"}
    runs = [
        parent("pm", "main", "baselines"),
        parent("pa", "abl", "ablation", **{FULL_FROM_TAG: "main:pah"}),
        _record("pah0", "pm", "main", "baselines", "pah", acc=0.6),
        _record("pah1", "pm", "main", "baselines", "pah", acc=0.7),
        _record("off0", "pm", "main", "baselines", "pah_official", acc=0.4, **official),
        _record("ft0", "pm", "main", "baselines", "finetune", "finetune", acc=0.2),
        _record("ce0", "pa", "abl", "ablation", "ce_only", **{"method.pah.use_sm": "False"}),
    ]
    runs[-1].params["method.pah.use_sp"] = "False"
    exp = store.assemble("sqlite:///x", "e", "1", runs)
    main_runs = [r for r in exp.runs if r.kind == "baselines"]
    t = main_table(exp, main_runs, load_paper())
    ours = [r["method"].shown() for r in t.rows if r["source"].shown() == "this work"]
    assert ours == ["PAH (ours)", "PAH, official code (ours)", "Fine-tune (ours)"]
    assert t.cell("PAH (ours)", "synthetic:acc").run_ids == ["pah0", "pah1"]
    assert t.cell("PAH, official code (ours)", "synthetic:acc").mean == pytest.approx(40.0)

    shared, warnings = shared_full_runs(exp, ["pa"])
    assert [r.run_id for r in shared] == ["pah0", "pah1"] and warnings == []
    abl = [r for r in exp.runs if r.kind == "ablation"]
    (loss,) = ablation_tables(exp, abl, load_paper(), shared)
    full = loss.cell("CE + L_sm + L_sp", "acc")
    assert full.run_ids == ["pah0", "pah1"] and full.mean == pytest.approx(65.0)
    assert loss.cell("CE + L_sm + L_sp", "variants").shown() == "pah of main"
    notes = [loss.notes[n] for n in full.notes]
    assert any("those of pah of sweep main" in n for n in notes)
    assert not any("differ from the ablation" in n for n in notes)
    # a full row trained under another config than the ablation's says in what
    shared[1].params["model.hyper_width"] = "32"
    (loss,) = ablation_tables(exp, abl, load_paper(), shared)
    notes = [loss.notes[n] for n in loss.cell("CE + L_sm + L_sp", "acc").notes]
    assert any("differ from the ablation's in model.hyper_width" in n for n in notes)
    # a tag that names no runs is a warning, and the row stays empty
    exp.sweeps["pa"].tags[FULL_FROM_TAG] = "main:nope"
    shared, warnings = shared_full_runs(exp, ["pa"])
    assert shared == [] and "no such runs" in warnings[0]


def test_a_metric_added_later_is_na_for_runs_made_before_it():
    """The generic "since" of a declared column (tables.METRICS): class-IL here."""
    from analysis.store import RunRecord
    from analysis.tables import METRICS, NA, Table, metric_cell

    cil = next(m for m in METRICS if m.key == "final_cil_avg_acc")

    def run(i, **metrics):
        return RunRecord(f"r{i}", f"r{i}", "FINISHED", {}, metrics, {}, "")

    t = Table("t", "t", [])
    old = metric_cell(t, [run(0, final_avg_acc=0.5), run(1, final_avg_acc=0.6)], cil)
    assert old.shown() == NA and "before the task-agnostic evaluation" in t.notes[old.notes[0]]
    new = metric_cell(t, [run(2, final_avg_acc=0.5, final_cil_avg_acc=0.2)], cil)
    assert new.mean == pytest.approx(20.0) and new.n == 1
    # A run still going (no final numbers yet) is a gap with the usual note, not "made before".
    going = metric_cell(t, [run(3)], cil)
    assert "still running" in t.notes[going.notes[0]]


def test_protocol_table_from_searches_and_their_final_runs(tmp_path):
    """Two searches under different HPO protocols, each with final runs on fresh seeds: one row
    each, with the selected trial's settings, its validation score, the final runs' test mean and
    std, and the search's compute."""
    from mlflow.tracking import MlflowClient

    from analysis.hpo_protocols import protocol_table

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    expected = {}
    for protocol, width, accs, tasks in (
        ("end_of_training", 16, (0.50, 0.54), 40),
        ("first_task", 64, (0.48, 0.50), 8),
    ):
        search = _parent(client, exp_id, f"s-{protocol}", "search", hpo_protocol=protocol)
        client.log_metric(search, "compute/trial_tasks", tasks)
        client.log_metric(search, "compute/trial_seconds", 10.0 * tasks)
        trial = client.create_run(
            exp_id,
            tags={"mlflow.parentRunId": search, "ray_trial_id": "t1", "sweep": f"s-{protocol}"},
        ).info.run_id
        client.log_param(trial, "model.hyper_width", width)
        client.log_param(trial, "method.name", "pah")
        final = _parent(
            client,
            exp_id,
            f"s-{protocol}-final",
            "final",
            selected_from=f"s-{protocol}",
            selected_trial="t1",
            selected_on="validation",
            selected_val_avg_acc="0.612345",
            hpo_protocol=protocol,
        )
        for seed, acc in enumerate(accs, start=2):
            r = client.create_run(
                exp_id,
                tags={
                    "mlflow.parentRunId": final,
                    "sweep": f"s-{protocol}-final",
                    "variant": "selected",
                },
            ).info.run_id
            client.log_param(r, "run.seed", seed)
            client.log_param(r, "method.name", "pah")
            client.log_metric(r, "final_avg_acc", acc)
            client.log_metric(r, "final_forgetting", 0.02)
        expected[protocol] = (width, accs, tasks)
    exp = store.load_experiment(client, "e")
    t = protocol_table(exp)
    assert t is not None and len(t.rows) == 2
    for protocol, (width, accs, tasks) in expected.items():
        row = next(r for r in t.rows if r["protocol"].shown() == protocol)
        assert row["selected"].shown() == f"hyper_width={width}"
        assert row["val"].mean == pytest.approx(61.2345)
        mean, std = _expect(accs)
        assert row["acc"].mean == pytest.approx(mean) and row["acc"].std == pytest.approx(std)
        assert row["n"].shown() == "2" and row["tasks"].shown() == str(tasks)
    # Protocols validate and test on different tasks: their accuracies are not ranked; cost is.
    assert not t.cell("end_of_training", "acc", "protocol").bold
    assert t.cell("first_task", "tasks", "protocol").bold  # the cheaper search


def test_sensitivity_ranks_trials_on_their_validation_numbers(tmp_path):
    """A search whose trials have validation numbers: the sensitivity tables use them (what the
    search selected on), not the test numbers, and say so."""
    from mlflow.tracking import MlflowClient

    from analysis.sensitivity import sensitivity_tables

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    search = _parent(client, exp_id, "s", "search")
    # test accuracy rises with the width, validation accuracy falls with it (10 trials: the
    # fewest a report computes rank correlations on)
    for i in range(10):
        width, test_acc, val_acc = 16 * (i + 1), 0.40 + 0.01 * i, 0.60 - 0.01 * i
        r = client.create_run(exp_id, tags={"mlflow.parentRunId": search, "sweep": "s"})
        rid = r.info.run_id
        client.log_param(rid, "model.hyper_width", width)
        for k, v in (("final_avg_acc", test_acc), ("final_forgetting", 0.1)):
            client.log_metric(rid, k, v)
        for k, v in (("val/final_avg_acc", val_acc), ("val/final_forgetting", 0.1)):
            client.log_metric(rid, k, v)
    exp = store.load_experiment(client, "e")
    summary, detail = sensitivity_tables(exp, "s", exp.runs, None, "none", ["model.hyper_width"])
    assert "on the validation splits" in summary.title and "validation" in detail.title
    assert summary.cell("HN width", "rho_acc", "param").shown() == "-1.00"
    assert summary.cell("HN width", "best", "param").shown() == "16"
