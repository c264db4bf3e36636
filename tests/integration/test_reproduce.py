"""sweeps/reproduce.py end to end on a real local Ray, a real sqlite MLflow store and real CIFAR-100
(the tiny protocol, seed 0): both parts, the export, the report built from the export, --resume;
and the report from the export against the report from MLflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis import paper_tables
from analysis.export import portable
from analysis.tables import FULL_FROM_TAG
from sweeps import reproduce
from sweeps.ablation import VARIANTS
from tests.helpers import new_mlflow_store
from tests.test_reproduce import _argv, _main, _runs

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "repro-tiny"
MAIN, ABLATION = "repro-tiny-main", "repro-tiny-ablation"
MAIN_ROWS = [  # the order of our rows in the main table
    "PAH (ours)",
    "PAH, official code (ours)",
    "EWC (ours)",
    "Fine-tune (ours)",
    "LwF (ours)",
]


@pytest.fixture(scope="module")
def study(ray_cluster, tmp_path_factory):
    """The whole study, trained as a researcher would after a Ctrl-C: the main part, one cell at a
    time, is interrupted (SIGINT) in its second cell; the study stops there (Tune returns from an
    interrupted sweep as from a finished one: the next part must not start) and says how to go on;
    then ``--resume`` continues the main part (the first cell is not retrained) and starts the
    ablation part, which had not begun. (A SIGKILLed sweep: tests/integration/test_sweeps.py.)"""
    from mlflow.tracking import MlflowClient

    tmp = tmp_path_factory.mktemp("study")
    # The store exists before the study starts, so that polling it never races the schema
    # migration of the study's first connection (as in test_sweeps.py). The continuation below
    # (test_a_study_continues_from_its_export_in_a_new_workdir) creates its store itself.
    uri = new_mlflow_store(tmp / "work" / "mlflow.db")
    script = [sys.executable, str(REPO / "sweeps" / "reproduce.py"), "--address", ray_cluster]
    proc = subprocess.Popen(
        [*script, *_argv(tmp, "--parts", "main", "--max-concurrent", "1")],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if MlflowClient(uri).get_experiment_by_name(EXPERIMENT) is not None:
                cells = sorted(_runs(uri)[2], key=lambda c: c.info.start_time)
                # One cell at a time: a cell's run appears only after Tune recorded the cell
                # before it as done.
                if len(cells) >= 2:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("the main part did not reach its second cell within 240 s")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130  # stopped, not gone on to the ablation part
    finally:
        if proc.poll() is None:
            proc.kill()
    _, parents, cells_now = _runs(uri)
    assert ABLATION not in parents
    # The interrupted sweep says so: its parent KILLED (not FINISHED, which a resume would skip:
    # cells never started are not done), a cell cut short (if the signal landed inside one: tiny
    # cells often finish first) tagged as interrupted, none as stopped by ASHA.
    assert parents[MAIN].info.status == "KILLED"
    stopped = [c for c in cells_now if c.info.status != "FINISHED"]
    assert all(c.data.tags.get("pah.interrupted") == "true" for c in stopped)
    assert not any("pah.stopped_early" in c.data.tags for c in cells_now)
    done = {c.info.run_id for c in cells[:-1]}
    # The joint reference part costs one more Ray cell: Study.cells is checked below instead.
    rc, printed = _main(_argv(tmp, "--resume", "--parts", "main,ablation"))
    assert rc == 0, printed[-3000:]
    assert f"main: sweep {MAIN} (5 cells)" in printed  # resumed, not skipped
    assert f"ablation: sweep {ABLATION} (3 cells)" in printed
    return {"tmp": tmp, "out": tmp / "out", "uri": uri, "done_before_kill": done}


def test_study_trains_every_cell_once_and_exports_it(study):
    import mlflow.artifacts

    client, parents, children = _runs(study["uri"])
    assert set(parents) == {MAIN, ABLATION}
    assert parents[ABLATION].data.tags[FULL_FROM_TAG] == f"{MAIN}:pah"
    by_sweep: dict[str, dict] = {MAIN: {}, ABLATION: {}}
    for c in children:
        by_sweep[c.data.tags["sweep"]][c.data.tags["variant"]] = c
        assert c.info.status == "FINISHED" and c.data.metrics["tasks_done"] == 2
        assert c.data.tags["protocol"] == "tiny" and c.data.tags["preset"] == EXPERIMENT
        assert c.data.params["run.seed"] == "0"
    assert sorted(by_sweep[MAIN]) == sorted(reproduce.PARTS["main"].variants)
    # one at a time, the main part's cells started in the grid's order
    started = sorted(by_sweep[MAIN].values(), key=lambda c: c.info.start_time)
    assert [c.data.tags["variant"] for c in started] == list(reproduce.PARTS["main"].variants)
    assert sorted(by_sweep[ABLATION]) == ["ce+sm", "ce+sp", "ce_only"]  # no second "full"
    official = by_sweep[MAIN]["pah_official"].data.params
    assert all(official[k] == str(v) for k, v in VARIANTS["official_code"].items())
    assert by_sweep[MAIN]["pah"].data.params["schedule.eval_bn"] == "eval"

    export = study["out"] / "export"
    files = sorted((export / "runs").glob("*.json"))
    assert len(files) == len(children) == 8  # one file per cell
    assert len(list((export / "sweeps").glob("*.json"))) == 2
    by_id = {c.info.run_id: c for c in children}
    for f in files:
        d = json.loads(f.read_text())
        run = by_id[d["run_id"]]
        logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/acc_matrix.json")
        assert d["acc_matrix"] == logged
        assert d["params"] == run.data.params and d["metrics"] == run.data.metrics
        assert d["tags"] == run.data.tags
        assert (d["sweep"], d["variant"], d["seed"]) == (
            run.data.tags["sweep"],
            run.data.tags["variant"],
            "0",
        )
        history = {m.step: m.value for m in client.get_metric_history(d["run_id"], "avg_acc")}
        assert {int(k): v for k, v in d["history"]["avg_acc"].items()} == history
        assert len(d["history"]["forgetting"]) == 2
    size = sum(f.stat().st_size for f in export.rglob("*.json"))
    assert size < 8 * 15_000, size  # ~30 runs of the 10-task protocol stay well under 1 MB


def test_report_has_every_row_and_the_shared_full_row(study):
    _, _, children = _runs(study["uri"])
    ids = {(c.data.tags["sweep"], c.data.tags["variant"]): c.info.run_id for c in children}
    main = json.loads((study["out"] / "main_table.json").read_text())
    ours = [r for r in main["rows"] if r["source"]["shown"] == "this work"]
    assert [r["method"]["shown"] for r in ours] == MAIN_ROWS
    pah, official = ours[0], ours[1]
    assert pah["cifar100:acc"]["run_ids"] == [ids[(MAIN, "pah")]]
    assert official["cifar100:acc"]["run_ids"] == [ids[(MAIN, "pah_official")]]

    loss = json.loads((study["out"] / "ablation_loss_terms.json").read_text())
    rows = {r["setting"]["shown"]: r for r in loss["rows"]}
    assert list(rows) == ["CE only", "CE + L_sm", "CE + L_sp", "CE + L_sm + L_sp"]
    for setting, variant in (
        ("CE only", "ce_only"),
        ("CE + L_sm", "ce+sm"),
        ("CE + L_sp", "ce+sp"),
    ):
        assert rows[setting]["acc"]["run_ids"] == [ids[(ABLATION, variant)]]
    full = rows["CE + L_sm + L_sp"]
    assert full["acc"]["run_ids"] == [ids[(MAIN, "pah")]]  # the main part's pah run
    assert full["variants"]["shown"] == f"pah of {MAIN}" and full["n"]["shown"] == "1"
    notes = " ".join(loss["notes"][n] for n in full["acc"]["notes"])
    assert "pah of sweep repro-tiny-main" in notes and "differ from" not in notes

    md = (study["out"] / "report.md").read_text()
    for label in MAIN_ROWS + ["CE + L_sm + L_sp"]:
        assert label in md
    figures = study["out"] / "figures"
    assert (figures / "avg_acc_vs_tasks_cifar100.png").is_file()
    assert len(list((figures / "heatmaps").glob("*.png"))) == 8


# What may differ between two reports of the same runs: the source they name and when they were made.
PROVENANCE = ("MLflow", "mlflow_uri", "generated", "# PAH analysis (")


def test_report_from_export_equals_report_from_mlflow(study, tmp_path):
    out = study["out"]
    via_mlflow = tmp_path / "mlflow"
    paper_tables.build(EXPERIMENT, via_mlflow, mlflow_uri=study["uri"])
    # the one command that rebuilds the report from the export, with no MLflow
    via_cli = tmp_path / "cli"
    assert paper_tables.main(["--from-export", str(out / "export"), "--out", str(via_cli)]) == 0
    files = sorted(p.name for p in via_mlflow.iterdir() if p.is_file())
    assert {"main_table.csv", "ablation_loss_terms.tex", "report.md", "index.json"} <= set(files)
    for name in files:
        want = (via_mlflow / name).read_text().splitlines()
        for other in (out, via_cli):
            got = (other / name).read_text().splitlines()
            assert len(got) == len(want), (other, name)
            for a, b in zip(want, got, strict=True):  # equal but for provenance lines
                assert a == b or any(m in a for m in PROVENANCE), (other, name, a, b)
    prov = json.loads((out / "main_table.json").read_text())["provenance"]
    assert prov["mlflow_uri"] == f"export {out / 'export'} of {portable(study['uri'])}"
    assert prov == {
        **json.loads((via_mlflow / "main_table.json").read_text())["provenance"],
        "mlflow_uri": prov["mlflow_uri"],
        "generated": prov["generated"],
    }
    pngs = sorted(p.relative_to(via_mlflow) for p in via_mlflow.rglob("*.png"))
    assert pngs == sorted(p.relative_to(out) for p in out.rglob("*.png"))
    for p in pngs:  # the same histories and matrices draw the same pixels
        assert (via_mlflow / p).read_bytes() == (out / p).read_bytes(), p


def test_resume_retrains_nothing_and_rebuilds_the_report(study, capsys):
    tmp, out = study["tmp"], study["out"]
    _, _, before = _runs(study["uri"])
    export_before = {p: p.read_bytes() for p in (out / "export").rglob("*.json")}
    report_mtime = (out / "report.md").stat().st_mtime_ns
    rc, printed = _main(_argv(tmp, "--resume", "--parts", "main,ablation"))
    assert rc == 0 and printed.count("already finished, skipped") == 2
    client, parents, after = _runs(study["uri"])
    assert len(parents) == 2
    assert sorted(c.info.run_id for c in after) == sorted(c.info.run_id for c in before)
    for c in after:
        steps = [m.step for m in client.get_metric_history(c.info.run_id, "tasks_done")]
        if c.info.run_id in study["done_before_kill"]:  # trained once, before the kill
            assert sorted(steps) == [0, 1], c.data.tags["variant"]
        else:  # an interrupted cell retrains at most the task it was in
            assert set(steps) == {0, 1} and len(steps) <= 3
    assert {p: p.read_bytes() for p in (out / "export").rglob("*.json")} == export_before
    assert (out / "report.md").stat().st_mtime_ns > report_mtime

    # without --resume, the existing study is an error that says what to do
    assert reproduce.main(_argv(tmp)) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert len(_runs(study["uri"])[2]) == len(before)


def test_a_study_continues_from_its_export_in_a_new_workdir(study, tmp_path):
    """The study moved to another machine: its store is gone, its export (committed) is there.
    ``--resume`` in a new workdir trains only the part the export lacks (the joint reference), and
    the export written at the end keeps the exported parts beside it, naming their store."""
    import shutil

    from analysis.export import ExportSource

    out = tmp_path / "out"
    shutil.copytree(study["out"] / "export", out / "export")
    old = {p.relative_to(out): p.read_bytes() for p in (out / "export" / "runs").glob("*.json")}
    old_uri = ExportSource(out / "export").meta["mlflow_uri"]

    def argv(work: str, *extra: str) -> list[str]:
        where = ["--workdir", str(tmp_path / work), "--out", str(out)]
        return ["--protocol", "tiny", "--seeds", "0", *where, "--resume", *extra]

    # an export of another experiment is refused before anything trains
    rc, _ = _main(argv("other", "--experiment", "another"))
    assert rc == 2 and not (tmp_path / "other").exists()

    # nothing to train: the report is rebuilt from the export as it is
    rc, printed = _main(argv("idle", "--parts", "main,ablation"))
    assert rc == 0, printed[-3000:]
    assert printed.count("finished in the export") == 2 and "as it is" in printed

    rc, printed = _main(argv("work"))
    assert rc == 0, printed[-3000:]
    assert printed.count("finished in the export") == 2
    assert "reference: sweep repro-tiny-reference (1 cells)" in printed
    export = ExportSource(out / "export")
    names = {export.record(p)["tags"]["sweep"] for p in export.meta["sweeps"]}
    assert names == {MAIN, ABLATION, "repro-tiny-reference"}
    assert [sorted(m["sweeps"]) for m in export.merged_from] == [sorted([MAIN, ABLATION])]
    assert export.merged_from[0]["mlflow_uri"] == old_uri
    for path, data in old.items():
        assert (out / path).read_bytes() == data, path
    _, parents, children = _runs(f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}")
    assert list(parents) == ["repro-tiny-reference"] and len(children) == 1
    assert "Joint" in (out / "report.md").read_text()
