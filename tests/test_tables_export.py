"""analysis/: the tables and figures of the hand-made export tests/data/small_export (no training,
no MLflow): every cell against the numbers chosen in tests/small_export.py, worked out here by
hand (mean, sample std, 95% t-interval of the mean)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess

import numpy as np
import pytest
import scipy.stats

from analysis import paper_tables
from analysis.export import ExportSource
from analysis.store import AnalysisError
from analysis.tables import load_paper
from tests import small_export

SOURCE = small_export.FOLDER


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return paper_tables.build(None, tmp_path_factory.mktemp("report"), source=ExportSource(SOURCE))


def _table(rep, name):
    (t,) = [t for t in rep.tables if t.name == name]
    return t


def test_the_committed_export_is_what_its_script_writes(tmp_path):
    small_export.write(tmp_path)
    files = sorted(p.relative_to(SOURCE) for p in SOURCE.rglob("*.json"))
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    for f in files:
        assert (SOURCE / f).read_bytes() == (tmp_path / f).read_bytes(), f


def test_main_table_cells(report):
    t = _table(report, "main_table")
    # by hand: PAH 60, 62, 64 -> mean 62, sd 2, half-width t(0.975, 2) * 2 / sqrt(3) = 4.97
    pah = t.cell("PAH (ours)", "synthetic:acc")
    assert pah.mean == pytest.approx(62.0) and pah.std == pytest.approx(2.0)
    assert pah.half == pytest.approx(scipy.stats.t.ppf(0.975, 2) * 2 / math.sqrt(3))
    assert pah.shown() == "62.00 ± 2.00 [57.03, 66.97]"
    assert pah.run_ids == ["pah-s0-base", "pah-s1-base", "pah-s2-base"]
    expected = {
        ("PAH (ours)", "forgetting"): "10.00 ± 2.00 [5.03, 14.97]",
        ("PAH (ours)", "cil"): "33.00 ± 3.00 [25.55, 40.45]",
        ("Fine-tune (ours)", "acc"): "41.00 ± 1.00 [38.52, 43.48]",
        ("Fine-tune (ours)", "forgetting"): "32.00 ± 2.00 [27.03, 36.97]",
        # 20, 20, 23: sd sqrt(3)
        ("Fine-tune (ours)", "cil"): "21.00 ± 1.73 [16.70, 25.30]",
        # two seeds, 55 and 58: sd 2.12, t(0.975, 1) = 12.71 -> half-width 19.06
        ("LwF (ours)", "acc"): "56.50 ± 2.12 [37.44, 75.56]",
        ("LwF (ours)", "forgetting"): "16.00 ± 1.41 [3.29, 28.71]",
        ("LwF (ours)", "cil"): "26.00 ± 1.41 [13.29, 38.71]",
    }
    for (row, col), shown in expected.items():
        assert t.cell(row, f"synthetic:{col}").shown() == shown, (row, col)
    assert [t.cell(m, "synthetic:n").shown() for m in ("PAH (ours)", "LwF (ours)")] == ["3", "2"]
    # our rows in order: PAH first, then by name; ablation and search runs are not pooled in
    ours = [r["method"].shown() for r in t.rows if r["source"].shown() == "this work"]
    assert ours == ["PAH (ours)", "Fine-tune (ours)", "LwF (ours)", "SI (ours)"]
    # the best of each column bold: PAH's accuracy and forgetting, not LwF's
    assert pah.bold and t.cell("PAH (ours)", "synthetic:forgetting").bold
    assert not t.cell("LwF (ours)", "synthetic:acc").bold
    # the paper's rows, marked reported, from the shipped data file
    for row in load_paper()["main"]:
        label = row["method"] + ("†" if row["dagger"] else "")
        (r,) = [x for x in t.rows if x["method"].shown() == label]
        assert r["source"].shown() == "reported"
        for d in ("cifar100", "tinyimagenet"):
            acc = row[d]["acc"]
            assert r[f"{d}:acc"].shown() == ("—" if acc is None else acc)
            assert r[f"{d}:cil"].shown() == "—"  # the paper is task-incremental only
        assert r["synthetic:acc"].shown() == "—"  # the paper has no synthetic results
    assert t.cell("PAH", "cifar100:acc").shown() == "74.46 ± 0.08"
    assert t.cell("PNN", "cifar100:forgetting").shown() == "—"
    assert t.cell("PAH", "cifar100:acc").bold and not t.cell("CCLIS†", "cifar100:acc").bold
    md = (report.out / "main_table.md").read_text()
    assert "**74.46 ± 0.08**" in md and "**62.00 ± 2.00 [57.03, 66.97]**" in md
    # provenance: the rows' run ids, git SHAs, dataset fingerprints, the data's date, in every format
    prov = t.provenance
    base = [
        f"{m}-s{s}-base" for m in ("ft", "lwf", "pah") for s in range(3) if (m, s) != ("lwf", 2)
    ]
    assert prov["run_ids"] == sorted([*base, "pah-0", "pah-1", "pah-2", "si-0"])
    assert prov["git_sha"] == ["abc123def456", "g"]
    assert prov["dataset_fingerprint"] == ["fp-synthetic", "unknown"]
    for ext in ("md", "tex", "csv"):
        text = (report.out / f"main_table.{ext}").read_text()
        assert "pah-s0-base" in text and "abc123def456" in text, ext
        assert "data as of 1970-01-01 00:00:00 UTC" in text, ext


def test_csv_holds_the_numbers(report):
    import pandas as pd

    df = pd.read_csv(report.out / "main_table.csv", comment="#")
    row = df[df["Method"] == "LwF (ours)"].iloc[0]
    assert float(row["Synthetic Acc ↑"]) == pytest.approx(56.5)
    assert float(row["Synthetic Acc ↑ std"]) == pytest.approx(math.sqrt(4.5), rel=1e-5)
    assert float(row["Synthetic Forg ↓"]) == pytest.approx(16.0)


def test_gaps_and_the_delta_to_the_paper(report):
    """cifar100: PAH over 3 runs, one lacking final_forgetting and all lacking class-IL; SI with no
    final numbers at all; our PAH minus the paper's (74.46 / 1.71 on S-CIFAR100)."""
    t = _table(report, "main_table")
    acc = t.cell("PAH (ours)", "cifar100:acc")  # 70, 72, 75
    assert acc.mean == pytest.approx(217 / 3) and acc.std == pytest.approx(math.sqrt(19 / 3))
    assert acc.shown() == "72.33 ± 2.52 [66.08, 78.58]"
    forg = t.cell("PAH (ours)", "cifar100:forgetting")  # 2 and 3; pah-1 has none
    assert forg.n == 2 and forg.shown() == "2.50 ± 0.71 [-3.85, 8.85]"
    assert [t.notes[n] for n in forg.notes] == [
        "1 of 3 runs lack final_forgetting (stopped early, failed or still running): pah-1; "
        "the value is over the others"
    ]
    cil = t.cell("PAH (ours)", "cifar100:cil")
    assert cil.shown() == "n/a" and "before the task-agnostic evaluation" in t.notes[cil.notes[0]]
    # the hand-made runs name none of the paper's protocol keys: their rows say they differ
    proto = [t.notes[n] for n in acc.notes]
    assert len(proto) == 1 and proto[0].startswith("not the paper's protocol (cifar100_pah.yaml)")
    assert "model.backbone=? (paper resnet18)" in proto[0] and "not comparable" in proto[0]
    si = t.cell("SI (ours)", "cifar100:acc")
    assert si.shown() == "n/a" and si.mean is None
    assert t.notes[si.notes[0]] == (
        "none of the runs has final_avg_acc (stopped early, failed or still running): si-0"
    )
    assert t.cell("SI (ours)", "cifar100:n").shown() == "1"
    assert "n/a<sup>" in (report.out / "main_table.md").read_text()
    delta = t.cell("Δ PAH: ours − paper", "cifar100:acc")
    assert delta.mean == pytest.approx(217 / 3 - 74.46) and delta.shown() == "-2.13"
    dforg = t.cell("Δ PAH: ours − paper", "cifar100:forgetting")
    assert dforg.mean == pytest.approx(2.5 - 1.71) and dforg.shown() == "+0.79"
    assert not delta.bold and t.cell("Δ PAH: ours − paper", "synthetic:acc").shown() == "—"


