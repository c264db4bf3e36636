"""A reproduction study's model and where it stands: its protocols and parts, the study (seeds,
overrides, folders) and each part's status in the MLflow store or in the committed export.
``sweeps/reproduce.py`` trains and reports it."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pah_core.methods import registered_methods
from pah_core.tracking import quote
from pah_core.typed_dicts import parse_overrides
from pah_sweep.errors import SweepError
from pah_sweep.record import (
    SWEEP_STATE,
    absolute_storage,
    check_tracking_uri_or_default,
    mlflow_client,
)
from pah_sweep.spec import parse_seeds

PAH_VARIANTS = registered_methods()["pah"].ablation_variants  # declared in methods/pah.py


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
        "batch 64, 3 epochs per task; fits 2 CPU cores (a PAH cell took 930-968 s there, two cells at a time)",
        {
            **FULL_CIFAR100,
            "model.pretrained": False,
            "schedule.epochs_per_task": 3,
            # Measured faster at this protocol with accuracy and forgetting not resolved from
            # NCHW (benchmarks/RESULTS.md 8.2, issue #28: 1.26x on full runs, 3 paired seeds).
            # The studies shipped before (cpu, tuned-cpu) ran NCHW, and their records say so.
            "run.channels_last": True,
        },
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
            "pah_official": {"method.name": "pah", **PAH_VARIANTS["official_code"]},
            "finetune": {"method.name": "finetune"},
            "lwf": {"method.name": "lwf"},
            "ewc": {"method.name": "ewc"},
        },
    ),
    "ablation": Part("ablation", {v: PAH_VARIANTS[v] for v in ("ce_only", "ce+sm", "ce+sp")}),
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
    client = mlflow_client(study.mlflow_uri)
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


def the_export(study: Study):
    """The study's export (``<out>/export``) when there is one; one of another experiment is an
    error (it would be merged into this study's)."""
    from analysis.export import ExportSource

    if not (study.out / "export" / "experiment.json").is_file():
        return None
    export = ExportSource(study.out / "export")
    if export.default_experiment != study.experiment:
        raise SweepError(
            f"{study.out / 'export'} holds experiment {export.default_experiment!r}, not "
            f"{study.experiment!r}: pass --experiment {export.default_experiment} or another --out"
        )
    return export


def exported_status(study: Study, part: str) -> PartStatus:
    """Where a part stands in the study's export: a study whose store was lost (another machine)
    continues from its committed export. Finished as in ``part_status``: the sweep ended and every
    cell ended."""
    name, export = study.sweep(part), the_export(study)
    parents = [] if export is None else [
        p for p in export.meta["sweeps"] if export.record(p)["tags"].get("sweep") == name
    ]  # fmt: skip
    if not parents:
        return PartStatus(name, started=False, finished=False)
    cells = {}
    for rid in export.meta["runs"]:
        d = export.record(rid)
        if d["tags"].get("mlflow.parentRunId") in parents:
            cell = (d["tags"].get("variant", "?"), int(d["params"].get("run.seed", -1)))
            cells[cell] = d["status"]
    ended = all(cells.get(c) in TERMINAL for c in study.cells(part))
    finished = ended and all(export.record(p)["status"] == "FINISHED" for p in parents)
    return PartStatus(name, started=True, finished=finished, cells=cells)


def status_of(study: Study, part: str) -> PartStatus:
    """The store's status of a part it holds, else the export's."""
    status = part_status(study, part)
    return status if status.started else exported_status(study, part)


def to_export(names: list[str], store: Any, export: Any | None) -> tuple[list[str], list[str]]:
    """Which of the sweeps ``names`` the store's ``Experiment`` gives the export: those it holds,
    but not one the export's ``Experiment`` holds with more finished cells (a retraining
    interrupted early keeps the older, further sweep). Returns (names, names kept from the export)."""

    def finished(exp: Any, name: str) -> int | None:
        ids = {pid for pid in exp.sweeps if exp.sweep_label(pid) == name}
        return sum(r.status == "FINISHED" for r in exp.runs if r.parent in ids) if ids else None

    present, kept = [], []
    for name in names:
        new = finished(store, name)
        if new is None:
            continue
        old = finished(export, name) if export is not None else None
        (kept if old is not None and old > new else present).append(name)
    return present, kept
