"""A task boundary's evaluation (pah_core/evaluation.py, issue #28): test and validation splits
under one model state, in inference mode, with the same counts as the evaluation before it
(benchmarks/eval_reference.py, the code it replaced)."""

import numpy as np
import pytest
import torch

from benchmarks import eval_reference
from pah_core.engine import Engine
from tests.helpers import tiny_config, tiny_stream

CASES = {
    "pah": ["data.val_fraction=0.2", "schedule.eval_future=true", "schedule.eval_batch_size=7"],
    # The official protocol: batch statistics at test (shuffled batches), per-task prototype BN.
    "pah_official": [
        "data.val_fraction=0.2",
        "schedule.eval_bn=train",
        "model.prototype_bn=batch",
        "schedule.task_inference=nearest_prototype",
    ],
    "lwf": ["method.name=lwf", "data.val_fraction=0.2", "schedule.eval_future=true"],
}


@pytest.fixture(scope="module", params=list(CASES))
def trained(request):
    cfg = tiny_config(*CASES[request.param], "schedule.epochs_per_task=1", "run.checkpoint=false")
    engine = Engine(cfg, tiny_stream(cfg))
    # Training goes on after each evaluation in inference mode: nothing evaluation made is reused.
    assert engine.run()["status"] == "finished"
    return engine


def test_a_boundary_counts_exactly_what_the_evaluation_before_it_counted(trained):
    engine = trained
    n = len(engine.stream)
    future = engine.cfg.schedule.eval_future
    for t in range(n):
        tasks = range(n) if future else range(t + 1)
        test, val = engine.evaluator.boundary(t, tasks, val=True)
        old_test, old_val = eval_reference.boundary(engine, t, tasks, val=True)
        assert np.array_equal(test, old_test), t
        assert np.array_equal(val, old_val), t
        assert np.array_equal(engine.evaluator.seen(t, tasks), old_test)
    assert np.array_equal(
        engine.evaluator.seen(-1, range(n)), eval_reference.seen(engine, -1, range(n))
    )


def test_a_boundary_passes_each_image_once_and_the_prototypes_once():
    """Test and validation share the model state: PAH's prototypes go through the backbone once
    for both (twice before), every image once, all of it in inference mode."""
    cfg = tiny_config("data.val_fraction=0.2", "schedule.eval_future=true")
    engine = Engine(cfg, tiny_stream(cfg))
    for j in range(2):
        engine.method.begin_task(engine.stream.task(j), engine.normalize)
    seen, modes = [], set()

    def hook(module, args, out):
        seen.append(args[0].shape[0])
        modes.add(torch.is_inference_mode_enabled())

    handle = engine.method.model.backbone.register_forward_hook(hook)
    try:
        engine.evaluator.boundary(1, range(3), val=True)
    finally:
        handle.remove()
    s = engine.stream
    test = sum(len(s.test_split(j)) for j in range(3))
    val = sum(len(s.val_split(j)) for j in range(2))
    assert sum(seen) == test + val + 2 * s.classes_per_task
    assert modes == {True}
