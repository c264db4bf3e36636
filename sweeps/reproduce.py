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
``--resume`` skips a part whose sweep finished, and continues an unfinished one through
``sweeps/search.py``'s ``--resume`` path: finished cells are not retrained, an interrupted cell
restarts from its last task checkpoint. Everything lands under ``--workdir`` (the MLflow store and
Ray's results), the export and the report under ``--out``.

The export outlives the store: ``--resume`` in a new ``--workdir`` (the study moved to another
machine, its first store lost) skips the parts that finished in ``<out>/export``, and the export
written at the end keeps them beside the new parts (experiment.json's ``merged_from`` names the
store each came from).

(About 450 lines, on purpose: the study is one procedure, read top to bottom like the README's
"Reproduction study" section; its training goes through the sweep driver, its tables through the
analysis.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from analysis.store import AnalysisError  # noqa: E402
from analysis.tables import FULL_FROM_TAG  # noqa: E402
from pah_core.config import ConfigError, load_config  # noqa: E402
from pah_core.tracking import quote  # noqa: E402
from pah_core.typed_dicts import parse_overrides  # noqa: E402
from sweeps import REPO  # noqa: E402
from sweeps.ablation import VARIANTS  # noqa: E402
from sweeps.cli import (  # noqa: E402
    SweepError,
    parse_names,
    parse_seeds,
    resource_arguments,
    set_argument,
)
from sweeps.grid import run_grid  # noqa: E402
from sweeps.record import SWEEP_STATE, absolute_storage, check_tracking_uri_or_default  # noqa: E402


@dataclass(frozen=True)
class Protocol:
    """What every run of a study shares: overrides of ``configs/<dataset>_pah.yaml``."""

    description: str
    overrides: dict[str, Any]
    dataset: str = "cifar100"


# What makes the data and the backbone "the paper's", stated even where it equals the shipped
# config, so that a protocol does not drift with it.
FULL_CIFAR100 = {
    "data.n_tasks": 10,
    "data.classes_per_task": None,
    "data.train_per_class": None,  # all 500 training images per class
    "data.test_per_class": None,  # all 100 test images per class
    "schedule.max_tasks": None,
    "model.backbone": "resnet18",  # ImageNet stem, as the official code
    "optim.batch_size": 64,
    # The full T x T matrix and the untrained model's accuracies: forward transfer for free
    # (evaluation only, training is unchanged).
    "schedule.eval_future": True,
}
PROTOCOLS: dict[str, Protocol] = {
    "cpu": Protocol(
        "full CIFAR-100, 10 tasks x 10 classes, ResNet-18 from scratch (no weights offline), "
        "batch 64, 3 epochs per task; fits 2 CPU cores (a PAH run is about 6.5 min there)",
        {**FULL_CIFAR100, "model.pretrained": False, "schedule.epochs_per_task": 3},
    ),
    "paper": Protocol(
        "the paper's protocol: full CIFAR-100, 10 tasks, ImageNet-pretrained ResNet-18, batch 64, "
        "15 epochs per task; for a GPU cluster (--gpus-per-worker; --set "
        "model.pretrained_path=... where torchvision cannot download)",
        {**FULL_CIFAR100, "model.pretrained": True, "schedule.epochs_per_task": 15},
    ),
    "tiny": Protocol(
        "for the test suite only: 2 of 10 tasks, 10 training and 5 test images per class, a small "
        "CNN, 1 epoch; a cell trains in seconds (starting it in Ray takes longer)",
        {
            "data.train_per_class": 10,
            "data.test_per_class": 5,
            "schedule.max_tasks": 2,
            "schedule.epochs_per_task": 1,
            "model.backbone": "small_cnn",
            "schedule.eval_future": True,
        },
    ),
}


@dataclass(frozen=True)
class Part:
    kind: str  # the sweep kind, which decides where the analysis puts its runs
    variants: dict[str, dict[str, Any]]
    # Only the study's first seeds (None: all): for a costly reference run.
    max_seeds: int | None = None


PARTS: dict[str, Part] = {
    "main": Part(
        "baselines",
        {
            "pah": {"method.name": "pah"},
            "pah_official": {"method.name": "pah", **VARIANTS["official_code"]},
            "finetune": {"method.name": "finetune"},
            "lwf": {"method.name": "lwf"},
            "ewc": {"method.name": "ewc"},
        },
    ),
    "ablation": Part("ablation", {v: VARIANTS[v] for v in ("ce_only", "ce+sm", "ce+sp")}),
    # Joint training on every seen task's data: the upper reference of task-agnostic accuracy
    # and of intransigence. It trains on 1 + 2 + ... + 10 tasks' data (5.5x a fine-tune run), so
    # one seed; it goes last.
    "reference": Part("baselines", {"joint": {"method.name": "joint"}}, max_seeds=1),
}
# The ablation's base configuration ("full", both loss terms on) is this main-part variant.
FULL_FROM = ("main", "pah")
STUDY_RECORD = "study.json"


@dataclass
class Study:
    protocol: str
    seeds: list[int]
    overrides: dict[str, Any]  # --set, on top of the protocol
    workdir: Path
    mlflow_uri: str
    storage: str
    experiment: str
    out: Path

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Study:
        workdir = Path(args.workdir or f"runs/repro-{args.protocol}").resolve()
        return cls(
            protocol=args.protocol,
            seeds=parse_seeds(args.seeds),
            overrides=parse_overrides(args.overrides),
            workdir=workdir,
            mlflow_uri=check_tracking_uri_or_default(args.mlflow_uri or str(workdir / "mlflow.db")),
            storage=absolute_storage(args.storage or str(workdir / "ray")),
            experiment=args.experiment or f"repro-{args.protocol}",
            out=Path(args.out or f"docs/results/{args.protocol}"),
        )

    def sweep(self, part: str) -> str:
        return f"repro-{self.protocol}-{part}"

    def part_seeds(self, part: str) -> list[int]:
        return self.seeds[: PARTS[part].max_seeds]

    def cells(self, part: str) -> list[tuple[str, int]]:
        return [(v, s) for s in self.part_seeds(part) for v in PARTS[part].variants]

    def check_record(self) -> None:
        """A study keeps its protocol, seeds, overrides and experiment: a resume with others would
        mix two grids (Tune restores the old one) or two experiments."""
        path = self.workdir / STUDY_RECORD
        record = {
            "protocol": self.protocol,
            "seeds": self.seeds,
            "overrides": self.overrides,
            "experiment": self.experiment,
        }
        started = any((Path(self.storage) / self.sweep(p) / SWEEP_STATE).is_file() for p in PARTS)
        if started and path.is_file():
            old = json.loads(path.read_text())
            for key, value in record.items():
                if old.get(key) != value:
                    raise SweepError(
                        f"the study in {self.workdir} was started with {key} {old.get(key)}, not "
                        f"{value}: pass the same, or another --workdir"
                    )
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")


TERMINAL = ("FINISHED", "FAILED", "KILLED")


class StudyInterrupted(RuntimeError):
    pass


@dataclass
class PartStatus:
    """Where a part's sweep stands, from MLflow: its parent run and one child run per cell."""

    sweep: str
    started: bool
    finished: bool  # the sweep ended (its parent run is FINISHED): every cell is terminal
    cells: dict[tuple[str, int], str] = field(default_factory=dict)  # cell -> run status

    def not_done(self, expected: list[tuple[str, int]]) -> list[str]:
        return [
            f"{v} seed {s} ({self.cells.get((v, s), 'no run')})"
            for v, s in expected
            if self.cells.get((v, s)) != "FINISHED"
        ]


def part_status(study: Study, part: str) -> PartStatus:
    name = study.sweep(part)
    state = Path(study.storage) / name / SWEEP_STATE
    if not state.is_file():
        return PartStatus(name, started=False, finished=False)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=study.mlflow_uri)
    parent = client.get_run(json.loads(state.read_text())["parent_run_id"])
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = {quote(parent.info.run_id)}",
        max_results=1000,
    )
    cells = {
        (r.data.tags.get("variant", "?"), int(r.data.params.get("run.seed", -1))): r.info.status
        for r in runs
    }
    # Finished: the sweep ended and every cell ended (a sweep stopped with Ctrl-C also closes its
    # parent run, with cells still RUNNING or never started).
    ended = all(cells.get(c) in TERMINAL for c in study.cells(part))
    finished = parent.info.status == "FINISHED" and ended
    return PartStatus(name, started=True, finished=finished, cells=cells)


