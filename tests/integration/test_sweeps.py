"""Sweeps on a real local Ray (started once for this module), real CIFAR-100 subsets and a real
sqlite MLflow store in a temp folder."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import new_mlflow_store, tiny_cifar

REPO = Path(__file__).resolve().parents[2]
# The trials that must learn (ASHA tells good from bad learning rates) or be caught mid-trial: 2
# tasks of real CIFAR-100, 100 training and 10 test images per class, 3 epochs, a small CNN. At
# this scale a task learns to ~40% (chance 10%) in about a second.
TINY = tiny_cifar(data__train_per_class=100, schedule__epochs_per_task=3)
# The others: what they check does not depend on how much a trial learns (the same 10 test images
# per class), so 60 training images per class and 1 epoch.
SMALL = tiny_cifar(schedule__epochs_per_task=1)
GOOD = {"optim.lr_backbone": 1e-3}
GOOD_TOO = {"optim.lr_backbone": 1e-3, "model.hyper_width": 64}
# Learning rates at the bottom of the search ranges: ~17% after task 1 where the others reach ~40%.
BAD = {"optim.lr_backbone": 1e-5, "optim.lr_hypernet": 1e-4, "optim.lr_prototypes": 1e-4}
# Far outside the ranges: the hypernetwork's weights overflow and the loss becomes NaN.
DIVERGE = {"optim.lr_backbone": 1e30, "optim.lr_hypernet": 1e30, "optim.lr_prototypes": 1e30}


def _store_args(tmp_path, name="s"):
    """The sweep's flags for its Ray results and MLflow store in ``tmp_path``; the store made empty
    first (tests.helpers.new_mlflow_store) unless it exists. The comparison's sweeps and a failed
    launch below create their stores themselves."""
    if not (tmp_path / "mlflow.db").exists():
        new_mlflow_store(tmp_path / "mlflow.db")
    return [
        "--storage",
        str(tmp_path / "ray"),
        "--mlflow-uri",
        str(tmp_path / "mlflow.db"),
        "--name",
        name,
    ]


def _sweep(tmp_path, *argv, cells=SMALL):
    from pah_sweep.search import main

    return main("cifar100", [*_store_args(tmp_path), *cells, *argv])


def _points(tmp_path, *points):
    f = tmp_path / "points.json"
    f.write_text(json.dumps(list(points)))
    return ["--points", str(f)]


def _runs(tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pah-cifar100")
    runs = [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("pah.role") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def _matrix(client, run):
    from mlflow.artifacts import load_dict

    return load_dict(f"{run.info.artifact_uri}/acc_matrix.json")


def test_optuna_asha_sweep_logs_parent_and_children(ray_cluster, tmp_path, capsys):
    # One trial at a time, in order: paper defaults, two points that learn fast, then a bad one.
    # ASHA (grace 2 tasks: PAH's distillation weights act from task 2; factor 2) stops a trial
    # whose result at task 2 is below the median of the results recorded there before it: the
    # median of three, two of which learn, is a learning trial. 3 tasks, so that one is left.
    rc = _sweep(
        tmp_path,
        "--num-samples",
        "4",
        "--max-concurrent",
        "1",
        "--set",
        "schedule.max_tasks=3",
        *_points(tmp_path, GOOD, GOOD_TOO, BAD),
        cells=TINY,
    )
    assert rc == 0
    client, parents, children = _runs(tmp_path)
    assert len(parents) == 1 and len(children) == 4
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    for c in children:
        m = _matrix(client, c)
        assert len(m["acc_matrix"]) == int(c.data.metrics["tasks_done"])
        assert (
            c.data.tags["git_sha"]
            and c.data.tags["dataset_fingerprint"]
            and c.data.tags["sweep"] == "s"
        )
        assert {a.path for a in client.list_artifacts(c.info.run_id)} >= {
            "acc_matrix.json",
            "acc_matrix.png",
            "acc_matrix_table.json",
        }
    bad = [c for c in children if float(c.data.params["optim.lr_backbone"]) == 1e-5]
    assert len(bad) == 1
    assert (
        bad[0].data.metrics["tasks_done"] == 2
        and bad[0].data.tags.get("pah.stopped_early") == "asha"
    )
    assert any(c.data.metrics["tasks_done"] == 3 and c.info.status == "FINISHED" for c in children)
    assert parents[0].data.tags["asha_grace_tasks"] == "2"
    assert parents[0].data.tags["method"] == "pah"
    parent = parents[0]
    assert parent.info.status == "FINISHED" and "best_avg_acc" in parent.data.metrics
    best = json.loads(
        (Path(parent.info.artifact_uri.removeprefix("file://")) / "best_config.json").read_text()
    )
    assert best["tasks_done"] == 3
    out = capsys.readouterr().out
    assert "stopped early (ASHA)" in out and "[sweep] best on the validation splits:" in out
    _check_what_a_researcher_sees(tmp_path, client, parent, children, bad[0], out)


def _check_what_a_researcher_sees(tmp_path, client, parent, children, stopped, out):
    """Issue 27's acceptance on a real search: the objective on every trial's run, the ASHA stop
    PRUNED in Optuna and FINISHED (not red) in MLflow, Optuna trials and MLflow runs linked both
    ways, short names in start order, and the parent's leaderboard with links."""
    import optuna

    from pah_core.tracking import ui_page
    from pah_sweep.leaderboard import DESCRIPTION_TAG
    from pah_sweep.names import MLFLOW_RUN_ATTR, OPTUNA_NUMBER_TAG, STOPPED_WHY_TAG

    assert all("objective/val_acc" in c.data.metrics for c in children)
    assert all(c.info.status == "FINISHED" for c in children)  # the stop too: only failures red
    assert stopped.data.tags[STOPPED_WHY_TAG] == "stopped by ASHA after task 2"
    assert sorted(c.info.run_name.split()[0] for c in children) == ["#1", "#2", "#3", "#4"]
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    by_run = {t.user_attrs[MLFLOW_RUN_ATTR]: t for t in study.trials}
    assert set(by_run) == {c.info.run_id for c in children}
    for c in children:
        assert c.data.tags[OPTUNA_NUMBER_TAG] == str(by_run[c.info.run_id].number)
        assert c.info.run_name.startswith(f"#{by_run[c.info.run_id].number + 1} ")
    assert by_run[stopped.info.run_id].state == optuna.trial.TrialState.PRUNED
    assert study.metric_names == ["val. accuracy (unrun tasks = 0)"]
    text = client.get_run(parent.info.run_id).data.tags[DESCRIPTION_TAG]
    for c in children:
        assert ui_page(c.info.experiment_id, c.info.run_id) in text
    assert "**best**" in text and "paper defaults" in text
    assert ui_page(parent.info.experiment_id, parent.info.run_id) in out  # printed at the end


