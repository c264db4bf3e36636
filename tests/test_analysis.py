"""analysis/: tables and figures from a real MLflow store of real tiny runs (synthetic data, small CNN):
the MLflow path end to end (sqlite and an http server, the CLI, batched reads, clear errors, exports
written from it). The tables' cells themselves are checked against a hand-made export, without
training, in tests/test_tables_export.py.
"""

from __future__ import annotations

import statistics

import pytest

from analysis import store
from analysis.tables import load_paper
from tests.helpers import new_mlflow_store


def _parent(client, exp_id, name, kind, **tags):
    return client.create_run(
        exp_id,
        run_name=name,
        tags={"pah.role": "sweep", "sweep": name, "sweep_kind": kind, **tags},
    ).info.run_id


def _expect(values):
    vals = [100 * v for v in values]
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


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

    client = MlflowClient(new_mlflow_store(tmp_path / "mlflow.db"))
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

    client = MlflowClient(new_mlflow_store(tmp_path / "mlflow.db"))
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


def test_a_study_export_leaves_out_the_searches_that_did_not_finish(tmp_path):
    """compare_protocols.py exports after each search with ``finished_only``: a search cut off (its
    parent KILLED, or still RUNNING) stays out of the export, and so do its trials, until it
    finishes; an earlier export's finished copy of it is kept meanwhile."""
    import json

    from mlflow.tracking import MlflowClient

    from pah_sweep.study_export import export_and_report

    uri = new_mlflow_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    exp_id = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    parents, trials = {}, {}
    for name in ("s-done", "s-cut", "s-running"):
        parents[name] = _parent(client, exp_id, name, "search")
        trial = client.create_run(exp_id, tags={"mlflow.parentRunId": parents[name], "sweep": name})
        trials[name] = trial.info.run_id
        client.log_metric(trial.info.run_id, "final_avg_acc", 0.5)
    client.set_terminated(parents["s-done"], "FINISHED")
    client.set_terminated(parents["s-cut"], "KILLED")
    out = tmp_path / "out"

    def exported() -> tuple[list[str], int]:
        meta = json.loads((out / "export" / "experiment.json").read_text())
        names = [
            json.loads((out / "export" / "sweeps" / f"{p}.json").read_text())["name"]
            for p in meta["sweeps"]
        ]
        return names, len(meta["runs"])

    client.set_terminated(trials["s-done"], "FINISHED")
    export_and_report(uri, "e", out, report=False, finished_only=True)
    assert exported() == (["s-done"], 1)
    # MLflow's end time is kept (a sweep's wall time ends there; trials log no wall_seconds)
    (run,) = [json.loads(f.read_text()) for f in (out / "export" / "runs").glob("*.json")]
    end = client.get_run(trials["s-done"]).info.end_time
    assert run["end_time"] == end and isinstance(end, int)
    # without the flag (compare_methods.py resumes from partial sweeps), every sweep is exported
    export_and_report(uri, "e", tmp_path / "all", report=False)
    meta = json.loads((tmp_path / "all" / "export" / "experiment.json").read_text())
    assert len(meta["sweeps"]) == 3 and len(meta["runs"]) == 3
    # the cut-off search, resumed, finishes: it joins the export
    client.set_terminated(parents["s-cut"], "FINISHED")
    export_and_report(uri, "e", out, report=False, finished_only=True)
    assert sorted(exported()[0]) == ["s-cut", "s-done"] and exported()[1] == 2
    # a new store holding s-done again, cut off: the export keeps its finished copy from before
    uri2 = new_mlflow_store(tmp_path / "second.db")
    client2 = MlflowClient(uri2)
    exp2 = client2.create_experiment("e", artifact_location=(tmp_path / "art2").as_uri())
    again = _parent(client2, exp2, "s-done", "search")
    client2.set_terminated(again, "KILLED")
    export_and_report(uri2, "e", out, report=False, finished_only=True)  # nothing finished there
    assert sorted(exported()[0]) == ["s-cut", "s-done"] and exported()[1] == 2
    fresh = _parent(client2, exp2, "s-new", "search")
    client2.set_terminated(fresh, "FINISHED")
    export_and_report(uri2, "e", out, report=False, finished_only=True)
    names, _ = exported()
    assert sorted(names) == ["s-cut", "s-done", "s-new"]
    assert (
        parents["s-done"] in json.loads((out / "export" / "experiment.json").read_text())["sweeps"]
    )
