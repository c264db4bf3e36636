"""The typed sweep specification: what a sweep is asked to do, built once from the command line.

Every sweep flag is one field of a frozen dataclass below, and declares its flag once, in the
field's metadata (``flag(...)``: its name, argparse type or choices, help, and how the parsed text
becomes the field's value). From that one declaration:

- ``add_flags`` puts the flags on a parser (every entry point's parser is made this way: the
  search and grid scripts take all of a spec's flags, the study drivers all but those they set
  themselves);
- ``from_args`` turns the parsed flags into a spec (a flag the parser did not have keeps the
  field's default: defaults live here only);
- entry points compose by ``dataclasses.replace`` (a search's final sweep is its spec under another
  name; a comparison's sweeps are its spec with their names, roles and methods).

Nothing here starts or writes anything: a bad value is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from pah_core.typed_dicts import parse_overrides

from .errors import SweepError
from .presets import DEFAULT_SAMPLES, HPO_PROTOCOLS, PRESETS
from .resources import ONE_CORE, parse_concurrency
from .trial import OBJECTIVE_CHOICES

FLAG = "flag"  # the metadata key of a field's Flag
PARSED = "spec_fields"  # the parsed Namespace's record of which of its attributes are spec flags


def _number(kind: type, low: float, low_allowed: bool, allowed: str) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of ``text``, finite and above ``low`` (or equal, if allowed)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {allowed}") from None
        if not math.isfinite(value) or value < low or (value == low and not low_allowed):
            raise argparse.ArgumentTypeError(f"{text} is not allowed: {allowed}")
        return value

    parse.__name__ = allowed  # what argparse names in its own messages
    return parse


count = _number(int, 1, True, "an integer, 1 or more")
positive = _number(float, 0.0, False, "a number above 0")
non_negative = _number(float, 0.0, True, "a number, 0 or more")


def concurrency(text: str) -> str:
    """An argparse type: ``--concurrency`` as written, once ``parse_concurrency`` accepts it."""
    try:
        parse_concurrency(text)
    except SweepError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed: auto, or CELLSxTHREADS (trials at once x torch threads "
            "each), e.g. 2x1 or 1x2"
        ) from None
    return text


concurrency.__name__ = "auto, or CELLSxTHREADS"


def parse_tags(items: list[str]) -> dict[str, str]:
    """``--tag KEY=VALUE`` flags as a dict."""
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SweepError(f"--tag {item!r}: write KEY=VALUE, e.g. --tag study=tuned-cpu")
        tags[key.strip()] = value
    return tags


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise SweepError(f"--seeds {text!r}: give a comma-separated list of integers, e.g. 0,1,2")
    return seeds


@dataclass(frozen=True)
class Flag:
    """A field's command-line flag. ``convert`` turns the parsed value into the field's (raising
    SweepError or ConfigError for a bad one); ``text`` is the parsed default of such a field."""

    name: str
    group: str
    help: str | None = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    action: str | None = None  # store_true (a switch), append (repeatable)
    metavar: str | None = None
    convert: Callable[[Any], Any] | None = None
    text: str | None = None


def flag(
    name: str,
    default: Any = None,
    *,
    group: str = "common",
    help: str | None = None,
    type: Callable[[str], Any] | None = None,
    choices: Iterable[str] | None = None,
    switch: bool = False,
    repeat: Callable[[list[str]], Any] | None = None,
    metavar: str | None = None,
    convert: Callable[[Any], Any] | None = None,
    text: str | None = None,
) -> Any:
    """A spec field and its flag. ``switch``: present or not (default False); ``repeat``: given
    any number of times, the list of values turned into the field's by ``repeat`` (default empty)."""
    action = "store_true" if switch else "append" if repeat else None
    meta = Flag(
        name, group, help, type, tuple(choices) if choices else None, action, metavar,
        repeat or convert, text,
    )  # fmt: skip
    if repeat is not None:
        return field(default_factory=lambda: repeat([]), metadata={FLAG: meta})
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={FLAG: meta})
    return field(default=False if switch else default, metadata={FLAG: meta})


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """What every sweep kind (search, grid, a search's final runs) takes: the data, the config,
    the resources, where it records, its name, resume."""

    preset: str = flag(
        "--preset",
        "smoke",
        choices=DEFAULT_SAMPLES,
        help="smoke: real data, a minute or two on 2 CPU cores; demo: a little more, enough to "
        "learn; paper: the paper's protocol",
    )
    config: str | None = flag("--config", help="base config (default: configs/<dataset>_pah.yaml)")
    overrides: dict[str, Any] = flag(
        "--set",
        repeat=parse_overrides,
        metavar="KEY=VALUE",
        help="override the base config for every trial (repeatable)",
    )
    workers_per_trial: int = flag("--workers-per-trial", 1, group="resources", type=count)
    cpus_per_worker: float = flag(
        "--cpus-per-worker",
        ONE_CORE,
        group="resources",
        type=positive,
        help="CPUs per worker (default 0.99: a 1-worker trial plus its driver take one core)",
    )
    gpus_per_worker: float = flag("--gpus-per-worker", 0.0, group="resources", type=non_negative)
    ray_train: str = flag(
        "--ray-train",
        "auto",
        group="resources",
        choices=("auto", "always"),
        help="auto: a one-worker trial trains in its own Tune process (no Ray Train: ~15 s less "
        "per trial on a small machine; Tune restarts it from its last task checkpoint if it "
        "dies; each task's checkpoint is stored before the next task starts), more workers train "
        "under Ray Train; always: Ray Train for every trial (checkpoints upload while the next "
        "task trains, which pays off with large models on cloud storage; its dashboard views)",
    )
    concurrency: str = flag(
        "--concurrency",
        "auto",
        group="resources",
        type=concurrency,
        help="trials at once x torch threads each, e.g. 2x1 or 1x2 (one worker per trial with "
        "THREADS CPUs); auto (default): the best measured for the CPUs Ray sees "
        "(pah_sweep/resources.py MEASURED_CONCURRENCY), else one thread per trial and as many "
        "trials as CPUs, or what --workers-per-trial/--cpus-per-worker/--gpus-per-worker set; "
        "recorded as the tag 'concurrency' on every run",
    )
    max_concurrent: int | None = flag(
        "--max-concurrent",
        group="resources",
        type=count,
        help="trials in flight (default: as many as the cluster fits)",
    )
    address: str | None = flag(
        "--address",
        group="resources",
        help="Ray address (default: $RAY_ADDRESS, else a local Ray)",
    )
    data_root: str | None = flag(
        "--data-root",
        group="resources",
        help="dataset folder (default: $PAH_DATA_ROOT, else ~/.cache/pah/data)",
    )
    storage: str = flag(
        "--storage", "ray_results", help="folder or s3:// URI for Ray results and checkpoints"
    )
    mlflow_uri: str | None = flag(
        "--mlflow-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite file mlflow.db in the "
        "working directory; or http://host:port)",
    )
    experiment: str | None = flag("--experiment", help="MLflow experiment (default: pah-<dataset>)")
    name: str | None = flag(
        "--name", help="sweep name (default: pah-<dataset>-<kind>-<preset>-<timestamp>)"
    )
    resume: bool = flag(
        "--resume", switch=True, help="continue the interrupted sweep --name in --storage"
    )
    verbose: bool = flag(
        "--verbose",
        switch=True,
        help="Ray's own output too: its status table, the workers' lines, its warnings",
    )
    tags: dict[str, str] = flag(
        "--tag",
        repeat=parse_tags,
        metavar="KEY=VALUE",
        help="an MLflow tag on the sweep's parent run and every trial's run (repeatable)",
    )

    def __post_init__(self) -> None:
        """A spec built in code is held to its flags' choices, as a parsed one is."""
        for f in fields(self):
            choices = f.metadata[FLAG].choices if FLAG in f.metadata else None
            value = self.__dict__[f.name]
            if choices and value not in choices:
                raise SweepError(f"{f.metadata[FLAG].name} {value!r}: choose from {list(choices)}")