def test_main_differences_are_paired_by_seed(report):
    t = _table(report, "main_differences")
    rows = {r["comparison"].shown(): r for r in t.rows}
    assert list(rows) == [
        "Fine-tune − PAH (Synthetic)",
        "LwF − PAH (Synthetic)",
        "SI − PAH (S-CIFAR100)",
    ]
    ft = rows["Fine-tune − PAH (Synthetic)"]  # -20, -21, -22; forgetting +20, +20, +26
    assert ft["n"].shown() == "3"
    assert ft["final_avg_acc"].shown() == "-21.00 [-23.48, -18.52]"
    assert ft["final_avg_acc:signs"].shown() == "3/3 < 0"
    assert ft["final_forgetting"].shown() == "+22.00 [+13.39, +30.61]"
    assert ft["verdict"].shown() == "accuracy: first lower; forgetting: first higher"
    lwf = rows["LwF − PAH (Synthetic)"]  # seeds 0 and 1 only: -5, -4
    assert lwf["n"].shown() == "2" and lwf["final_avg_acc"].shown() == "-4.50 [-10.85, +1.85]"
    assert lwf["verdict"].shown() == "accuracy: not resolved; forgetting: first higher"
    si = rows["SI − PAH (S-CIFAR100)"]  # SI's one run has no final numbers: nothing to pair
    assert si["n"].shown() == "0" and si["final_avg_acc"].shown() == "n/a"
    assert "fewer than 2 paired seeds" in si["verdict"].shown()


