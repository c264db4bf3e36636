"""analysis/: tables and figures from a real MLflow store of real tiny runs (synthetic data, small CNN):
the MLflow path end to end (sqlite and an http server, the CLI, batched reads, clear errors, exports
written from it). The tables' cells themselves are checked against a hand-made export, without
training, in tests/test_tables_export.py.
"""

from __future__ import annotations

import math

import pytest

from analysis import paper_tables, store
from analysis.export import portable
from analysis.store import AnalysisError
from tests.helpers import new_mlflow_store, tiny_config, tiny_stream
from tests.test_analysis import _expect, _parent

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

    # 2 of the stream's 3 tasks: a matrix with forgetting, the least the tables need.
    cfg = tiny_config("schedule.epochs_per_task=1", "schedule.max_tasks=2", *overrides)
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


@pytest.fixture(scope="module")
def mlstore(tmp_path_factory):
    """One sqlite store: a baselines sweep (3 methods x seeds), an ablation sweep, a search sweep
    (4 trials + 1 stopped early) with its Optuna study, and a hand-made experiment with gaps."""
    import optuna
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from pah_core.mlflow_reporter import get_or_create_experiment

    tmp = tmp_path_factory.mktemp("mlstore")
    uri = new_mlflow_store(tmp / "mlflow.db")
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