@dataclass(frozen=True, kw_only=True)
class SearchSpec(SweepSpec):
    """A hyperparameter search: the sweep's flags and the search's own (how many trials, what to
    optimise, ASHA, extra points, the HPO protocol and its final runs)."""

    method: str = flag(
        "--method",
        "pah",
        group="search",
        help="the method to tune (default pah): any registered method that declares a search "
        "space in its file under pah_core/methods/ (pah, lwf, ewc, si, agem, hnet, finetune, "
        "joint); its published defaults are the first trial",
    )
    num_samples: int | None = flag(
        "--num-samples",
        group="search",
        type=count,
        help="trials to run (default: 4 smoke, 4 demo, 64 paper)",
    )
    startup_trials: int | None = flag(
        "--startup-trials",
        group="search",
        type=count,
        help="TPE's random start-up trials, the defaults' trial included (default: a quarter of "
        "--num-samples, 1 to 10), fewer than the trials, so that the sampler models the rest",
    )
    objectives: str = flag(
        "--objectives",
        "acc",
        group="search",
        choices=OBJECTIVE_CHOICES,
        help="what Optuna optimises: task-IL accuracy (acc), forgetting, class-IL accuracy "
        "(cil_acc, under schedule.task_inference's rule); two give a Pareto set (default acc)",
    )
    grace_tasks: int | None = flag(
        "--grace-tasks",
        group="search",
        type=count,
        help="ASHA: tasks every trial trains before it may stop (default: the first task after "
        "which every searched parameter has acted, 2 where a distillation weight is searched; at "
        "most the tasks run)",
    )
    points: str | None = flag(
        "--points",
        group="search",
        help="JSON file: a list of {config key: value} points to evaluate after the method's "
        "published defaults",
    )
    seed: int = flag("--seed", 0, group="search", type=int, help="seed of the Optuna sampler")
    hpo_protocol: str = flag(
        "--hpo-protocol",
        "end_of_training",
        group="search",
        choices=HPO_PROTOCOLS,
        help="; ".join(f"{k}: {v}" for k, v in HPO_PROTOCOLS.items()),
    )
    first_k: int = flag(
        "--first-k",
        3,
        group="search",
        type=count,
        help="first_k: the tasks the search trains (default 3)",
    )
    final_seeds: int | None = flag(
        "--final-seeds",
        group="search",
        type=count,
        help="after the search, run the selected configuration over the whole stream with these "
        "many fresh seeds, as a sweep of their own (default: 0 for end_of_training, 3 otherwise)",
    )


