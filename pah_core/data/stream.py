"""Class-incremental task streams over an ImageSource.

Each task owns ``classes_per_task`` original labels, remapped to 0..C-1. One training image per class
is held out for prototype initialisation and removed from that task's training set, as the official
code does. Everything random here is drawn from generators seeded by the config, so a stream is a
pure function of (source, config). A task's test split is also independent of the order of the
source's test file (CIFAR-100's is sorted by class): its images are taken and kept in content
order, so shuffling the file changes no evaluation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .sources import DataError, ImageSource

if TYPE_CHECKING:  # types only: config loads the methods, which import this module
    from pah_core.config import DataConfig


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # uint8 (N, 3, H, W)
    y: torch.Tensor  # int64 (N,), task-local labels 0..C-1

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Task:
    task_id: int
    classes: tuple[int, ...]  # original dataset labels, in task-local order
    train: Split
    val: Split
    test: Split
    prototype_x: (
        torch.Tensor
    )  # uint8 (C, 3, H, W): the held-out image of each class, in local order
    train_index: torch.Tensor  # indices into the source's training set (provenance, tests)
    prototype_index: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class StreamSpec:
    """What a model needs to know about a stream before it sees data."""

    n_tasks: int
    classes_per_task: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dataset: str
    fingerprint: str


def _per_class_subset(
    labels: torch.Tensor, classes: list[int], limit: int | None, g: torch.Generator
):
    """Indices of ``classes`` in label order; at most ``limit`` per class, chosen at random."""
    picks = []
    for c in classes:
        idx = torch.nonzero(labels == c, as_tuple=True)[0]
        if limit is not None and limit < len(idx):
            idx = idx[torch.randperm(len(idx), generator=g)[:limit]].sort().values
        picks.append(idx)
    return picks


def content_order(x: torch.Tensor) -> torch.Tensor:
    """Indices that sort images by a hash of their pixels: an order that depends on content alone."""
    rows = x.contiguous().numpy().reshape(len(x), -1)
    keys = [hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in rows]
    return torch.tensor(sorted(range(len(keys)), key=keys.__getitem__), dtype=torch.long)


def _test_subset(
    images: torch.Tensor, labels: torch.Tensor, classes: list[int], limit: int | None, g
) -> torch.Tensor:
    """Test indices of ``classes``, class by class in task order, each class in content order
    (at most ``limit`` per class, chosen at random from that order)."""
    picks = []
    for c in classes:
        idx = torch.nonzero(labels == c, as_tuple=True)[0]
        idx = idx[content_order(images[idx])]
        if limit is not None and limit < len(idx):
            idx = idx[torch.randperm(len(idx), generator=g)[:limit].sort().values]
        picks.append(idx)
    return torch.cat(picks)


class TaskStream:
    def __init__(self, source: ImageSource, cfg: DataConfig, seed: int | None = None):
        """``seed``: the run's seed, which draws the splits under ``data.split_seed=run``."""
        self.source = source
        self.cfg = cfg
        if cfg.split_seed == "run" and seed is None:
            raise DataError(
                "data.split_seed = 'run': the stream needs the run's seed (TaskStream(source, "
                "cfg.data, cfg.run.seed)), or set data.split_seed=order_seed"
            )
        self.split_seed = cfg.order_seed if cfg.split_seed == "order_seed" else int(seed)
        n = source.num_classes
        cpt = cfg.classes_per_task
        if cpt is None:
            if n % cfg.n_tasks != 0:
                raise DataError(
                    f"data.n_tasks = {cfg.n_tasks} does not divide {source.name}'s {n} classes: choose a "
                    f"divisor of {n} or set data.classes_per_task"
                )
            cpt = n // cfg.n_tasks
        if cfg.n_tasks * cpt > n:
            raise DataError(
                f"data.n_tasks * data.classes_per_task = {cfg.n_tasks * cpt} exceeds {source.name}'s {n} classes"
            )
        self.classes_per_task = cpt
        if cfg.class_order == "label":
            order = list(range(n))
        else:
            order = torch.randperm(
                n, generator=torch.Generator().manual_seed(cfg.order_seed)
            ).tolist()
        # data.skip_tasks: the split's first tasks are left out, classes and all.
        self.skip = cfg.skip_tasks
        kept = order[self.skip * cpt : cfg.n_tasks * cpt]
        if cfg.kept_order == "random":
            g = torch.Generator().manual_seed(cfg.order_seed)
            kept = [kept[i] for i in torch.randperm(len(kept), generator=g).tolist()]
        self.class_order = kept
        if cfg.normalization == "official":
            self.mean, self.std = source.official_mean, source.official_std
        else:
            self.mean, self.std = source.train_mean_std()
        # Only the task being trained is kept whole; older tasks keep their test split alone. Keeping
        # every task would hold a second copy of the training set by the last task (Tiny-ImageNet:
        # ~120 MB per task), memory that grows with tasks for nothing.
        self._current: Task | None = None
        self._tests: dict[int, Split] = {}
        self._vals: dict[int, Split] = {}

    def __len__(self) -> int:
        return self.cfg.n_tasks - self.skip

    @property
    def spec(self) -> StreamSpec:
        return StreamSpec(
            n_tasks=len(self),
            classes_per_task=self.classes_per_task,
            image_size=self.source.image_size,
            mean=tuple(self.mean),
            std=tuple(self.std),
            dataset=self.source.name,
            fingerprint=self.source.fingerprint,
        )

    def task_classes(self, t: int) -> list[int]:
        c = self.classes_per_task
        return self.class_order[t * c : (t + 1) * c]

    def task(self, t: int) -> Task:
        if not 0 <= t < len(self):
            raise IndexError(
                f"task id {t} is out of range: the stream has tasks 0..{len(self) - 1}"
            )
        if self._current is None or self._current.task_id != t:
            self._current = self._build(t)
            self._tests[t] = self._current.test
            self._vals[t] = self._current.val
        return self._current

    def test_split(self, t: int) -> Split:
        """Task t's test split (kept for the whole run: evaluation revisits every seen task)."""
        if t not in self._tests:
            self._tests[t] = self._build(t).test
        return self._tests[t]

    def val_split(self, t: int) -> Split:
        """Task t's validation split (``data.val_fraction`` of its training images, never trained
        on): what sweeps select on, so that no choice sees the test split."""
        if t not in self._vals:
            self._vals[t] = self._build(t).val
        return self._vals[t]

    def split(self, t: int, which: str) -> Split:
        """Task t's ``test`` or ``val`` split."""
        return self.val_split(t) if which == "val" else self.test_split(t)

    def _build(self, t: int) -> Task:
        cfg, src = self.cfg, self.source
        classes = self.task_classes(t)
        local = torch.full((src.num_classes,), -1, dtype=torch.int64)
        local[torch.tensor(classes)] = torch.arange(len(classes))
        # One generator per task and purpose: task t's data never depends on which tasks were built
        # before, nor on data.skip_tasks (seeded by the task's place in the whole split).
        g = torch.Generator().manual_seed(self.split_seed * 1_000_003 + t + self.skip)

        train_per_class = _per_class_subset(src.train_y, classes, cfg.train_per_class, g)
        proto_idx, train_idx, val_idx = [], [], []
        for idx in train_per_class:
            if len(idx) < 2:
                raise DataError(f"class has {len(idx)} training image(s); at least 2 are needed")
            held = int(torch.randint(len(idx), (1,), generator=g))
            proto_idx.append(idx[held])
            rest = torch.cat([idx[:held], idx[held + 1 :]])
            n_val = int(round(cfg.val_fraction * len(rest)))
            perm = rest[torch.randperm(len(rest), generator=g)]
            val_idx.append(perm[:n_val])
            train_idx.append(perm[n_val:])
        train_index = torch.cat(train_idx).sort().values
        val_index = torch.cat(val_idx).sort().values
        prototype_index = torch.stack(proto_idx)
        test_index = _test_subset(src.test_x, src.test_y, classes, cfg.test_per_class, g)

        def split(x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> Split:
            return Split(x=x[index].contiguous(), y=local[y[index]])

        return Task(
            task_id=t,
            classes=tuple(classes),
            train=split(src.train_x, src.train_y, train_index),
            val=split(src.train_x, src.train_y, val_index),
            test=split(src.test_x, src.test_y, test_index),
            prototype_x=src.train_x[prototype_index].contiguous(),
            train_index=train_index,
            prototype_index=prototype_index,
        )


def load_source(cfg: DataConfig, data_root: str | None = None) -> ImageSource:
    """The configured dataset, decoded into memory (``data_root`` overrides ``cfg.root``)."""
    from pathlib import Path

    from .sources import load_cifar100, load_tinyimagenet, make_synthetic, resolve_data_root

    if cfg.dataset == "synthetic":
        cpt = cfg.classes_per_task or 5
        return make_synthetic(num_classes=cfg.n_tasks * cpt, seed=cfg.order_seed)
    root = resolve_data_root(data_root or cfg.root)
    if cfg.dataset == "cifar100":
        return load_cifar100(root, download=cfg.download)
    if cfg.dataset == "tinyimagenet":
        return load_tinyimagenet(
            root, download=cfg.download, cache_dir=Path(cfg.cache_dir) if cfg.cache_dir else None
        )
    raise DataError(f"unknown dataset {cfg.dataset!r}: use cifar100, tinyimagenet or synthetic")