def test_multi_objective_sweep_records_pareto_set_and_survives_a_nan_trial(
    ray_cluster, tmp_path, capsys
):
    import optuna

    rc = _sweep(
        tmp_path,
        "--objectives",
        "acc,forgetting",
        "--num-samples",
        "3",
        "--max-concurrent",
        "1",
        "--grace-tasks",
        "2",
        *_points(tmp_path, GOOD, DIVERGE),
    )
    assert rc == 0  # the diverged trial fails alone; the sweep finishes normally
    client, parents, children = _runs(tmp_path)
    parent = parents[0]
    pareto = json.loads(
        (Path(parent.info.artifact_uri.removeprefix("file://")) / "pareto.json").read_text()
    )
    assert len(pareto) >= 1 and all(p["tasks_done"] == 2 for p in pareto)
    pictures = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"optuna_pareto_front.png", "optuna_parallel_coordinates.png"} <= pictures
    assert parent.data.metrics["trials_failed"] == 1
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2 and all(len(t.values) == 2 for t in done)
    failed = [c for c in children if c.info.status == "FAILED"]
    assert len(failed) == 1 and "diverged" in failed[0].data.tags["error"]
    out = capsys.readouterr().out
    assert "1 failed" in out and "FloatingPointError" in out and "diverged" in out


def test_trial_with_two_workers_counts_every_test_image_once(ray_cluster, tmp_path):
    rc = _sweep(
        tmp_path,
        "--num-samples",
        "1",
        "--workers-per-trial",
        "2",
        "--cpus-per-worker",
        "1",
        "--set",
        "schedule.max_tasks=1",
    )
    assert rc == 0
    client, _, children = _runs(tmp_path)
    (child,) = children
    m = _matrix(client, child)
    # 10 classes x 10 test images: each counted once although two ranks evaluated shards of them.
    assert m["total"] == [[100] + [0] * 9]
    assert child.info.status == "FINISHED"