def test_ablation_tables(report):
    size = _table(report, "ablation_prototype_size")
    assert [r["setting"].shown() for r in size.rows] == ["5×5", "10×10", "16×16", "20×20", "6×6"]
    p5 = size.cell("5×5", "acc")  # 50, 54
    assert (
        p5.run_ids == ["s0-proto_5", "s1-proto_5"] and p5.shown() == "52.00 ± 2.83 [26.59, 77.41]"
    )
    assert size.cell("5×5", "forgetting").shown() == "18.00 ± 2.83 [-7.41, 43.41]"
    # the base configuration's size (6) is the full variant's row: 60, 64
    full = size.cell("6×6", "acc")
    assert full.run_ids == ["s0-full", "s1-full"] and full.shown() == "62.00 ± 2.83 [36.59, 87.41]"
    assert size.cell("6×6", "variants").shown() == "full" and full.bold
    assert size.cell("5×5", "paper_acc").shown() == "73.72"
    assert size.cell("20×20", "paper_forgetting").shown() == "2.66"
    gap = size.cell("16×16", "acc")  # in the paper, not run here
    assert gap.shown() == "n/a" and size.notes[gap.notes[0]] == "no run of ours with this setting"
    assert size.cell("6×6", "paper_acc").shown() == "—"  # not in the paper
    assert "the paper's ablations are on S-CIFAR100; ours here are on Synthetic" in (
        size.notes.values()
    )
    assert size.provenance["run_ids"] == ["s0-full", "s0-proto_5", "s1-full", "s1-proto_5"]
    init = _table(report, "ablation_prototype_init")
    assert init.cell("random (noise)", "acc").shown() == "46.00 ± 1.41 [33.29, 58.71]"
    assert init.cell("random (noise)", "forgetting").shown() == "23.00 ± 2.83 [-2.41, 48.41]"
    semantic = init.cell("semantic (centre crop)", "forgetting")  # the full runs: 10, 12
    assert semantic.run_ids == ["s0-full", "s1-full"] and semantic.shown().startswith(
        "11.00 ± 1.41"
    )
    assert init.cell("random (noise)", "paper_acc").shown() == "72.54"
    assert init.cell("semantic (centre crop)", "paper_acc").shown() == "74.46"
    assert init.cell("semantic (resize)", "n").shown() == "0"
    loss = _table(report, "ablation_loss_terms")
    ce = loss.cell("CE only", "acc")  # a single run: no std, no interval, and a note saying so
    assert ce.shown() == "30.00" and ce.std is None
    assert loss.notes[ce.notes[0]] == "a single run: no standard deviation"
    assert loss.cell("CE + L_sm + L_sp", "acc").shown() == "62.00 ± 2.83 [36.59, 87.41]"
    assert loss.cell("CE only", "paper_acc").shown() == "—"
    assert loss.cell("CE + L_sp", "acc").shown() == "n/a"
    assert "the paper reports no loss-term ablation" in loss.notes.values()
    # the ablation runs carry no accuracy matrix: a warning each, and no heatmap
    assert "run s0-ce_only (s0-ce_only): no acc_matrix.json, no heatmap" in report.warnings
    assert not list((report.out / "figures" / "heatmaps").glob("heatmap_s0-*"))


