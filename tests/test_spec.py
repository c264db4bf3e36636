"""The typed sweep specification (issue #25): each flag is declared once, as a field of a spec in
pah_sweep/spec.py, and reaches every entry point's parser from there; entry points compose specs by
``dataclasses.replace``, never by Namespaces or argv strings. Fast: no Ray, no data, no training."""

import ast
import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from pah_sweep import search, study_export
from pah_sweep.cli import STUDY_OWNED
from pah_sweep.errors import SweepError
from pah_sweep.spec import (
    FLAG,
    PARSED,
    GridSpec,
    SearchSpec,
    add_flags,
    flag,
    from_args,
    spec_flags,
)
from sweeps import ablation, baselines, compare_methods, compare_protocols, demo, reproduce

ROOT = Path(__file__).resolve().parents[1]

# What each entry point's parser takes of the spec: every field, but those it sets itself.
ENTRY_POINTS = {
    "search": (search.parser("cifar100"), SearchSpec, set()),
    "baselines": (baselines.parser(), GridSpec, set()),
    "ablation": (ablation.parser(), GridSpec, set()),
    "reproduce": (reproduce.parser(), GridSpec, {*STUDY_OWNED, "dataset"}),
    "compare_methods": (
        compare_methods.parser(),
        SearchSpec,
        {*STUDY_OWNED, "method", "points", "grace_tasks"},
    ),
    "compare_protocols": (
        compare_protocols.parser(),
        SearchSpec,
        {*STUDY_OWNED, "method", "points", "grace_tasks", "hpo_protocol"},
    ),
}


def _spec_actions(p):
    return {a.dest: a for a in p._actions if a.dest in p.get_default(PARSED)}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_spec_flag_reaches_the_entry_point_as_its_field_declares_it(entry):
    p, cls, owned = ENTRY_POINTS[entry]
    actions = _spec_actions(p)
    assert set(actions) == {f.name for f in dataclasses.fields(cls)} - owned
    for f in dataclasses.fields(cls):
        if f.name in actions:  # the flag's name comes from the field, and only from there
            assert actions[f.name].option_strings == [f.metadata[FLAG].name], f.name
    # Parsed with no flags, each field has its dataclass default, unless the entry point's own
    # scale says otherwise (a study's trials per search and final seeds).
    spec = from_args(cls, p.parse_args(["--protocol", "tiny"] if entry == "reproduce" else []))
    changed = {
        f.name for f in dataclasses.fields(cls) if getattr(spec, f.name) != getattr(cls(), f.name)
    }
    assert changed <= {"num_samples", "hpo_protocol", "final_seeds"}


def test_the_demo_takes_where_it_records_only():
    actions = _spec_actions(demo.parser())
    assert set(actions) == {"storage", "mlflow_uri", "experiment", "data_root", "verbose"}
    spec = from_args(SearchSpec, demo.parser().parse_args([]), preset="demo")
    assert (spec.storage, spec.experiment, spec.preset) == ("runs/ray_results", "pah-demo", "demo")


def test_a_new_flag_is_one_field():
    """The guide's worked example (docs/guides/adding-a-sweep-flag.md): a field is the flag on
    every parser made from the spec, its parsed value, and its default where a parser lacks it."""

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class WithReductionFactor(SearchSpec):
        reduction_factor: int = flag(
            "--reduction-factor", 2, group="search", type=int, help="ASHA's reduction factor"
        )

    import argparse

    p = add_flags(argparse.ArgumentParser(), WithReductionFactor)
    assert (
        from_args(WithReductionFactor, p.parse_args(["--reduction-factor", "3"])).reduction_factor
        == 3
    )
    assert from_args(WithReductionFactor, p.parse_args([])).reduction_factor == 2
    # A parser without it (a study driver that sets it itself): the field's default.
    partial = add_flags(argparse.ArgumentParser(), WithReductionFactor, only=["seed"])
    assert from_args(WithReductionFactor, partial.parse_args(["--seed", "5"])).reduction_factor == 2
    assert "reduction_factor" in spec_flags(WithReductionFactor, groups=["search"])


