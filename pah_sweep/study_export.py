"""A study's sweeps and its committed export (``--out``/export): what the study drivers
(compare_methods.py, compare_protocols.py) write after each step and read to resume.

A study outlives its store: a session or a machine ends, the MLflow store with it, and the
committed export is what is left. So each driver writes the export after every finished step
(keeping the sweeps an earlier store exported) and counts a sweep as done when either the store or
the export holds it finished (``run_steps``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .record import finished

if TYPE_CHECKING:
    from analysis.store import Experiment


def exported_sweep(out: str | Path | None, sweep: str) -> dict[str, Any] | None:
    """The record of ``sweep`` in the export under ``out``, its runs' records under ``runs``."""
    folder = Path(out) / "export" if out else None
    if folder is None or not (folder / "experiment.json").is_file():
        return None
    for f in (folder / "sweeps").glob("*.json"):
        record = json.loads(f.read_text())
        if record.get("name") == sweep:
            runs = [json.loads(r.read_text()) for r in (folder / "runs").glob("*.json")]
            record["runs"] = [r for r in runs if r.get("tags", {}).get("sweep") == sweep]
            return record
    return None


def sweep_done(uri: str, experiment: str, out: str | Path | None, sweep: str) -> bool:
    """Whether ``sweep`` finished: in the MLflow store, or in the export under ``out``."""
    if finished(uri, experiment, sweep):
        return True
    record = exported_sweep(out, sweep)
    return record is not None and record.get("status") == "FINISHED"


def export_and_report(
    uri: str, experiment: str, out: str | Path, report: bool = True, finished_only: bool = False
) -> None:
    """The store's sweeps into ``out``/export, keeping an earlier export's sweeps that this store
    does not hold (a study continued in a new store), then (``report``) the tables from it.

    ``finished_only``: only the sweeps whose parent runs all ended FINISHED. A search cut off (a
    stop, a crash) and continued later stays out until it finishes, and an earlier export's
    finished copy of it stays in; without the flag it would be reported as a search whose trials
    never finished. (compare_methods.py exports its partial sweeps on purpose: it resumes from
    them.)"""
    from analysis.export import write_export
    from analysis.store import MlflowSource, client_for, resolve_uri

    out = Path(out)
    client = client_for(resolve_uri(uri))
    if client.get_experiment_by_name(experiment) is None:
        print(f"[study] no run in {uri} yet: the export in {out} is unchanged", flush=True)
        return
    source = MlflowSource(client)
    sweeps = None
    if finished_only:
        sweeps = finished_sweeps(source.experiment(experiment))
        if not sweeps:
            print(
                f"[study] no finished sweep in {uri} yet: the export in {out} is unchanged",
                flush=True,
            )
            return
    folder = write_export(source, experiment, out / "export", sweeps, keep_other_sweeps=True)
    print(f"[study] export in {folder}", flush=True)
    if report:
        report_from_export(out)


def finished_sweeps(exp: Experiment) -> list[str]:
    """The names of ``exp``'s sweeps whose parent runs (one, or more when a name was reused) all
    ended FINISHED, in the store's order."""
    status: dict[str, set[str]] = {}
    for pid, parent in exp.sweeps.items():
        status.setdefault(exp.sweep_label(pid), set()).add(parent.status)
    return [name for name, seen in status.items() if seen == {"FINISHED"}]


def run_steps(
    steps: Iterable[Callable[[], int | None]],
    uri: str,
    experiment: str,
    out: str | Path | None,
    finished_only: bool = False,
) -> int:
    """A study's steps in order (each a search or a grid: its exit code, None when --resume
    skipped it), stopping at the first that fails; returns that exit code, else 0.

    The export (into ``out``) follows each step: a study cut off (its machine, its session) keeps
    every finished sweep, from which --resume continues in a new store. The report (tables and
    figures from the export, seconds each time) follows each step that ran something; after a
    skipped one it would be the same, so it is built once at the end when every step was skipped."""
    reported = False
    for step in steps:
        if (rc := step()) not in (0, None):
            return rc
        if out:
            ran = rc is not None
            export_and_report(uri, experiment, out, report=ran, finished_only=finished_only)
            reported |= ran
    if out and not reported:
        report_from_export(out)
    return 0


def report_from_export(out: str | Path) -> None:
    """The tables and figures in ``out`` from its export (``out``/export), if there is one."""
    from analysis.export import ExportSource
    from analysis.paper_tables import build

    out = Path(out)
    if not (out / "export" / "experiment.json").is_file():
        print(f"[study] no export in {out}: no report", flush=True)
        return
    report = build(None, out, source=ExportSource(out / "export"))
    print(f"[study] report in {out / 'report.md'}", flush=True)
    for w in report.warnings:
        print(f"[study] warning: {w}")
