"""One dataclass tree for every run: YAML file + ``key=value`` overrides, validated at load.

Errors name the field, the value and what is allowed, so a typo in a sweep config fails before any
data is read.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

# ConfigError lives below this module so that the methods' options can raise it without importing
# the module that loads them; pah_core.config.ConfigError is the same class.
from pah_core.checks import ConfigError
from pah_core.typed_dicts import (
    MAX_YAML_BYTES,
    build,
    flatten,
    parse_overrides,
    plain_yaml,
    set_dotted,
)

# Config keys that change where or how fast a run runs, never its numbers: a resumed run may change
# them (pah_core.checkpoints), and the seeds of one table row may differ in them (analysis.tables).
RUN_ONLY_KEYS = frozenset(
    {
        "data.root",
        "data.download",
        "data.cache_dir",
        "run.device",
        "run.threads",
        "run.checkpoint",
        "run.progress",
        "schedule.eval_batch_size",
        "schedule.eval_future_tasks",
    }
)

# ---------------------------------------------------------------------------------------------
# The tree


@dataclass
class DataConfig:
    dataset: Literal["cifar100", "tinyimagenet", "synthetic"] = "cifar100"
    # None: --data-root, else $PAH_DATA_ROOT, else ~/.cache/pah/data (resolved by pah_core.data).
    root: str | None = None
    download: bool = True
    n_tasks: int = 10
    # None: all classes split evenly over n_tasks; set it to use only n_tasks * classes_per_task classes.
    classes_per_task: int | None = None
    class_order: Literal["label", "random"] = "label"
    order_seed: int = 0
    # Which seed draws each task's validation split, its held-out prototype image per class and
    # its subsets: "run" (run.seed, as the official code: seeds then vary the split, and a table's
    # spread over seeds includes it) or "order_seed" (one split for every seed: runs before
    # December 2026). The class order stays data.order_seed's either way.
    split_seed: Literal["run", "order_seed"] = "run"
    # The stream starts after this many tasks of the split, whose classes it never shows: A-GEM's
    # HPO protocol tunes on the first k tasks and reports on the others (sweeps --hpo-protocol).
    skip_tasks: int = 0
    # The order of the classes the stream keeps after skip_tasks: "split" (the split's) or
    # "random" (shuffled by data.order_seed): protocol transfer across streams tunes on the first
    # tasks and evaluates on the rest in another order (sweeps --hpo-protocol first_k_reordered).
    kept_order: Literal["split", "random"] = "split"
    val_fraction: float = 0.0
    # "official": CIFAR (0.5, 0.5) and Tiny-ImageNet ImageNet stats, as the official code;
    # "dataset": the training set's own per-channel mean/std.
    normalization: Literal["official", "dataset"] = "official"
    augment: bool = False
    crop_padding: int = 4
    flip: bool = True
    # Subsample for smoke runs and tests (None: everything).
    train_per_class: int | None = None
    test_per_class: int | None = None
    cache_dir: str | None = None


@dataclass
class ModelConfig:
    backbone: Literal["resnet18", "resnet18_cifar", "small_cnn"] = "resnet18"
    # The paper's backbone is ImageNet-pretrained (the official code always passes pretrained=True);
    # false here so that a run works offline. With pretrained=true the weights come from
    # pretrained_path (a torchvision state dict on local disk, for clusters without internet) or,
    # when that is null, torchvision's download cache.
    pretrained: bool = False
    pretrained_path: str | None = None
    prototype_size: int = 10
    prototype_channels: int = 1
    # semantic_crop: centre crop of the held-out image (official code); semantic_resize: the whole
    # image resized (paper text); random: N(0.5, 0.1).
    prototype_init: Literal["semantic_crop", "semantic_resize", "random"] = "semantic_crop"
    # native: prototypes enter the backbone at s x s (official code); resize: upsampled to the input size.
    prototype_input: Literal["native", "resize"] = "native"
    hyper_width: int = 16
    hyper_depth: int = 1
    # BatchNorm in PAH's prototype pass (L_sp; student and teacher alike). running: the running
    # statistics, all old tasks' prototypes in one batched pass, and prototype batches never shift
    # the statistics used at test; batch: each task's C prototypes form one batch and use its
    # statistics, as the official code (BatchNorm in train mode everywhere).
    prototype_bn: Literal["running", "batch"] = "running"


@dataclass
class MethodConfig:
    """``method.name``, then a section per method that has options: ``method.<name>.<option>``,
    the fields of the options dataclass the method's module defines (``pah_core/methods/``)."""

    name: str = "pah"

    def __reduce__(self) -> tuple[Any, ...]:
        # The class with the sections is made at run time, so pickle cannot find it by name.
        return (_rebuild_method_config, ({f.name: getattr(self, f.name) for f in fields(self)},))


def _registered_methods() -> dict[str, Any]:
    # Late, because loading the methods imports torch. No cycle: the methods import this module for
    # types only, never at run time (tests/test_architecture.py walks the imports).
    from pah_core.methods import registered_methods

    return registered_methods()


def method_config_class() -> type[MethodConfig]:
    """MethodConfig with a section per registered method that has options, in name order."""
    methods = sorted(_registered_methods().items())
    return _with_sections(tuple((n, cls.options) for n, cls in methods if cls.options is not None))


@functools.cache
def _with_sections(sections: tuple[tuple[str, type], ...]) -> type[MethodConfig]:
    # One class per set of sections, so that configs built at different times compare equal.
    cls = dataclasses.make_dataclass(
        "MethodConfig",
        [(name, options, field(default_factory=options)) for name, options in sections],
        bases=(MethodConfig,),
    )
    cls.__module__ = __name__
    return cls


def _rebuild_method_config(values: dict[str, Any]) -> MethodConfig:
    return method_config_class()(**values)