def exported_status(study: Study, part: str) -> PartStatus:
    """Where a part stands in the study's export (``<out>/export``): a study whose store was lost
    (another machine) continues from its committed export, whose finished parts count as done."""
    from analysis.export import ExportSource

    name = study.sweep(part)
    if not (study.out / "export" / "experiment.json").is_file():
        return PartStatus(name, started=False, finished=False)
    export = ExportSource(study.out / "export")
    parents = [p for p in export.meta["sweeps"] if export.record(p)["tags"].get("sweep") == name]
    if not parents or export.default_experiment != study.experiment:
        return PartStatus(name, started=False, finished=False)
    cells = {}
    for rid in export.meta["runs"]:
        d = export.record(rid)
        if d["tags"].get("mlflow.parentRunId") in parents:
            cell = (d["tags"].get("variant", "?"), int(d["params"].get("run.seed", -1)))
            cells[cell] = d["status"]
    finished = all(cells.get(c) == "FINISHED" for c in study.cells(part))
    return PartStatus(name, started=True, finished=finished, cells=cells)


def status_of(study: Study, part: str) -> PartStatus:
    """The store's status of a part it holds, else the export's."""
    status = part_status(study, part)
    return status if status.started else exported_status(study, part)


def run_part(study: Study, part: str, args: argparse.Namespace) -> None:
    spec, name = PARTS[part], study.sweep(part)
    status = part_status(study, part)
    exported = exported_status(study, part)
    if args.resume and not status.started and exported.finished:
        print(
            f"[repro] {part}: sweep {name} finished in the export {study.out / 'export'} "
            "(its store is not in --workdir), skipped",
            flush=True,
        )
        return
    if args.resume and status.finished:
        missing = status.not_done(study.cells(part))
        print(
            f"[repro] {part}: sweep {name} already finished, skipped"
            + (
                f"; not finished (a resume does not retrain failed cells): {', '.join(missing)}"
                if missing
                else ""
            ),
            flush=True,
        )
        return
    protocol = PROTOCOLS[study.protocol]
    study_name = f"repro-{study.protocol}"
    # "preset" names where the config came from: the protocol here (see "preset" below).
    tags = {"study": study_name, "protocol": study.protocol, "preset": study_name}
    if part == "ablation":
        tags[FULL_FROM_TAG] = f"{study.sweep(FULL_FROM[0])}:{FULL_FROM[1]}"
    sweep_args = argparse.Namespace(
        **{
            **vars(args),
            # The "paper" preset adds no overrides: the protocol's come as base_overrides, and the
            # preset tag is overridden with the protocol's name.
            "preset": "paper",
            "config": None,
            "overrides": [],
            "storage": study.storage,
            "mlflow_uri": study.mlflow_uri,
            "experiment": study.experiment,
            "name": name,
            # A part never started is started, also under --resume; an existing sweep without
            # --resume is prepare()'s error, which says to pass --resume.
            "resume": args.resume and status.started,
        }
    )
    print(f"[repro] {part}: sweep {name} ({len(study.cells(part))} cells)", flush=True)
    run_grid(
        protocol.dataset,
        sweep_args,
        spec.kind,
        spec.variants,
        study.part_seeds(part),
        base_overrides={**protocol.overrides, **study.overrides},
        tags=tags,
        seeds_outer=True,
    )
    # Tune returns from an interrupted sweep (Ctrl-C) as from a finished one: the study stops
    # there instead of starting the next part.
    cells = part_status(study, part).cells
    left = [c for c in study.cells(part) if cells.get(c) not in TERMINAL]
    if left:
        raise StudyInterrupted(
            f"{part}: sweep {name} stopped with {len(left)} cell(s) not done; continue the study "
            "with --resume"
        )


