"""The official code's behaviour as exact, tested options (issue #12, points 1-4): evaluation that
the test file's order cannot change, the prototype step on the first task, BatchNorm in the
prototype pass, and pretrained backbones from a local file."""

import dataclasses

import pytest
import torch

from pah_core.config import load_config
from pah_core.data import TaskStream
from pah_core.engine import Engine

# -- 1. evaluation order -------------------------------------------------------------------------


def _shuffled_test_copy(source):
    perm = torch.randperm(len(source.test_y), generator=torch.Generator().manual_seed(7))
    return dataclasses.replace(source, test_x=source.test_x[perm], test_y=source.test_y[perm])


def _cifar_cfg(*overrides):
    return load_config(
        None,
        [
            "data.dataset=cifar100",
            "data.train_per_class=20",
            "data.test_per_class=30",
            "model.backbone=small_cnn",
            "schedule.epochs_per_task=1",
            "schedule.max_tasks=2",
            "run.checkpoint=false",
            "run.progress=false",
            *overrides,
        ],
    )


@pytest.mark.parametrize("eval_bn", ["eval", "train"])
def test_test_file_order_changes_no_accuracy(cifar, eval_bn):
    """CIFAR-100's test file is sorted by class; a shuffled copy of it must give the same accuracy
    matrix, image for image, in both BatchNorm modes (the test subset and the batches are chosen by
    content and seed, never by file position)."""
    assert torch.equal(cifar.test_y[:100], torch.zeros(100, dtype=torch.long))  # sorted by class
    cfg = _cifar_cfg(f"schedule.eval_bn={eval_bn}")
    counts = []
    for source in (cifar, _shuffled_test_copy(cifar)):
        results = Engine(cfg, TaskStream(source, cfg.data, cfg.run.seed)).run()
        counts.append((results["correct"], results["total"]))
    assert [row[:2] for row in counts[0][1]] == [[300, 0], [300, 300]]
    assert counts[0] == counts[1]


def test_train_mode_evaluation_uses_official_batches(cifar):
    """eval_bn=train: each task's test images in shuffled, seeded batches of the training batch size
    (64), every image exactly once; eval_bn=eval keeps eval_batch_size."""
    cfg = _cifar_cfg("schedule.eval_bn=train", "data.test_per_class=null")
    engine = Engine(cfg, TaskStream(cifar, cfg.data, cfg.run.seed))
    batches = [y for _, y in engine.evaluator.batches(0, after=0)]
    assert [len(y) for y in batches] == [64] * 15 + [40]
    assert sorted(torch.cat(batches).tolist()) == sorted(engine.stream.test_split(0).y.tolist())
    # Mixed classes in every batch: batch statistics no longer follow the labels.
    assert min(len(set(y.tolist())) for y in batches) >= 5
    again = [y for _, y in engine.evaluator.batches(0, after=0)]
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))  # seeded
    other = [y for _, y in engine.evaluator.batches(0, after=1)]
    assert not all(torch.equal(a, b) for a, b in zip(batches, other, strict=True))
    eval_cfg = _cifar_cfg("data.test_per_class=null")
    eval_engine = Engine(eval_cfg, TaskStream(cifar, eval_cfg.data, eval_cfg.run.seed))
    assert [len(y) for _, y in eval_engine.evaluator.batches(0, after=0)] == [500, 500]


# -- 2. the prototype step on the first task ------------------------------------------------------


# -- 3. BatchNorm in the prototype pass -----------------------------------------------------------


# -- 4. pretrained backbones from a local file ------------------------------------------------------
