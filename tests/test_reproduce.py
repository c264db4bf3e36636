"""sweeps/reproduce.py end to end on a real local Ray, a real sqlite MLflow store and real CIFAR-100
(the tiny protocol, seed 0): both parts, the export, the report built from the export, --resume;
and the report from the export against the report from MLflow."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from sweeps import reproduce

EXPERIMENT = "repro-tiny"
MAIN, ABLATION = "repro-tiny-main", "repro-tiny-ablation"


def _argv(tmp: Path, *extra: str) -> list[str]:
    work, out = str(tmp / "work"), str(tmp / "out")
    return ["--protocol", "tiny", "--seeds", "0", "--workdir", work, "--out", out, *extra]


def _runs(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = {r.data.tags["sweep"]: r for r in runs if r.data.tags.get("pah.role") == "sweep"}
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def _main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = reproduce.main(argv)
    return rc, out.getvalue()


def test_the_joint_reference_runs_the_first_seed_only(tmp_path):
    args = reproduce.parser().parse_args(
        ["--protocol", "tiny", "--seeds", "3,4,5", "--workdir", str(tmp_path)]
    )
    study = reproduce.Study.from_args(args)
    assert study.cells("reference") == [("joint", 3)]
    assert len(study.cells("main")) == 15
    # Every protocol evaluates the full matrix (forward transfer) without changing training.
    assert all(p.overrides["schedule.eval_future"] for p in reproduce.PROTOCOLS.values())


def _cell(spec) -> tuple[str, int]:
    return spec["config"]["variant"], spec["config"]["run.seed"]


def test_an_export_keeps_a_sweep_further_along_than_the_stores():
    """What the study's export takes from the store: the sweeps the store holds, except one that
    the export holds with more finished cells (a retraining interrupted early)."""
    from analysis.store import Experiment, RunRecord

    def experiment(sweeps: dict[str, list[str]]) -> Experiment:
        parents, runs = {}, []
        for name, statuses in sweeps.items():
            pid = f"{name}-{len(statuses)}"
            parents[pid] = RunRecord(pid, name, "FINISHED", {}, {}, {"sweep": name}, "")
            runs += [
                RunRecord(f"{pid}/{i}", "c", st, {}, {}, {"mlflow.parentRunId": pid}, "")
                for i, st in enumerate(statuses)
            ]
        return Experiment("uri", "e", "1", runs, parents)

    done, killed = "FINISHED", "KILLED"
    store = experiment({"main": [done], "ablation": [done, killed], "reference": [done]})
    export = experiment({"main": [done, done], "ablation": [done, done], "other": [done]})
    names = ["main", "ablation", "reference", "absent"]
    assert reproduce.to_export(names, store, export) == (["reference"], ["main", "ablation"])
    assert reproduce.to_export(names, store, None) == (["main", "ablation", "reference"], [])
    even = experiment({"main": [done], "ablation": [killed, done]})
    assert reproduce.to_export(names, store, even) == (["main", "ablation", "reference"], [])


def test_cells_run_seed_by_seed():
    """Ray Tune's order of the grid: every variant of seed 0, then of seed 1."""
    from ray.tune.search.variant_generator import generate_variants

    from pah_sweep.grid import grid_space

    variants = list(reproduce.PARTS["main"].variants)
    space = grid_space(variants, [0, 1], seeds_outer=True)
    order = [_cell(s) for _, s in generate_variants({"config": space})]
    assert order == [(v, s) for s in (0, 1) for v in variants]
    plain = grid_space(variants, [0, 1])  # baselines.py and ablation.py: seeds innermost
    order = [_cell(s) for _, s in generate_variants({"config": plain})]
    assert order == [(v, s) for v in variants for s in (0, 1)]


# What may differ between two reports of the same runs: the source they name and when they were made.