def test_parsed_flags_become_typed_values():
    args = search.parser("cifar100").parse_args(
        ["--set", "model.hyper_width=32", "--tag", "a=b=c", "--num-samples", "5"]
    )
    spec = from_args(SearchSpec, args)
    assert spec.overrides == {"model.hyper_width": 32} and spec.tags == {"a": "b=c"}
    assert spec.num_samples == 5 and spec.resume is False
    with pytest.raises(SweepError, match="--tag 'nope': write KEY=VALUE"):
        from_args(SearchSpec, search.parser("cifar100").parse_args(["--tag", "nope"]))
    grid = from_args(GridSpec, baselines.parser().parse_args(["--seeds", "4,5"]))
    assert grid.seeds == [4, 5] and GridSpec().seeds == [0, 1, 2]
    # A spec built in code keeps to its flags' choices.
    with pytest.raises(SweepError, match="--preset 'huge': choose from"):
        SearchSpec(preset="huge")


def test_a_searchs_final_sweep_is_its_spec_under_another_name(tmp_path):
    spec = SearchSpec(storage=str(tmp_path), name="s", resume=True, hpo_protocol="first_k")
    plan = SimpleNamespace(name="s", storage=str(tmp_path))
    final = search.final_spec(spec, plan)
    assert final == dataclasses.replace(spec, name="s-final", resume=False)  # not started yet
    (tmp_path / "s-final").mkdir()
    assert search.final_spec(spec, plan) == dataclasses.replace(spec, name="s-final")


def test_a_comparison_composes_its_sweeps_by_replacing_fields(tmp_path, monkeypatch):
    """compare_methods: each search and grid gets the study's spec (its flags, passed through)
    with the sweep's name, role and method; no argv list in between."""
    calls = []
    monkeypatch.setattr(search, "run", lambda d, s, sel=None: calls.append(("search", s)) or 0)
    monkeypatch.setattr(
        compare_methods, "run_grid", lambda d, s, *a, **k: calls.append(("grid", s)) or 0
    )
    argv = ["--workdir", str(tmp_path), "--methods", "lwf", "--references", "finetune"]
    flags = ["--max-concurrent", "2", "--tag", "who=me", "--set", "model.hyper_width=16"]
    assert compare_methods.main([*argv, *flags, "--workers-per-trial", "2"]) == 0
    # The search alone first (exported before its finals), then its finals (the search resumed).
    (_, tuned), (_, finals), (_, default), (_, reference) = calls
    assert finals == dataclasses.replace(tuned, final_seeds=5, resume=True)
    base = compare_methods.study_spec(
        compare_methods.parser().parse_args([*argv, *flags, "--workers-per-trial", "2"]),
        tuned.mlflow_uri,
    )
    assert base.max_concurrent == 2 and base.workers_per_trial == 2 and base.preset == "paper"
    assert base.overrides == {"model.hyper_width": 16}
    assert tuned == dataclasses.replace(
        base,
        name="compare-lwf",
        method="lwf",
        tags={"who": "me", "comparison": "compare", "comparison_config": "tuned"},
        final_seeds=0,
    )
    assert default.name == "compare-lwf-default" and reference.name == "compare-finetune"
    assert reference.tags["comparison_config"] == "reference"

    calls.clear()
    argv = ["--workdir", str(tmp_path / "p"), "--protocols", "first_task,first_k", "--verbose"]
    exports = []
    monkeypatch.setattr(study_export, "export_and_report", lambda *a, **k: exports.append(k))
    assert compare_protocols.main([*argv, "--replicates", "2", "--seed", "5"]) == 0
    specs = [spec for _, spec in calls]
    # Replicate-first: both protocols with sampler seed 5, then both with seed 6; the export after
    # each search, so that a study cut off keeps every finished one, and only the finished ones
    # (one cut off stays out until --resume finishes it).
    assert [(s.name, s.hpo_protocol, s.seed, s.tags["replicate"]) for s in specs] == [
        ("hpo-first_task-s5", "first_task", 5, "0"),
        ("hpo-first_k-s5", "first_k", 5, "0"),
        ("hpo-first_task-s6", "first_task", 6, "1"),
        ("hpo-first_k-s6", "first_k", 6, "1"),
    ]
    assert exports == [{"report": True, "finished_only": True}] * 4
    assert all(s.verbose and s.num_samples == 16 and s.final_seeds == 3 for s in specs)
    assert all(s.overrides == compare_protocols.SCALE for s in specs)
    # Transfer tunes on the first half of the study's 10 tasks, whatever --first-k says.
    calls.clear()
    argv = ["--workdir", str(tmp_path / "q"), "--protocols", "first_k,first_k_reordered"]
    assert compare_protocols.main([*argv, "--replicates", "1", "--first-k", "2"]) == 0
    assert [(s.hpo_protocol, s.first_k) for _, s in calls] == [
        ("first_k", 2),
        ("first_k_reordered", 5),
    ]