def _optuna_study(path, n):
    """An Optuna study of the search's name with the first ``n`` search points as complete trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{path}"
    study = optuna.create_study(study_name="search", storage=storage, direction="maximize")
    dists = {
        "model.hyper_width": optuna.distributions.IntDistribution(8, 64, log=True),
        "model.hyper_depth": optuna.distributions.IntDistribution(1, 4),
    }
    for (w, d, *_), acc, _ in (small_export.SEARCH_POINTS * 5)[:n]:
        params = {"model.hyper_width": w, "model.hyper_depth": d}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=acc))
    return storage


def test_sensitivity_tables(report, tmp_path):
    summary = _table(report, "sensitivity_search")
    assert (
        summary.title
        == "Sensitivity in search sweep search, on the test splits (4 of 5 trials finished)"
    )
    # the searched keys' ranges, and each key's value in the best trial (trial_2: 65%)
    want = {
        "HN width": ("8 – 32", "32"),
        "HN depth": ("1 – 2", "1"),
        "lambda_sm": ("0.05 – 2", "2"),
        "lambda_sp": ("0.1 – 3", "0.1"),
        "temperature": ("1.5 – 6", "1.5"),
    }
    assert [r["param"].shown() for r in summary.rows] == list(want)
    for label, (tried, best) in want.items():
        assert summary.cell(label, "range").shown() == tried
        assert summary.cell(label, "n").shown() == "4"
        assert summary.cell(label, "best").shown() == best
        # 4 finished trials: no rank correlation (below the stated minimum), a note says why
        rho = summary.cell(label, "rho_acc")
        assert rho.mean is None and rho.shown() == "n/a"
        assert "rank correlations are shown from 10" in summary.notes[rho.notes[0]]
        # an export holds no Optuna study: no importances, and how to get them
        imp = summary.cell(label, "importance")
        assert imp.shown() == "n/a" and "pass --optuna-storage" in summary.notes[imp.notes[0]]
    detail = _table(report, "sensitivity_trials_search")
    assert [r["trial"].shown() for r in detail.rows] == [
        "trial_2",
        "trial_1",
        "trial_0",
        "trial_3",
        "trial_stopped",
    ]
    assert detail.cell("trial_2", "acc", "trial").bold
    assert detail.cell("trial_3", "forgetting", "trial").bold  # 5%: the least forgetting
    assert detail.cell("trial_stopped", "acc", "trial").shown() == "n/a"
    assert detail.cell("trial_stopped", "status", "trial").shown() == "stopped early"
    # with an Optuna storage: importances from 20 complete trials, a note below that
    few = _optuna_study(tmp_path / "few.db", 4)
    rep = paper_tables.build(
        None, tmp_path / "few", sweeps=["search"], source=ExportSource(SOURCE), optuna_storage=few
    )
    imp = _table(rep, "sensitivity_search").cell("HN width", "importance")
    note = _table(rep, "sensitivity_search").notes[imp.notes[0]]
    assert imp.shown() == "n/a" and "4 complete trial(s): importances are shown from 20" in note
    missing = f"sqlite:///{tmp_path}/missing.db"
    rep = paper_tables.build(
        None,
        tmp_path / "m",
        sweeps=["p-search"],
        source=ExportSource(SOURCE),
        optuna_storage=missing,
    )
    summary2 = _table(rep, "sensitivity_search")
    imp = summary2.cell("HN width", "importance")
    assert imp.shown() == "n/a" and "does not exist" in summary2.notes[imp.notes[0]]
    # a sweep named by its parent run id selects the same runs as by its name, and only those
    assert summary2.provenance["run_ids"] == summary.provenance["run_ids"]
    assert [t.name for t in rep.tables] == [
        "main_table",
        "comparison",
        "comparison_differences",
        "sensitivity_search",
        "sensitivity_trials_search",
    ]


def test_an_unknown_sweep_or_experiment_is_a_clear_error(tmp_path):
    with pytest.raises(AnalysisError, match="no sweep 'nosuch'.*search \\(p-search\\)"):
        paper_tables.build(None, tmp_path, sweeps=["nosuch"], source=ExportSource(SOURCE))
    with pytest.raises(AnalysisError, match="no experiment 'other' in export"):
        paper_tables.build("other", tmp_path, source=ExportSource(SOURCE))


def test_latex_compiles(report):
    engine = shutil.which("pdflatex")
    if engine is None:
        if os.environ.get("CI"):
            pytest.fail(
                "pdflatex is missing: .ci/run installs texlive-latex-base + texlive-latex-recommended"
            )
        pytest.skip(
            "pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended)"
        )
    tex = (report.out / "tables.tex").read_text()
    assert r"\toprule" in tex and r"\textbf{74.46 $\pm$ 0.08}" in tex
    r = subprocess.run(
        [engine, "-interaction=nonstopmode", "-halt-on-error", "tables.tex"],
        cwd=report.out,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout[-3000:]
    assert (report.out / "tables.pdf").stat().st_size > 10_000


def _png(path):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)[..., :3]
    assert img.shape[0] > 200 and img.shape[1] > 200
    assert img.std() > 0.05  # not blank
    return img


def test_heatmap_shows_the_matrix(report):
    import matplotlib

    from analysis.figures import heatmap_figure

    source = ExportSource(SOURCE)
    exp = source.experiment()
    (rec,) = [r for r in exp.runs if r.run_id == "ft-s2-base"]
    m, _ = source.matrix(rec)  # final row 22, 42, 62 %; 34% forgotten on the first two tasks
    assert np.allclose(m[2], [0.22, 0.42, 0.62]) and np.isnan(m[0, 1])
    img = _png(report.out / "figures" / "heatmaps" / "heatmap_ft-s2-ba.png")
    assert (report.out / "figures" / "heatmaps" / "heatmap_ft-s2-ba.pdf").stat().st_size > 1000
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
    for i in range(3):
        for j in range(i + 1):
            want = np.asarray(cmap(m[i, j]))[:3]
            got = pixel(i, j)
            assert np.abs(got - want).max() < 0.06, (i, j, got, want)
            colours[m[i, j]] = got
    assert np.allclose(pixel(0, 2), 1.0, atol=0.02)  # not evaluated yet: blank
    lo, hi = min(colours), max(colours)
    assert hi - lo > 0.2 and np.abs(colours[hi] - colours[lo]).max() > 0.2
    matplotlib.pyplot.close(fig)


def test_each_pah_run_gets_its_drift_figure(report):
    folder = report.out / "figures" / "drift"
    assert sorted(p.name for p in folder.glob("*.png")) == [
        f"drift_pah-s{s}-b.png" for s in range(3)
    ]
    _png(folder / "drift_pah-s0-b.png")  # a real picture, not a blank canvas


def _count_colour(img, rgb, tol=0.08):
    return int((np.abs(img - np.asarray(rgb)).max(axis=-1) < tol).sum())


def test_curves_and_pareto_figures(report):
    from matplotlib.colors import to_rgb

    img = _png(report.out / "figures" / "avg_acc_vs_tasks_synthetic.png")
    for c in ("C0", "C1", "C2"):  # three methods, three lines
        assert _count_colour(img, to_rgb(c)) > 50, c
    assert (report.out / "figures" / "avg_acc_vs_tasks_synthetic.pdf").is_file()
    img = _png(report.out / "figures" / "pareto_search.png")
    assert _count_colour(img, to_rgb("C3")) > 50  # the front
    _png(report.out / "figures" / "sensitivity_search.png")
    # the front: the finished trials no other beats on both accuracy and forgetting
    from pah_core.metrics import pareto_front

    points = [
        (f"trial_{i}", acc, forg) for i, (_, acc, forg) in enumerate(small_export.SEARCH_POINTS)
    ]
    assert sorted(p[0] for p in pareto_front(points)) == ["trial_0", "trial_2", "trial_3"]


def test_a_sensitivity_figure_of_a_wide_space_wraps_and_its_tick_labels_do_not_overlap(
    tmp_path, monkeypatch
):
    """Ten searched parameters: rows of at most 5 panels (one row of 10 was 9x wider than tall),
    and no two tick labels of a panel touch: learning rates near 1e-4 and a log axis spanning
    about a decade had their labels run into each other."""
    import matplotlib

    matplotlib.use("Agg")
    from analysis import figures
    from analysis.sensitivity import VAL_ACC
    from analysis.store import RunRecord

    keys = [
        "model.prototype_size",
        "model.hyper_width",
        "method.pah.lambda_sm",
        "method.pah.lambda_sp",
        "method.pah.temperature",
        "optim.lr_backbone",
        "optim.lr_hypernet",
        "optim.lr_prototypes",
        "model.hyper_depth",
        "model.prototype_channels",
    ]
    values = [
        (10, 16, 0.03, 0.1, 1.8, 1.0e-4, 2.0e-4, 8e-4, 1, 1),
        (20, 97, 0.3, 0.7, 6.5, 1.15e-4, 5.2e-4, 9e-4, 3, 3),
        (20, 937, 0.45, 1.0, 7.6, 1.9e-4, 1.0e-3, 7e-3, 4, 3),
        (10, 18, 0.9, 2.2, 2.0, 2.3e-4, 1.4e-3, 7.8e-3, 4, 3),
    ]
    trials = [
        RunRecord(
            f"r{i}",
            f"t{i}",
            "FINISHED",
            {k: str(v) for k, v in zip(keys, vs, strict=True)},
            {VAL_ACC: 0.5 + 0.02 * i},
            {},
            "",
        )
        for i, vs in enumerate(values)
    ]
    shown = []

    def keep(fig, out, stem, caption=""):
        fig.canvas.draw()
        shown.append(fig)
        return []

    monkeypatch.setattr(figures, "save", keep)
    figures.sensitivity_plot(trials, keys, "s", tmp_path, "sensitivity_s")
    (fig,) = shown
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(keys)
    width, height = fig.get_size_inches()
    assert width / height < 4, (width, height)
    renderer = fig.canvas.get_renderer()
    for ax in visible:
        boxes = [
            t.get_window_extent(renderer)
            for t in ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True)
            if t.get_text() and t.get_visible()
        ]
        # only the labels inside the panel are drawn
        x0, x1 = ax.get_window_extent(renderer).x0 - 20, ax.get_window_extent(renderer).x1 + 20
        boxes = sorted((b for b in boxes if b.x0 >= x0 and b.x1 <= x1), key=lambda b: b.x0)
        assert boxes, ax.get_xlabel()
        for a, b in zip(boxes, boxes[1:], strict=False):
            assert a.x1 <= b.x0, f"{ax.get_xlabel()}: tick labels overlap"