def test_trial_too_big_for_the_cluster_stops_at_launch(ray_cluster, tmp_path, capsys):
    rc = _sweep(tmp_path, "--workers-per-trial", "8", "--cpus-per-worker", "1")
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot start" in err and "8 worker(s) x 1 CPU = 8.01 CPUs, but the cluster has 4" in err
    assert not (tmp_path / "ray" / "s").exists()


def test_killed_sweep_resumes_without_rerunning_or_duplicating(ray_cluster, tmp_path):
    argv = [
        sys.executable,
        str(REPO / "sweeps" / "cifar100_search.py"),
        "--address",
        ray_cluster,
        *_store_args(tmp_path),
        "--num-samples",
        "3",
        "--max-concurrent",
        "1",
        *TINY,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # The store exists before the sweep starts (_store_args), so that polling it below never races
    # the schema migration of the sweep's first connection.
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        # One trial at a time. Kill the driver mid-sweep: the first trial finished, the second
        # mid-run (it logged its first task). Tune snapshots the sweep every second
        # (launch.execute), so by then its state knows the second trial.
        while time.time() < deadline:
            if (tmp_path / "mlflow.db").exists():
                _, _, children = _runs(tmp_path)
                statuses = [(c.info.status, "tasks_done" in c.data.metrics) for c in children]
                if ("FINISHED", True) in statuses and ("RUNNING", True) in statuses:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("no trial was mid-run after a finished one within 240 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, _, before = _runs(tmp_path)
    first = next(c for c in before if c.info.status == "FINISHED")
    assert (
        subprocess.run([*argv, "--resume"], env=env, capture_output=True, timeout=400).returncode
        == 0
    )
    client, parents, children = _runs(tmp_path)
    seen = [
        (c.data.tags["ray_trial_id"], c.info.status, c.data.metrics.get("tasks_done"))
        for c in children
    ]
    assert len(parents) == 1 and len(children) == 3, seen
    assert len({c.data.tags["ray_trial_id"] for c in children}) == 3

    # The finished trial was not trained again, the interrupted one continued: every trial's task
    # metrics were logged once per task.
    def steps(run) -> list[int]:
        return sorted(m.step for m in client.get_metric_history(run.info.run_id, "tasks_done"))

    for c in children:
        assert steps(c) == list(range(int(c.data.metrics["tasks_done"]))), c.data.tags
    assert steps(first) == [0, 1] and first.info.run_id in {c.info.run_id for c in children}
    assert all(c.info.status in ("FINISHED", "KILLED") for c in children)
    assert parents[0].info.status == "FINISHED"


def test_ablation_grid_runs_every_variant_to_the_end(ray_cluster, tmp_path):
    from sweeps.ablation import main

    rc = main([*_store_args(tmp_path, "abl"), "--variants", "full,ce_only", "--seeds", "0", *SMALL])
    assert rc == 0
    _, parents, children = _runs(tmp_path)
    assert parents[0].data.tags["sweep_kind"] == "ablation"
    variants = {c.data.tags["variant"]: c for c in children}
    assert set(variants) == {"full", "ce_only"}
    assert variants["ce_only"].data.params["method.pah.use_sm"] == "False"
    assert variants["full"].data.params["method.pah.use_sm"] == "True"
    # A grid has no early stopping: both cells ran every task.
    assert all(c.data.metrics["tasks_done"] == 2 and c.info.status == "FINISHED" for c in children)


FIRST_TASK = ["--hpo-protocol", "first_task", "--num-samples", "1", "--final-seeds", "2"]


@pytest.fixture(scope="module")
def first_task_search(ray_cluster, tmp_path_factory):
    """A --hpo-protocol first_task search of one trial and its final sweep on 2 fresh seeds: the
    folder of its store and Ray results (sweep "s", finals "s-final")."""
    tmp = tmp_path_factory.mktemp("first_task")
    assert _sweep(tmp, *FIRST_TASK) == 0
    return tmp


def test_resume_keeps_its_settings_and_a_failed_launch_leaves_no_trace(
    first_task_search, tmp_path, capsys
):
    """A --resume with another --set is refused, naming the key, and changes nothing (here of the
    finished first_task search); a launch that fails after its parent run exists (here the Optuna
    storage beside the MLflow store is not a database: the Tuner opens it) leaves that run FAILED,
    not RUNNING, and no sweep folder that would block the name."""
    from mlflow.tracking import MlflowClient

    tmp = first_task_search
    _, parents_before, children_before = _runs(tmp)
    capsys.readouterr()
    assert _sweep(tmp, *FIRST_TASK, "--resume", "--set", "model.hyper_width=64") == 2
    err = capsys.readouterr().err
    assert "was started with other config overrides (--set): model.hyper_width = unset" in err
    _, parents, children = _runs(tmp)
    assert [p.info.status for p in parents] == ["FINISHED", "FINISHED"]
    assert sorted(c.info.run_id for c in children) == sorted(c.info.run_id for c in children_before)
    assert [(p.info.run_id, p.info.end_time) for p in parents] == [
        (p.info.run_id, p.info.end_time) for p in parents_before
    ]

    other = tmp_path / "other"
    other.mkdir()
    (other / "optuna.db").write_text("not a database\n")
    from pah_sweep.search import main

    one = ["--num-samples", "1", "--set", "schedule.max_tasks=1"]
    store = ["--storage", str(tmp_path / "ray"), "--mlflow-uri", str(other / "mlflow.db")]
    assert main("cifar100", [*store, "--name", "broken", *SMALL, *one]) == 2
    err = capsys.readouterr().err
    assert "the Optuna storage" in err and "optuna.db cannot be used" in err
    client = MlflowClient(f"sqlite:///{other / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("pah-cifar100").experiment_id])
    assert run.data.tags["sweep"] == "broken" and run.info.status == "FAILED"
    assert "Optuna storage" in run.data.tags["error"]
    assert not (tmp_path / "ray" / "broken").exists()  # the name is free again


def test_first_task_protocol_selects_then_evaluates_on_fresh_seeds(first_task_search):
    """--hpo-protocol first_task: trials train (and are validated on) the first task only; the
    selected configuration then runs the whole stream on fresh seeds, as a sweep of its own."""
    tmp_path = first_task_search
    client, parents, children = _runs(tmp_path)
    search = next(p for p in parents if p.data.tags["sweep"] == "s")
    final = next(p for p in parents if p.data.tags["sweep"] == "s-final")

    def under(parent):
        return [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]

    (trial,) = under(search)
    assert (
        trial.data.metrics["tasks_done"] == 1 and search.data.tags["hpo_protocol"] == "first_task"
    )
    assert search.data.metrics["compute/trial_tasks"] == 1
    # Nothing acts on the distillation weights in task 1: fixed at the defaults, not searched.
    fixed = "method.pah.lambda_sm,method.pah.lambda_sp,method.pah.temperature"
    assert search.data.tags["fixed_at_defaults"] == fixed
    assert trial.data.params["method.pah.lambda_sm"] == "0.5"
    finals = under(final)
    assert len(finals) == 2 and all(c.data.metrics["tasks_done"] == 2 for c in finals)
    trial_seed = int(trial.data.params["run.seed"])
    assert sorted(int(c.data.params["run.seed"]) for c in finals) == [
        trial_seed + 1,
        trial_seed + 2,
    ]
    best = json.loads(
        (Path(search.info.artifact_uri.removeprefix("file://")) / "best_config.json").read_text()
    )
    for c in finals:  # the selected trial's searched settings, exactly
        assert all(c.data.params[k] == trial.data.params[k] for k in best["config"])
    assert final.data.tags["selected_from"] == "s"
    assert final.data.tags["selected_trial"] == best["trial"]
    assert float(final.data.tags["selected_val_avg_acc"]) == pytest.approx(best["val_avg_acc"])


def test_a_baseline_is_searched_over_the_space_its_method_file_declares(ray_cluster, tmp_path):
    """--method lwf: the trials are LwF's, sampled from lwf.py's space, its published defaults
    first; the parent run records the space it searched."""
    import mlflow.artifacts

    rc = _sweep(tmp_path, "--method", "lwf", "--num-samples", "2", "--max-concurrent", "1")
    assert rc == 0
    _, parents, children = _runs(tmp_path)
    (parent,) = parents
    assert parent.data.tags["method"] == "lwf" and len(children) == 2
    space = mlflow.artifacts.load_dict(f"{parent.info.artifact_uri}/sweep_config.json")
    assert set(space["search_space"]) == {
        "optim.lr_backbone",
        "optim.lr_head",
        "method.lwf.lambda_kd",
        "method.lwf.temperature",
    }
    assert {c.data.params["method.name"] for c in children} == {"lwf"}
    kd = sorted(float(c.data.params["method.lwf.lambda_kd"]) for c in children)
    assert 1.0 in kd and len(set(kd)) == 2  # the published default, and a sampled value
    assert all(0.1 <= v <= 10.0 for v in kd)
    names = sorted(c.data.tags["mlflow.runName"] for c in children)
    # LwF's own name keys (lwf.py): the sampled trial shows its distillation weight.
    assert names[0].endswith(": paper defaults") and " kd" in names[1], names


COMPARISON = [
    "--name", "c", "--methods", "pah,lwf", "--references", "finetune", "--num-samples", "1",
    "--startup-trials", "1", "--first-k", "1", "--final-seeds", "2", *SMALL,
]  # fmt: skip


def _comparison_argv(tmp, workdir="w", out="out"):
    return [*COMPARISON, "--workdir", str(tmp / workdir), "--out", str(tmp / out)]


def _compared(uri):
    """A comparison's runs in its store: (client, experiment id, all runs, parents by sweep)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("compare-methods")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = {r.data.tags["sweep"]: r for r in runs if r.data.tags.get("pah.role") == "sweep"}
    return client, exp.experiment_id, runs, parents


def _under(runs, parent):
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


@pytest.fixture(scope="module")
def comparison(ray_cluster, tmp_path_factory):
    """sweeps/compare_methods.py on PAH and LwF (the first_k protocol, k=1: one tuning task) with
    a fine-tune reference, 2 final seeds, into its own new workdir (it creates its store): the
    folder, its store's URI and its runs."""
    from sweeps.compare_methods import main

    tmp = tmp_path_factory.mktemp("comparison")
    assert main(_comparison_argv(tmp)) == 0
    uri = f"sqlite:///{tmp / 'w' / 'mlflow.db'}"
    _, _, runs, parents = _compared(uri)
    return {"tmp": tmp, "uri": uri, "runs": runs, "parents": parents}


def test_a_method_comparison_tunes_each_method_alike_then_pairs_the_final_seeds(comparison):
    """sweeps/compare_methods.py: each method searched with the same budget and protocol (its
    own space), its tuned and default configs and a reference on the same final seeds and stream,
    the comparison's tables from the export."""
    runs, parents = comparison["runs"], comparison["parents"]
    assert set(parents) == {
        "c-pah", "c-pah-final", "c-pah-default", "c-lwf", "c-lwf-final", "c-lwf-default",
        "c-finetune",
    }  # fmt: skip
    for search in ("c-pah", "c-lwf"):  # the same budget and protocol for each method
        tags = parents[search].data.tags
        assert tags["hpo_protocol"] == "first_k" and tags["tpe_startup_trials"] == "1"
    finals = {}
    for name in ("c-pah-final", "c-pah-default", "c-lwf-final", "c-lwf-default", "c-finetune"):
        kids = _under(runs, parents[name])
        finals[name] = kids
        assert sorted(r.data.params["run.seed"] for r in kids) == ["2", "3"], name
        assert {r.data.params["data.skip_tasks"] for r in kids} == {"1"}, name
    assert {r.data.params["method.name"] for r in finals["c-lwf-default"]} == {"lwf"}
    assert {r.data.params["method.name"] for r in finals["c-lwf-final"]} == {"lwf"}
    assert {r.data.params["method.lwf.lambda_kd"] for r in finals["c-lwf-default"]} == {"1.0"}
    report = (comparison["tmp"] / "out" / "report.md").read_text()
    assert "LwF: tuned − default" in report and "LwF tuned − PAH tuned" in report
    assert "Fine-tune reference − PAH tuned" in report


def test_first_k_protocol_tunes_on_the_first_tasks_and_reports_on_the_others(comparison):
    """--hpo-protocol first_k (A-GEM's; the comparison's, here with k=1): trials train the first k
    tasks only; the selected configuration runs on a stream of the other tasks, whose classes the
    search never saw."""
    import yaml

    from pah_core.config import load_config
    from pah_core.data import TaskStream, load_source

    runs, parents = comparison["runs"], comparison["parents"]
    search, final = parents["c-pah"], parents["c-pah-final"]
    (trial,) = _under(runs, search)
    finals = _under(runs, final)
    assert search.data.tags["hpo_protocol"] == "first_k" and len(finals) == 2
    assert trial.data.metrics["tasks_done"] == 1 and search.data.metrics["compute/trial_tasks"] == 1
    assert all(
        r.data.params["data.skip_tasks"] == "1" and r.data.metrics["tasks_done"] == 2
        for r in finals
    )

    def classes(params):  # the classes a logged config trains on (its data.* and max_tasks)
        keys = [k for k in params if k.startswith("data.") or k == "schedule.max_tasks"]
        data = {k: yaml.safe_load(params[k]) for k in keys}
        data = {k: None if v == "None" else v for k, v in data.items()}
        cfg = load_config(str(REPO / "configs" / "cifar100_pah.yaml"), data)
        stream = TaskStream(load_source(cfg.data), cfg.data, cfg.run.seed)
        return {c for t in range(cfg.tasks_to_run) for c in stream.task_classes(t)}

    tuned = classes(trial.data.params)
    assert len(tuned) == 10
    for run in finals:
        reported = classes(run.data.params)
        assert len(reported) == 20 and not tuned & reported


def test_a_resumed_comparison_trains_nothing(comparison, capsys):
    """--resume of a finished comparison: every step is skipped, no run is added."""
    from sweeps.compare_methods import main

    capsys.readouterr()
    assert main([*_comparison_argv(comparison["tmp"]), "--resume"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 5
    assert len(_compared(comparison["uri"])[2]) == len(comparison["runs"])
    # The export after every step, the report (the same after each skipped step) once.
    assert out.count("[study] export in") == 5 and out.count("[study] report in") == 1


def test_a_comparison_continues_from_its_export_in_a_new_store(comparison):
    """A continuation in a new store (the first lost with its machine) whose committed export
    holds the LwF search but not yet its final runs: the finals run from the exported selection,
    and the search is not run again."""
    import shutil

    from sweeps.compare_methods import main

    tmp, runs, parents = comparison["tmp"], comparison["runs"], comparison["parents"]
    finals = _under(runs, parents["c-lwf-final"])
    # The committed export as it was before the LwF finals: a copy without them.
    shutil.copytree(tmp / "out" / "export", tmp / "out2" / "export")
    export = tmp / "out2" / "export"
    meta = json.loads((export / "experiment.json").read_text())
    lost = [parents["c-lwf-final"].info.run_id, *(r.info.run_id for r in finals)]
    for rid in lost:
        for sub in ("sweeps", "runs"):
            (export / sub / f"{rid}.json").unlink(missing_ok=True)
    meta["sweeps"] = [s for s in meta["sweeps"] if s not in lost]
    meta["runs"] = [r for r in meta["runs"] if r not in lost]
    (export / "experiment.json").write_text(json.dumps(meta))
    again = ["--resume", "--methods", "lwf", "--references", ""]
    assert main([*_comparison_argv(tmp, "w2", "out2"), *again]) == 0
    _, _, runs2, parents2 = _compared(f"sqlite:///{tmp / 'w2' / 'mlflow.db'}")
    assert set(parents2) == {"c-lwf-final"}  # no search, no default runs: both were exported
    tags, tags2 = parents["c-lwf-final"].data.tags, parents2["c-lwf-final"].data.tags
    for key in ("selected_from", "selected_trial", "selected_val_avg_acc"):
        assert tags2[key] == tags[key], key
    kids2 = _under(runs2, parents2["c-lwf-final"])
    searched = ("method.lwf.lambda_kd", "method.lwf.temperature", "optim.lr_head")
    assert {tuple(r.data.params[k] for k in searched) for r in kids2} == {
        tuple(r.data.params[k] for k in searched) for r in finals
    }
    assert sorted(r.data.params["run.seed"] for r in kids2) == ["2", "3"]
    assert "LwF: tuned − default" in (tmp / "out2" / "report.md").read_text()
