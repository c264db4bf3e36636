"""The reproduction study in one command: the main table and the loss-term ablation, x seeds, under
a named protocol; then an MLflow-free export of every run and the report built from that export.

    python sweeps/reproduce.py --protocol cpu                  # start (hours on 2 CPU cores)
    python sweeps/reproduce.py --protocol cpu --resume         # continue after a stop or a crash
    python sweeps/reproduce.py --protocol cpu --report-only    # export + report again, no training
    python analysis/paper_tables.py --from-export docs/results/cpu/export --out docs/results/cpu

Parts (``--parts``), each one grid sweep with a fixed name, ``repro-<protocol>-<part>``:
  main      a baselines sweep: pah, pah_official (PAH with every choice of the official code,
            sweeps/ablation.py's official_code), finetune, lwf, ewc
  reference a baselines sweep of joint training, first seed only (5.5x a fine-tune run)
  ablation  an ablation sweep: ce_only, ce+sm, ce+sp. Its "full" row (both terms on) is the main
            part's pah runs, the same config: not trained twice. The ablation sweep's parent run
            says so in the tag analysis.tables.FULL_FROM_TAG, which the analysis follows.

Cells run seed by seed (every variant of seed 0 first), so a study cut short holds whole seeds.
``--resume`` skips a part whose sweep finished, and continues an unfinished one through the grid
sweep's ``--resume`` path (``pah_sweep/grid.py``, ``pah_sweep/launch.py``): finished cells are not retrained, an interrupted cell
restarts from its last task checkpoint. Everything lands under ``--workdir`` (the MLflow store and
Ray's results), the export and the report under ``--out``.

The export outlives the store: ``--resume`` in a new ``--workdir`` (the study moved to another
machine, its first store lost) skips the parts that finished in ``<out>/export``, and the export
written at the end keeps them beside the new parts (experiment.json's ``merged_from`` names the
store each came from).

The study's model (protocols, parts, where each part stands) is ``pah_sweep/study.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from analysis.store import AnalysisError  # noqa: E402
from analysis.tables import FULL_FROM_TAG  # noqa: E402
from pah_core.config import ConfigError, load_config  # noqa: E402
from pah_sweep import REPO  # noqa: E402
from pah_sweep.cli import STUDY_OWNED, parse_names  # noqa: E402
from pah_sweep.errors import SweepError  # noqa: E402
from pah_sweep.grid import run_grid  # noqa: E402
from pah_sweep.spec import GridSpec, add_flags, from_args  # noqa: E402
from pah_sweep.study import (  # noqa: E402
    FULL_FROM,
    PARTS,
    PROTOCOLS,
    PartStatus,
    Study,
    exported_status,
    part_status,
    status_of,
    the_export,
    to_export,
)


class StudyInterrupted(RuntimeError):
    pass


def finished_note(study: Study, status: PartStatus, part: str) -> str:
    missing = status.not_done(study.cells(part))
    if not missing:
        return ""
    return f"; not finished (a resume does not retrain failed cells): {', '.join(missing)}"


def skipped(study: Study, part: str, args: argparse.Namespace, status) -> bool:
    """Under --resume, whether ``part`` finished already (in the store, or in the export of a
    study continued in a new store), saying so."""
    name = study.sweep(part)
    if args.resume and not status.started:
        exported = exported_status(study, part)
        if exported.finished:
            print(
                f"[repro] {part}: sweep {name} finished in the export {study.out / 'export'} "
                f"(its store is not in --workdir), skipped{finished_note(study, exported, part)}",
                flush=True,
            )
            return True
        if exported.started:
            print(
                f"[repro] {part}: sweep {name} is unfinished in the export and its store is not "
                "in --workdir: trained again from its start (the export keeps the old sweep "
                "until this one has as many finished cells)",
                flush=True,
            )
    if args.resume and status.finished:
        print(
            f"[repro] {part}: sweep {name} already finished, skipped"
            + finished_note(study, status, part),
            flush=True,
        )
        return True
    return False


def run_part(study: Study, part: str, args: argparse.Namespace, spec: GridSpec) -> None:
    """``part``'s grid sweep: ``spec`` (the study's flags) with the study's store, the part's
    name, and the protocol's config."""
    kind, name = PARTS[part].kind, study.sweep(part)
    status = part_status(study, part)
    if skipped(study, part, args, status):
        return
    protocol = PROTOCOLS[study.protocol]
    study_name = f"repro-{study.protocol}"
    # "preset" names where the config came from: the protocol here (see "preset" below).
    tags = {"study": study_name, "protocol": study.protocol, "preset": study_name}
    if part == "ablation":
        tags[FULL_FROM_TAG] = f"{study.sweep(FULL_FROM[0])}:{FULL_FROM[1]}"
    sweep_spec = replace(
        spec,
        # The "paper" preset adds no overrides: the protocol's come as base_overrides (--set on
        # top), and the preset tag is overridden with the protocol's name.
        preset="paper",
        config=None,
        overrides={},
        storage=study.storage,
        mlflow_uri=study.mlflow_uri,
        experiment=study.experiment,
        name=name,
        # A part never started is started, also under --resume; an existing sweep without
        # --resume is prepare()'s error, which says to pass --resume.
        resume=args.resume and status.started,
    )
    print(f"[repro] {part}: sweep {name} ({len(study.cells(part))} cells)", flush=True)
    run_grid(
        protocol.dataset,
        sweep_spec,
        kind,
        PARTS[part].variants,
        study.part_seeds(part),
        base_overrides={**protocol.overrides, **study.overrides},
        tags=tags,
        seeds_outer=True,
    )
    # Tune returns from an interrupted sweep (Ctrl-C) as from a finished one: the study stops
    # there instead of starting the next part.
    # An interrupted grid's parent run says KILLED (pah_sweep.record.finish_parent_run), its cells
    # KILLED or never started.
    after = part_status(study, part)
    if not after.finished:
        left = after.not_done(study.cells(part))
        raise StudyInterrupted(
            f"{part}: sweep {name} stopped with {len(left)} cell(s) not done; continue the study "
            "with --resume"
        )


