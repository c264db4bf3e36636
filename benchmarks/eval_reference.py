"""The task-boundary evaluation as it was before issue #28 (``pah_core/engine.py`` at 2ced657), kept
as the reference of the one in ``pah_core/evaluation.py``: the test splits, then the validation
splits in a second pass, each under ``torch.no_grad`` with the seen tasks' prototype features
computed again. ``tests/test_evaluation.py`` checks that both give the same counts;
``benchmarks/eval_share.py`` times both side by side. Batches come from the same
``Evaluator.batches`` (moved there unchanged)."""

from __future__ import annotations

import numpy as np
import torch

from pah_core import task_inference
from pah_core.engine import Engine
from pah_core.models import batchnorm_mode


@torch.no_grad()
def task_counts(engine: Engine, j: int, after: int, prototypes, split: str) -> np.ndarray:
    method, rules = engine.method, engine.state.rules
    counts = torch.zeros(2 + 2 * len(rules), dtype=torch.int64, device=engine.device)
    for x, y in engine.evaluator.batches(j, after, split):
        counts[1] += y.numel()
        if j > after:
            counts[0] += (method.predict(x, j).argmax(dim=-1) == y).sum()
            continue
        logits, features = method.all_heads(x, range(after + 1))
        counts[0] += (logits[j].argmax(dim=-1) == y).sum()
        for r, rule in enumerate(rules):
            if rule == "nearest_prototype":
                scores = task_inference.prototype_scores(features, prototypes)
            else:
                scores = task_inference.task_scores(logits, rule)
            task, cls = task_inference.predict(logits, scores)
            counts[2 + r] += (cls == j * logits.shape[-1] + y).sum()
            counts[2 + len(rules) + r] += (task == j).sum()
    engine.dist.sum(counts)
    return counts.cpu().numpy()


def seen(engine: Engine, t: int, tasks: range | None = None, split: str = "test") -> np.ndarray:
    bn = "batch" if engine.cfg.schedule.eval_bn == "train" else "running"
    with batchnorm_mode(engine.method.model, bn):
        protos = None
        if engine.evaluator.has_prototypes and t >= 0:
            protos = engine.method.prototype_features(range(t + 1))
        return np.stack([task_counts(engine, j, t, protos, split) for j in tasks or range(t + 1)])


def boundary(
    engine: Engine, t: int, tasks: range, val: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """What ``Evaluator.boundary`` computes, the old way: two passes."""
    return seen(engine, t, tasks), seen(engine, t, split="val") if val else None
