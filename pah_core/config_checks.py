"""The values of a config checked against what each may be (types are checked while the tree is
built, ``pah_core.typed_dicts``): the first error names the key, the value and what is allowed."""

from __future__ import annotations

import re
from dataclasses import fields
from typing import TYPE_CHECKING

from pah_core.checks import require

MAX_THREADS = 1024

if TYPE_CHECKING:  # types only: pah_core.config calls validate, so no import back at run time
    from pah_core.config import Config, DataConfig, ModelConfig

# Class counts of the real datasets (synthetic: n_tasks * classes_per_task, 5 per task by default).
DATASET_CLASSES: dict[str, int] = {"cifar100": 100, "tinyimagenet": 200}
DATASET_IMAGE_SIZE: dict[str, int] = {"cifar100": 32, "tinyimagenet": 64, "synthetic": 16}
# Images per class in each split (Tiny-ImageNet's test split is its official val folder).
DATASET_PER_CLASS: dict[str, dict[str, int]] = {
    "cifar100": {"train_per_class": 500, "test_per_class": 100},
    "tinyimagenet": {"train_per_class": 500, "test_per_class": 50},
}


def _divisors(n: int) -> str:
    return ", ".join(str(k) for k in range(1, n + 1) if n % k == 0 and k <= 50)


def validate(cfg: Config) -> Config:
    """Every value checked against what it may be, section by section; the first error names the
    key, the value and what is allowed."""
    _validate_data(cfg.data)
    _validate_model(cfg.model, cfg.data)
    _validate_methods(cfg)
    _validate_run(cfg)
    return cfg


def _validate_data(d: DataConfig) -> None:
    require(d.n_tasks >= 1, "data.n_tasks", d.n_tasks, "an integer >= 1")
    if d.classes_per_task is not None:
        require(
            d.classes_per_task >= 2, "data.classes_per_task", d.classes_per_task, "an integer >= 2"
        )
    n_classes = DATASET_CLASSES.get(d.dataset)
    if n_classes is not None and d.classes_per_task is None:
        require(
            n_classes % d.n_tasks == 0,
            "data.n_tasks",
            d.n_tasks,
            f"a divisor of {d.dataset}'s {n_classes} classes (e.g. {_divisors(n_classes)}), "
            "or set data.classes_per_task to use a subset of the classes",
        )
    if n_classes is not None and d.classes_per_task is not None:
        require(
            d.n_tasks * d.classes_per_task <= n_classes,
            "data.classes_per_task",
            d.classes_per_task,
            f"at most {n_classes} // data.n_tasks = {n_classes // d.n_tasks} for {d.dataset}",
        )
    require(0.0 <= d.val_fraction < 1.0, "data.val_fraction", d.val_fraction, "0 <= value < 1")
    require(
        0 <= d.skip_tasks < d.n_tasks,
        "data.skip_tasks",
        d.skip_tasks,
        f"0 to data.n_tasks - 1 = {d.n_tasks - 1} (at least one task must be left)",
    )
    require(
        d.kept_order == "split" or d.skip_tasks > 0,
        "data.kept_order",
        d.kept_order,
        "'split' when data.skip_tasks = 0 (it reorders the classes left after skipped tasks; "
        "to shuffle the whole split use data.class_order=random)",
    )
    require(d.crop_padding >= 0, "data.crop_padding", d.crop_padding, "an integer >= 0")
    for key in ("train_per_class", "test_per_class"):
        v = getattr(d, key)
        if v is not None:
            require(v >= 1, f"data.{key}", v, "an integer >= 1, or null for all images")
            most = DATASET_PER_CLASS.get(d.dataset, {}).get(key)
            if most is not None:
                # Asking for more than exists would silently run on fewer images than configured.
                require(
                    v <= most,
                    f"data.{key}",
                    v,
                    f"at most {most}, the images per class {d.dataset} has (null: all of them)",
                )
    if d.train_per_class is not None:
        # One image per class is held out for the prototype, and at least one must remain to train.
        require(
            d.train_per_class >= 2, "data.train_per_class", d.train_per_class, "an integer >= 2"
        )


def _validate_model(m: ModelConfig, d: DataConfig) -> None:
    require(m.prototype_size >= 1, "model.prototype_size", m.prototype_size, "an integer >= 1")
    size = DATASET_IMAGE_SIZE[d.dataset]
    require(
        m.prototype_size <= size,
        "model.prototype_size",
        m.prototype_size,
        f"at most the {size}x{size} image size of {d.dataset} (prototypes are crops of an image)",
    )
    require(
        m.prototype_channels in (1, 3), "model.prototype_channels", m.prototype_channels, "1 or 3"
    )
    if m.pretrained_path is not None:
        require(
            m.pretrained,
            "model.pretrained_path",
            m.pretrained_path,
            "only with model.pretrained=true (set it, or drop pretrained_path)",
        )
    require(m.hyper_width > 0, "model.hyper_width", m.hyper_width, "an integer > 0")
    require(m.hyper_depth >= 0, "model.hyper_depth", m.hyper_depth, "an integer >= 0")


def _validate_methods(cfg: Config) -> None:
    from pah_core.methods import registered_methods

    methods = registered_methods()
    require(cfg.method.name in methods, "method.name", cfg.method.name, f"one of {sorted(methods)}")
    # Every section, not only the chosen method's: a bad value in a config file is an error even
    # where another method runs (a run records its own section only, Config.to_dict).
    for f in fields(cfg.method):
        if f.name != "name":
            getattr(cfg.method, f.name).check()


def _validate_run(cfg: Config) -> None:
    d, o, s, r = cfg.data, cfg.optim, cfg.schedule, cfg.run
    require(o.batch_size >= 1, "optim.batch_size", o.batch_size, "an integer >= 1")
    for key in ("lr_backbone", "lr_hypernet", "lr_prototypes", "lr_head"):
        v = getattr(o, key)
        require(v >= 0, f"optim.{key}", v, "a number >= 0")
    require(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "a number >= 0")
    require(
        s.epochs_per_task >= 1, "schedule.epochs_per_task", s.epochs_per_task, "an integer >= 1"
    )
    require(
        s.eval_batch_size >= 1, "schedule.eval_batch_size", s.eval_batch_size, "an integer >= 1"
    )
    require(
        s.eval_future or s.eval_future_tasks == "all",
        "schedule.eval_future_tasks",
        s.eval_future_tasks,
        "all unless schedule.eval_future=true (it says which future tasks eval_future evaluates)",
    )
    if s.max_tasks is not None:
        require(
            1 <= s.max_tasks <= d.n_tasks - d.skip_tasks,
            "schedule.max_tasks",
            s.max_tasks,
            f"an integer from 1 to data.n_tasks - data.skip_tasks = {d.n_tasks - d.skip_tasks}, "
            "or null for every task",
        )
    require(
        re.fullmatch(r"auto|cpu|cuda(:\d+)?", r.device) is not None,
        "run.device",
        r.device,
        "auto, cpu, cuda or cuda:N (N a GPU index, e.g. cuda:0)",
    )
    require(0 <= r.seed < 2**32, "run.seed", r.seed, "an integer from 0 to 2**32 - 1")
    if r.threads is not None:
        # An upper bound: torch starts that many threads, and 10**6 of them is not a setting.
        require(
            1 <= r.threads <= MAX_THREADS,
            "run.threads",
            r.threads,
            f"an integer from 1 to {MAX_THREADS}, or null for all cores",
        )