@dataclass(frozen=True, kw_only=True)
class GridSpec(SweepSpec):
    """A grid sweep (baselines, ablation, a reproduction's parts): the dataset and the seeds."""

    dataset: str = flag("--dataset", "cifar100", group="grid", choices=sorted(PRESETS))
    seeds: list[int] = flag(
        "--seeds",
        [0, 1, 2],
        group="grid",
        convert=parse_seeds,
        text="0,1,2",
        help="comma-separated run seeds (default 0,1,2)",
    )


Spec = TypeVar("Spec", bound=SweepSpec)


def spec_flags(
    cls: type[SweepSpec],
    *,
    groups: Iterable[str] | None = None,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> list[str]:
    """The fields of ``cls`` that are flags: of ``groups`` (default all), ``only`` these (default
    all), less ``exclude``."""
    groups, only, exclude = (None if x is None else set(x) for x in (groups, only, exclude))
    return [
        f.name
        for f in fields(cls)
        if FLAG in f.metadata
        and (groups is None or f.metadata[FLAG].group in groups)
        and (only is None or f.name in only)
        and f.name not in exclude
    ]


def add_flags(
    p: argparse.ArgumentParser,
    cls: type[SweepSpec],
    *,
    defaults: Mapping[str, Any] | None = None,
    helps: Mapping[str, str] | None = None,
    **which: Any,
) -> argparse.ArgumentParser:
    """The flags of ``cls``'s fields (``which``: ``spec_flags``' selection) on ``p``, each as its
    field declares it; ``defaults`` and ``helps`` replace a field's default and help for this
    parser (a study driver's own scale)."""
    defaults, helps = defaults or {}, helps or {}
    by_name = {f.name: f for f in fields(cls)}
    added = spec_flags(cls, **which)
    for name in added:
        f, fl = by_name[name], by_name[name].metadata[FLAG]
        kwargs: dict[str, Any] = {"dest": name, "help": helps.get(name, fl.help)}
        if fl.action == "store_true":
            kwargs["action"] = "store_true"
        elif fl.action == "append":
            kwargs.update(action="append", default=[], metavar=fl.metavar)
        else:
            default = fl.text if fl.text is not None else f.default
            kwargs.update(default=defaults.get(name, default), type=fl.type, metavar=fl.metavar)
            kwargs["choices"] = list(fl.choices) if fl.choices else None
        p.add_argument(fl.name, **{k: v for k, v in kwargs.items() if v is not None})
    p.set_defaults(**{PARSED: (*(p.get_default(PARSED) or ()), *added)})
    return p


def from_args(cls: type[Spec], args: argparse.Namespace, **changes: Any) -> Spec:
    """The ``cls`` spec of parsed flags (those ``add_flags`` put on the parser, each through its
    field's ``convert``; the other fields keep their defaults), with ``changes`` on top."""
    parsed = vars(args)
    values = {}
    for f in fields(cls):
        if f.name in parsed.get(PARSED, ()) and f.name not in changes:
            convert = f.metadata[FLAG].convert
            value = parsed[f.name]
            values[f.name] = convert(value) if convert and value is not None else value
    return cls(**values, **changes)


def as_spec(spec: SweepSpec, cls: type[Spec], **changes: Any) -> Spec:
    """``spec``'s values of the fields ``cls`` has, as a ``cls``, with ``changes`` on top: e.g.
    the grid of a search's common flags."""
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in asdict(spec).items() if k in names and k not in changes}
    return cls(**values, **changes)
