"""The sweeps' command lines: the argument groups of every sweep kind, made from the typed
specification's fields (``pah_sweep/spec.py``, where each flag is declared), the flags of the study
drivers, and the parsing of name lists and of ``--points``.

All of it runs before anything starts (Ray, MLflow, a sweep folder): a bad flag is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import SweepError
from .presets import DEFAULT_SAMPLES, HPO_PROTOCOLS, PRESETS, protocol_overrides
from .spec import (
    GridSpec,
    SearchSpec,
    SweepSpec,
    add_flags,
    count,
    non_negative,
    parse_seeds,
    parse_tags,
    positive,
)

# Names that lived here before pah_sweep/spec.py, pah_sweep/presets.py and pah_sweep/errors.py.
__all__ = [
    "DEFAULT_SAMPLES",
    "HPO_PROTOCOLS",
    "PRESETS",
    "SweepError",
    "count",
    "non_negative",
    "parse_seeds",
    "parse_tags",
    "positive",
    "protocol_overrides",
]


def common_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags every sweep kind shares: data, resources, storage, tracking, resume (SweepSpec)."""
    return add_flags(p, SweepSpec)


def resource_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Where trials run and on what: Ray address, workers and their CPUs/GPUs, the data folder."""
    return add_flags(p, SweepSpec, groups=["resources"])


def search_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The Optuna search's own flags: how many trials, what to optimise, ASHA, extra points."""
    return add_flags(p, SearchSpec, groups=["search"])


def grid_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A grid's own flags (the dataset, the seeds), then the common ones."""
    return common_arguments(add_flags(p, GridSpec, groups=["grid"]))


def parse_names(text: str, allowed: Iterable[str], flag: str) -> list[str]:
    """Comma-separated names, each one of ``allowed``; at least one."""
    allowed = list(allowed)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise SweepError(f"{flag} {text!r}: name at least one, from {', '.join(allowed)}")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise SweepError(f"{flag}: unknown {unknown}; choose from {', '.join(allowed)}")
    return names


def load_points(path: str, searched: Iterable[str]) -> list[dict[str, Any]]:
    """The --points file: a JSON list of {searched config key: value} objects."""
    file = Path(path)
    if not file.is_file():
        raise SweepError(f"--points {path}: no such file")
    try:
        points = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SweepError(f"--points {path}: not valid JSON ({e})") from None
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise SweepError(f"--points {path}: expected a JSON list of {{config key: value}} objects")
    keys = set(searched)
    for p in points:
        unknown = set(p) - keys
        if unknown:
            raise SweepError(
                f"--points: {sorted(unknown)} are not searched keys; searched: {sorted(keys)}"
            )
    return points


# What a study driver (compare_protocols.py, compare_methods.py, reproduce.py) sets in each of its
# sweeps itself, from its own flags: every other flag of the specification it takes as a sweep
# script does, and passes on to every sweep of the study.
STUDY_OWNED = ("preset", "config", "name", "resume", "experiment", "storage", "mlflow_uri")
STUDY_HELPS = {
    "overrides": "a config override for every sweep of the study (repeatable)",
    "verbose": "Ray's own output too",
}


def study_arguments(
    p: argparse.ArgumentParser,
    workdir: str,
    experiment: str,
    out: str | None,
    spec: type[SweepSpec],
    *,
    exclude: Iterable[str] = (),
    defaults: dict[str, Any] | None = None,
    helps: dict[str, str] | None = None,
) -> argparse.ArgumentParser:
    """The flags of a study driver (compare_protocols.py, compare_methods.py): where it trains
    and records, where its export and report go, resume, report only; then the flags of every
    field of ``spec`` it does not set itself (STUDY_OWNED, ``exclude``), with its ``defaults``."""
    p.add_argument("--workdir", default=workdir, help="MLflow store and Ray results")
    p.add_argument("--experiment", default=experiment)
    p.add_argument("--out", default=out, help=f"export and report folder (default: {out})")
    p.add_argument("--resume", action="store_true", help="continue the study in --workdir")
    p.add_argument("--report-only", action="store_true", help="export and report, train nothing")
    return add_flags(
        p,
        spec,
        exclude=(*STUDY_OWNED, *exclude),
        defaults=defaults,
        helps={**STUDY_HELPS, **(helps or {})},
    )


def open_workdir(workdir: Path, resume: bool) -> None:
    """A study's --workdir: a new one, or with --resume the one holding the study."""
    if (workdir / "mlflow.db").exists() and not resume:
        raise SweepError(
            f"{workdir} holds a study: pass --resume to continue it, or another --workdir"
        )
    workdir.mkdir(parents=True, exist_ok=True)