def test_a_study_exports_after_each_step_and_reports_once_when_all_were_skipped(monkeypatch):
    """run_steps: the export after every step (a cut-off study keeps what finished), the report
    only after steps that ran something, and once at the end when --resume skipped them all."""
    calls = []
    monkeypatch.setattr(
        study_export, "export_and_report", lambda u, e, o, **k: calls.append(("export", k))
    )
    monkeypatch.setattr(study_export, "report_from_export", lambda o: calls.append(("report",)))
    skipped, ran, failed = (lambda: None), (lambda: 0), (lambda: 3)
    assert study_export.run_steps([skipped, ran], "u", "e", "out") == 0
    assert calls == [
        ("export", {"report": False, "finished_only": False}),
        ("export", {"report": True, "finished_only": False}),
    ]
    calls.clear()
    assert study_export.run_steps([skipped, skipped], "u", "e", "out", finished_only=True) == 0
    assert calls == [("export", {"report": False, "finished_only": True})] * 2 + [("report",)]
    calls.clear()
    assert study_export.run_steps([ran, failed, ran], "u", "e", "out") == 3  # stops at a failure
    assert calls == [("export", {"report": True, "finished_only": False})]
    calls.clear()
    assert study_export.run_steps([ran], "u", "e", None) == 0 and calls == []  # no --out


def test_the_demo_composes_its_search_and_reference_from_one_spec(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(search, "run", lambda d, s, sel=None: calls.append(s) or 1)
    monkeypatch.setattr(baselines, "run", lambda s, methods: calls.append((s, methods)) or 1)
    argv = ["--storage", str(tmp_path / "ray"), "--mlflow-uri", str(tmp_path / "m.db")]
    assert demo.main([*argv, "--verbose"]) == 1  # the search's exit code
    (spec,) = calls
    assert isinstance(spec, SearchSpec) and spec.name.startswith("demo-search-")
    assert (spec.preset, spec.storage, spec.verbose) == ("demo", str(tmp_path / "ray"), True)
    calls.clear()
    assert demo.main([*argv, "--write-reference"]) == 1  # the reference failed: no file written
    ((grid, methods),) = calls
    assert isinstance(grid, GridSpec) and methods == ["finetune"]
    assert grid.seeds == [demo.reference_config()["run"]["seed"]] and grid.preset == "demo"
    assert grid.mlflow_uri == spec.mlflow_uri and grid.name.startswith("demo-finetune-")


def test_no_sweep_module_reads_flags_with_getattr_defaults_or_rebuilds_argv():
    for p in [*(ROOT / "sweeps").glob("*.py"), *(ROOT / "pah_sweep").glob("*.py")]:
        text = p.read_text()
        assert not re.search(r"getattr\(args", text), p.name
        assert "argparse.Namespace(" not in text, p.name
        # A dataset's search script is search.main("<dataset>"); nothing passes another's argv.
        assert not re.search(r"search\.main\([^)]*,|baselines\.main\(|parse_args\(\[", text), p.name


# The modules that build a command line: the only ones that may import pah_sweep/cli.py.
ENTRY_MODULES = {
    "search",
    "baselines",
    "ablation",
    "reproduce",
    "compare_methods",
    "compare_protocols",
}


def test_library_modules_do_not_import_the_cli():
    importers = set()
    for p in [*(ROOT / "sweeps").glob("*.py"), *(ROOT / "pah_sweep").glob("*.py")]:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in ("cli", "pah_sweep.cli"):
                importers.add(p.stem)
    assert importers <= ENTRY_MODULES, importers - ENTRY_MODULES
