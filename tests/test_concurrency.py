"""How a sweep shares the cores, cells x threads (issue #28): chosen from a measured table for the
cores Ray sees (today's rule where nothing is measured), overridden by --concurrency, recorded as
tags on every run. Fast: no Ray started, no data."""

from types import SimpleNamespace

import pytest

import pah_sweep.launch
import pah_sweep.resources
from pah_sweep.errors import SweepError
from pah_sweep.resources import (
    ONE_CORE,
    Concurrency,
    check_concurrency_flags,
    choose_concurrency,
    parse_concurrency,
    sweep_concurrency,
)
from pah_sweep.spec import SearchSpec
from pah_sweep.trial import DRIVER_CPUS
from tests.helpers import tiny_config


def test_unmeasured_machines_keep_one_thread_per_cell():
    for cores in (1, 3, 16):
        assert cores not in pah_sweep.resources.MEASURED_CONCURRENCY
        c = choose_concurrency(cores)
        assert (c.cells, c.threads) == (cores, 1)
        assert "one thread per cell" in c.why


def test_two_cores_use_the_measured_best():
    """benchmarks/results/2026-12-07/study_throughput.json: on 2 cores two one-thread cells did
    more cells per hour than one two-thread cell."""
    c = choose_concurrency(2)
    assert (c.cells, c.threads) == (2, 1)
    assert c.why == "auto: measured best for 2 cores"


def test_a_measured_entry_decides_for_its_core_count_only():
    table = {2: (1, 2), 16: (8, 2)}
    assert str(choose_concurrency(2, table)) == "1x2"
    assert str(choose_concurrency(16, table)) == "8x2"
    assert "measured best for 16 cores" in choose_concurrency(16, table).why
    assert str(choose_concurrency(4, table)) == "4x1"


def test_parse_concurrency():
    assert parse_concurrency("auto") is None
    assert parse_concurrency("2x1") == (2, 1) and parse_concurrency("1x16") == (1, 16)
    for bad in ("0x1", "2x0", "2*1", "two", "2x", ""):
        with pytest.raises(SweepError, match="write auto, or CELLSxTHREADS"):
            parse_concurrency(bad)


CLUSTER = {"CPU": 2.0}


def test_auto_on_two_cores_is_todays_two_cells_of_one_thread():
    conc, cpus = sweep_concurrency("auto", CLUSTER, 1, ONE_CORE, 0.0)
    assert (conc.cells, conc.threads, cpus) == (2, 1, ONE_CORE)


def test_auto_follows_the_measured_table(monkeypatch):
    monkeypatch.setattr(pah_sweep.resources, "MEASURED_CONCURRENCY", {2: (1, 2)})
    conc, cpus = sweep_concurrency("auto", CLUSTER, 1, ONE_CORE, 0.0)
    assert (conc.cells, conc.threads) == (1, 2) and cpus == pytest.approx(2 - DRIVER_CPUS)
    assert round(cpus) == 2  # the trial's torch threads (pah_sweep.trial.run_engine)


def test_the_flag_overrides_and_must_fit():
    conc, cpus = sweep_concurrency("1x2", CLUSTER, 1, ONE_CORE, 0.0)
    assert (str(conc), conc.why, round(cpus)) == ("1x2", "--concurrency", 2)
    with pytest.raises(SweepError, match=r"fits 2 trial\(s\) of 1 thread\(s\) at once, not 4"):
        sweep_concurrency("4x1", CLUSTER, 1, ONE_CORE, 0.0)
    with pytest.raises(SweepError, match="this sweep cannot start"):
        sweep_concurrency("1x4", CLUSTER, 1, ONE_CORE, 0.0)


def test_the_resource_flags_decide_where_they_are_set():
    conc, cpus = sweep_concurrency("auto", {"CPU": 8.0}, 1, 1.99, 0.0)
    assert (str(conc), conc.why, cpus) == ("4x2", "the resource flags", 1.99)
    conc, _ = sweep_concurrency("auto", {"CPU": 8.0, "GPU": 1.0}, 1, ONE_CORE, 0.5)
    assert str(conc) == "2x1"  # two trials share the GPU


def test_the_flag_and_the_worker_flags_are_one_way_or_the_other():
    check_concurrency_flags("auto", 2, 3.0)
    check_concurrency_flags("2x1", 1, ONE_CORE)
    for workers, cpus in ((2, ONE_CORE), (1, 2.0)):
        with pytest.raises(SweepError, match="drop one of them"):
            check_concurrency_flags("2x1", workers, cpus)


def test_a_sweep_records_its_concurrency_on_every_run(monkeypatch):
    """launch: the tags that go on the parent run and every trial's run, the CPUs each trial asks
    for (its torch threads), the trials in flight."""
    import ray

    recorded = {}
    monkeypatch.setattr(pah_sweep.launch, "init_ray", lambda address, verbose: None)
    monkeypatch.setattr(pah_sweep.launch, "quiet_ray", lambda: None)
    monkeypatch.setattr(
        pah_sweep.launch,
        "check_data",
        lambda plan, spec: ("/data", SimpleNamespace(fingerprint="f")),
    )
    monkeypatch.setattr(
        pah_sweep.launch, "record", lambda plan, tags: recorded.update(tags) or "parent-id"
    )
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(pah_sweep.resources, "MEASURED_CONCURRENCY", {2: (1, 2)})
    plan = SimpleNamespace(
        verbose=True, base=tiny_config(), storage="/s", mlflow_uri="sqlite:///x.db",
        experiment="e", name="n", kind="baselines", variants={}, runner="tune",
    )  # fmt: skip
    setup = pah_sweep.launch.launch(plan, SearchSpec())
    assert recorded["concurrency"] == "1x2" and "measured best" in recorded["concurrency_from"]
    assert setup.plumbing.tags["concurrency"] == "1x2"  # every trial's run gets these tags
    assert round(setup.plumbing.cpus_per_worker) == 2 and setup.max_concurrent == 1
    setup = pah_sweep.launch.launch(plan, SearchSpec(concurrency="2x1", max_concurrent=1))
    assert recorded["concurrency"] == "2x1" and recorded["concurrency_from"] == "--concurrency"
    assert setup.max_concurrent == 1 and round(setup.plumbing.cpus_per_worker) == 1


def test_concurrency_str_and_tags():
    c = Concurrency(2, 1, "why")
    assert str(c) == "2x1" and c.tags() == {"concurrency": "2x1", "concurrency_from": "why"}