@dataclass
class OptimConfig:
    batch_size: int = 64
    lr_backbone: float = 1e-4
    lr_hypernet: float = 1e-3
    lr_prototypes: float = 1e-3
    lr_head: float = 1e-3
    # The official code's "weight_decay " key has a trailing space and is ignored: AdamW's 0.01 applies.
    weight_decay: float = 0.01


@dataclass
class ScheduleConfig:
    epochs_per_task: int = 15
    eval_batch_size: int = 500
    # eval: BatchNorm running statistics at test (default); train: batch statistics at test, as the
    # official code (which never calls model.eval()): each task's test images in shuffled batches of
    # optim.batch_size, seeded by run.seed and the task ids (eval_batch_size applies to eval only).
    eval_bn: Literal["eval", "train"] = "eval"
    # Stop after this many tasks of the stream (None: all); the split itself is unchanged.
    max_tasks: int | None = None
    # Task-agnostic (class-incremental) evaluation beside the task-incremental one: every seen
    # task's head scores each test image, a rule picks the task (pah_core/task_inference.py; all
    # rules are measured, this one is the headline "class-IL" number and objective).
    task_inference: Literal["max_softmax", "min_entropy", "max_energy", "nearest_prototype"] = (
        "max_softmax"
    )
    # Also evaluate the tasks not trained yet (the full T x T matrix) and the untrained model
    # before task 1, for forward transfer (GEM's FWT).
    eval_future: bool = False
    # Which future tasks eval_future evaluates at each boundary: all (the full T x T matrix) or
    # the next one only (the matrix's superdiagonal, all that FWT reads: 9 of 45 future-task
    # passes of a 10-task run). Every number a run reports is the same either way.
    eval_future_tasks: Literal["all", "next"] = "all"


@dataclass
class RunConfig:
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None
    checkpoint: bool = True
    progress: bool = True
    # How the run computes (pah_core/numerics.py), off until benchmarks/numerics.py measures them
    # (issue #28). bf16: forward passes and losses under bfloat16 autocast on the run's device,
    # training and evaluation (weights, gradients and optimiser state stay fp32).
    precision: Literal["fp32", "bf16"] = "fp32"
    # The model's convolution weights and the input images in channels_last memory layout.
    channels_last: bool = False
    # torch.compile of the backbone (the teacher's too) in one of torch.compile's modes, null for
    # none; reduce-overhead (CUDA graphs) on CUDA only. Checkpoints keep the uncompiled model's keys.
    compile: Literal["default", "reduce-overhead", "max-autotune"] | None = None


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=lambda: method_config_class()())
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def tasks_to_run(self) -> int:
        """The tasks a run trains: the stream's first ``schedule.max_tasks`` (all when null)."""
        left = self.data.n_tasks - self.data.skip_tasks
        return min(left, self.schedule.max_tasks or left)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data, with the chosen method's options only: a run records (logs,
        checkpoints, fingerprints) nothing of the methods it does not run, so that adding a
        method changes no other run."""
        tree = dataclasses.asdict(self)
        chosen = self.method.name
        tree["method"] = {k: v for k, v in tree["method"].items() if k in ("name", chosen)}
        return tree

    def flat(self) -> dict[str, Any]:
        """Dotted keys -> values, e.g. {"model.hyper_width": 16}."""
        return flatten(self.to_dict())

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


# Keys added after runs and checkpoints were recorded without them, with the value such a run ran
# under (not always today's default: before data.split_seed, splits came from data.order_seed). A
# checkpoint's comparison and the tables read a missing key as this value.
KEYS_ADDED: dict[str, Any] = {
    "data.skip_tasks": 0,
    "data.kept_order": "split",
    "data.split_seed": "order_seed",
    "schedule.task_inference": "max_softmax",
    "schedule.eval_future": False,
    "schedule.eval_future_tasks": "all",
    "run.precision": "fp32",
    "run.channels_last": False,
    "run.compile": None,
}


def with_added_keys(flat: dict[str, Any]) -> dict[str, Any]:
    """A recorded flat config completed with ``KEYS_ADDED`` where it predates them."""
    return {**KEYS_ADDED, **flat}


def own_method_keys(flat: dict[str, Any]) -> dict[str, Any]:
    """A flat config (a run's params, a checkpoint's config) without the option sections of the
    methods it did not run: runs recorded before ``Config.to_dict`` dropped them carry every
    registered method's section."""
    chosen = flat.get("method.name")
    return {
        k: v
        for k, v in flat.items()
        if not k.startswith("method.") or k == "method.name" or k.startswith(f"method.{chosen}.")
    }


def from_dict(raw: dict[str, Any] | None, overrides: dict[str, Any] | None = None) -> Config:
    tree = json.loads(json.dumps(raw or {}))  # a deep copy the overrides may change
    for key, value in (overrides or {}).items():
        set_dotted(tree, key, value)
    # The method sections come from the registry, so MethodConfig is assembled at run time.
    resolve = lambda tp: method_config_class() if tp is MethodConfig else tp  # noqa: E731
    from pah_core.config_checks import validate

    return validate(build(Config, tree, "", resolve))


def load_config(
    path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None
) -> Config:
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(
                f"config file {str(p)!r} does not exist (shipped configs live in configs/)"
            )
        if p.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"config file {str(p)!r} is too large to be a config")
        raw = plain_yaml(p.read_text(), f"config file {str(p)!r}") or {}
        if not isinstance(raw, dict):
            raise ConfigError(
                f"config file {str(p)!r} must be a mapping of sections (data:, model:, method:, "
                f"...), got a {type(raw).__name__}; see configs/cifar100_pah.yaml"
            )
    if isinstance(overrides, (list, tuple)):
        overrides = parse_overrides(overrides)
    return from_dict(raw, overrides)