def export_and_report(study: Study, max_heatmaps: int, merge: bool):
    """Export the study's sweeps from MLflow into <out>/export, then build the report from it.

    ``merge`` (``--resume``, ``--report-only``): the export's sweeps the store lacks stay (a study
    continued from its export), and an exported sweep with more finished cells than the store's
    sweep of the same name is kept instead of it (a retraining interrupted early)."""
    from analysis.export import ExportSource, write_export
    from analysis.paper_tables import build
    from analysis.store import MlflowSource, client_for, resolve_uri

    folder, export = study.out / "export", the_export(study) if merge else None
    try:
        source = MlflowSource(client_for(resolve_uri(study.mlflow_uri)))
        exp = source.experiment(study.experiment)
    except AnalysisError as e:
        if export is None:
            raise
        print(f"[repro] export: no store to export ({e}); {folder} as it is", flush=True)
    else:
        names = [study.sweep(p) for p in PARTS]
        present, kept = to_export(names, exp, export.experiment() if export else None)
        for name in kept:
            print(
                f"[repro] export: kept the exported {name}: it has more finished cells than the "
                "store's",
                flush=True,
            )
        if present:
            write_export(source, study.experiment, folder, present, keep_other_sweeps=merge)
        elif export is not None:
            print(f"[repro] export: nothing new in {study.workdir}; {folder} as it is", flush=True)
        else:
            raise AnalysisError(
                f"experiment {study.experiment!r} at {study.mlflow_uri} holds no sweep of this "
                f"study ({', '.join(study.sweep(p) for p in PARTS)}): run the study first"
            )
    files = list(folder.rglob("*.json"))
    size = sum(f.stat().st_size for f in files)
    print(f"[repro] export: {len(files)} files, {size / 1024:.0f} KiB in {folder}", flush=True)
    for m in ExportSource(folder).merged_from:
        print(f"[repro] export: kept {', '.join(m['sweeps'])} (from {m['mlflow_uri']})", flush=True)
    report = build(None, study.out, max_heatmaps=max_heatmaps, source=ExportSource(folder))
    print(
        f"[repro] report: {len(report.tables)} table(s), {len(report.figures)} figure file(s); "
        f"see {study.out / 'report.md'}",
        flush=True,
    )
    for w in report.warnings:
        print(f"[repro] warning: {w}")
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python sweeps/reproduce.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="protocols:\n"
        + "\n".join(f"  {k:6s} {v.description}" for k, v in PROTOCOLS.items()),
    )
    p.add_argument("--protocol", choices=list(PROTOCOLS), required=True)
    p.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated, from: {', '.join(PARTS)} (default: all)",
    )
    p.add_argument("--resume", action="store_true", help="continue the study in --workdir")
    p.add_argument(
        "--report-only", action="store_true", help="export and report again, train nothing"
    )
    p.add_argument(
        "--workdir", help="the study's MLflow store and Ray results (default runs/repro-<protocol>)"
    )
    p.add_argument(
        "--mlflow-uri", help="MLflow tracking URI (default: sqlite file mlflow.db in --workdir)"
    )
    p.add_argument("--storage", help="Ray results and checkpoints (default: ray/ in --workdir)")
    p.add_argument("--experiment", help="MLflow experiment (default repro-<protocol>)")
    p.add_argument("--out", help="export and report folder (default docs/results/<protocol>)")
    p.add_argument(
        "--max-heatmaps", type=int, default=100, help="at most this many per-run heatmaps"
    )
    # Every other flag of a grid sweep (--seeds, --set, the resources, --tag, ...), passed on to
    # each part's sweep; the dataset is the protocol's.
    return add_flags(
        p,
        GridSpec,
        exclude=(*STUDY_OWNED, "dataset"),
        helps={
            "overrides": "a config override on top of the protocol, for where it runs rather "
            "than what it measures (e.g. model.pretrained_path=...); kept for --resume"
        },
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # One progress bar per downloaded acc_matrix.json would bury the summary.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.perf_counter()
    try:
        study = Study.from_args(args)
        spec = from_args(GridSpec, args)
        protocol = PROTOCOLS[study.protocol]
        parts = parse_names(args.parts, PARTS, "--parts")
        merge = args.resume or args.report_only  # the export's other parts stay in it
        if not args.report_only:
            # Every variant's config is valid before anything starts (prepare checks it again).
            base = REPO / "configs" / f"{protocol.dataset}_pah.yaml"
            for part in parts:
                for extra in PARTS[part].variants.values():
                    load_config(base, {**protocol.overrides, **study.overrides, **extra})
            if args.resume:
                the_export(study)  # one of another experiment fails now, not after the training
            study.check_record()
            for part in parts:
                run_part(study, part, args, spec)
        export_and_report(study, args.max_heatmaps, merge)
    except (SweepError, ConfigError, AnalysisError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StudyInterrupted as e:
        print(f"[repro] interrupted: {e}", file=sys.stderr)
        return 130
    incomplete = []
    for part in PARTS:
        status = status_of(study, part) if merge else part_status(study, part)
        if status.started:
            incomplete += [f"{part}: {c}" for c in status.not_done(study.cells(part))]
    print(f"[repro] done in {time.perf_counter() - started:.0f} s", flush=True)
    if incomplete:
        print(f"[repro] cells not finished: {'; '.join(incomplete)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