def export_and_report(study: Study, max_heatmaps: int):
    """Export the study's sweeps from MLflow into <out>/export, then build the report from it."""
    from analysis.export import ExportSource, write_export
    from analysis.paper_tables import build
    from analysis.store import MlflowSource, client_for, resolve_uri

    folder = study.out / "export"
    if any(part_status(study, p).started for p in PARTS):
        source = MlflowSource(client_for(resolve_uri(study.mlflow_uri)))
        exp = source.experiment(study.experiment)
        names = {p.sweep for p in exp.sweeps.values()}
        present = [study.sweep(p) for p in PARTS if study.sweep(p) in names]
        if not present:
            raise AnalysisError(
                f"experiment {study.experiment!r} at {study.mlflow_uri} holds no sweep of this "
                "study: run the study first"
            )
        # Parts finished in an earlier store (their export committed) stay in the export.
        write_export(source, study.experiment, folder, present, keep_other_sweeps=True)
    elif (folder / "experiment.json").is_file():
        print(f"[repro] export: nothing trained in {study.workdir}; {folder} as it is", flush=True)
    else:
        raise AnalysisError(
            f"no sweep of this study ({', '.join(study.sweep(p) for p in PARTS)}) in "
            f"{study.workdir} and no export in {folder}: run the study first"
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
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds (default 0,1,2)")
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
    set_argument(
        p,
        "a config override on top of the protocol, for where it runs rather than what it "
        "measures (e.g. model.pretrained_path=...); kept for --resume",
    )
    p.add_argument(
        "--max-heatmaps", type=int, default=100, help="at most this many per-run heatmaps"
    )
    return resource_arguments(p)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # One progress bar per downloaded acc_matrix.json would bury the summary.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.perf_counter()
    try:
        study = Study.from_args(args)
        protocol = PROTOCOLS[study.protocol]
        parts = parse_names(args.parts, PARTS, "--parts")
        if not args.report_only:
            # Every variant's config is valid before anything starts (prepare checks it again).
            base = REPO / "configs" / f"{protocol.dataset}_pah.yaml"
            for part in parts:
                for extra in PARTS[part].variants.values():
                    load_config(base, {**protocol.overrides, **study.overrides, **extra})
            study.check_record()
            for part in parts:
                run_part(study, part, args)
        export_and_report(study, args.max_heatmaps)
    except (SweepError, ConfigError, AnalysisError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StudyInterrupted as e:
        print(f"[repro] interrupted: {e}", file=sys.stderr)
        return 130
    incomplete = []
    for part in PARTS:
        status = status_of(study, part)
        if status.started:
            incomplete += [f"{part}: {c}" for c in status.not_done(study.cells(part))]
    print(f"[repro] done in {time.perf_counter() - started:.0f} s", flush=True)
    if incomplete:
        print(f"[repro] cells not finished: {'; '.join(incomplete)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
