"""analysis/: tables and figures from a real MLflow store of real tiny runs (synthetic data, small CNN):
the MLflow path end to end (sqlite and an http server, the CLI, batched reads, clear errors, exports
written from it). The tables' cells themselves are checked against a hand-made export, without
training, in tests/test_tables_export.py.
"""

from __future__ import annotations

import math
import statistics

import pytest

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
