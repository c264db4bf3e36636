"""Task-agnostic prediction rules and the transfer metrics, on hand-made tensors (issue #15)."""

import math

import numpy as np
import pytest
import torch

from pah_core import metrics
from pah_core.task_inference import LOGIT_RULES, predict, prototype_scores, task_scores

NAN = math.nan


def _obvious(k=4, b=12, c=5, seed=0):
    """Logits where each image's own task's head is confident and the others are flat."""
    g = torch.Generator().manual_seed(seed)
    tasks = torch.arange(b) % k
    classes = torch.randint(c, (b,), generator=g)
    logits = torch.randn(k, b, c, generator=g) * 0.01
    logits[tasks, torch.arange(b), classes] = 8.0
    return logits, tasks, classes


@pytest.mark.parametrize("rule", LOGIT_RULES)
def test_obvious_heads_give_perfect_task_inference(rule):
    logits, tasks, classes = _obvious()
    task, global_class = predict(logits, task_scores(logits, rule))
    assert torch.equal(task, tasks)
    assert torch.equal(global_class, tasks * 5 + classes)


@pytest.mark.parametrize("rule", LOGIT_RULES)
def test_rules_agree_with_brute_force(rule):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 7, 4, generator=g) * 3
    got = task_scores(logits, rule)
    for k in range(3):
        for b in range(7):
            z = [float(v) for v in logits[k, b]]
            p = [math.exp(v) / sum(math.exp(u) for u in z) for v in z]
            want = {
                "max_softmax": max(p),
                "min_entropy": sum(q * math.log(q) for q in p),
                "max_energy": math.log(sum(math.exp(v) for v in z)),
            }[rule]
            assert float(got[k, b]) == pytest.approx(want, rel=1e-5, abs=1e-6)
    task, cls = predict(logits, got)
    for b in range(7):
        best = max(range(3), key=lambda k: float(got[k, b]))
        assert int(task[b]) == best
        assert int(cls[b]) == best * 4 + int(logits[best, b].argmax())


def test_nearest_prototype_rule_by_brute_force():
    g = torch.Generator().manual_seed(2)
    feats, protos = torch.randn(6, 8, generator=g), torch.randn(3, 4, 8, generator=g)
    got = prototype_scores(feats, protos)
    for k in range(3):
        for b in range(6):
            cos = [
                float(feats[b] @ protos[k, c] / (feats[b].norm() * protos[k, c].norm()))
                for c in range(4)
            ]
            assert float(got[k, b]) == pytest.approx(max(cos), abs=1e-6)
    # An image equal to a prototype of task 2 is assigned to task 2.
    scores = prototype_scores(protos[2, 1:2] * 3.0, protos)
    assert int(scores.argmax(dim=0)) == 2


@pytest.mark.parametrize("rule", LOGIT_RULES)
def test_one_task_class_il_equals_task_il(rule):
    logits = torch.randn(1, 9, 5)
    task, cls = predict(logits, task_scores(logits, rule))
    assert torch.equal(task, torch.zeros(9, dtype=torch.long))
    assert torch.equal(cls, logits[0].argmax(dim=-1))


def test_unknown_rule():
    with pytest.raises(ValueError, match="unknown task-inference rule 'oracle'"):
        task_scores(torch.zeros(1, 1, 2), "oracle")


# -- transfer metrics and input validation -------------------------------------------------------

FULL = [  # after training task i (rows), every task evaluated (future ones too)
    [0.90, 0.15, 0.10],
    [0.80, 0.70, 0.20],
    [0.60, 0.75, 0.50],
]


def test_forward_transfer_gem():
    # (R[0][1] - b1 + R[1][2] - b2) / 2 = (0.15 - 0.10 + 0.20 - 0.05) / 2
    assert metrics.forward_transfer(FULL, [0.1, 0.10, 0.05]) == pytest.approx(0.10)
    assert metrics.forward_transfer([[0.5]], [0.1]) == 0.0
    lower = [[0.9, NAN], [0.8, 0.7]]
    with pytest.raises(metrics.MetricError, match="eval_future"):
        metrics.forward_transfer(lower, [0.1, 0.1])
    with pytest.raises(metrics.MetricError, match="random_init must be 3"):
        metrics.forward_transfer(FULL, [0.1, 0.1])


def test_intransigence_rwalk():
    # joint reference diagonal (0.95, 0.80, 0.70) vs A[k][k] = (0.90, 0.70, 0.50)
    ref = [0.95, 0.80, 0.70]
    assert metrics.intransigence(FULL, ref) == pytest.approx((0.05 + 0.10 + 0.20) / 3)
    assert metrics.intransigence(FULL, ref, after=0) == pytest.approx(0.05)
    with pytest.raises(metrics.MetricError, match="at least 3"):
        metrics.intransigence(FULL, [0.9])


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.zeros((0, 3)), "no rows"),
        ([[0.5, NAN], [0.4, math.inf]], "infinite cells"),
        ([[50.0, NAN], [40.0, 30.0]], r"fractions in \[0, 1\].*percentages"),
        ([[-0.1]], "fractions"),
    ],
)
def test_bad_matrices_are_clear_errors(matrix, message):
    with pytest.raises(metrics.MetricError, match=message):
        metrics.average_accuracy(matrix)


@pytest.mark.parametrize("after", [3, -1, 7])
def test_after_out_of_range_is_an_error_not_negative_indexing(after):
    with pytest.raises(metrics.MetricError, match=f"after = {after} is out of range"):
        metrics.forgetting(FULL, after=after)


# -- the engine's task-agnostic evaluation -------------------------------------------------------


def test_one_task_stream_class_il_equals_task_il():
    from pah_core.engine import Engine
    from tests.helpers import tiny_config, tiny_stream

    for method in ("pah", "finetune"):
        cfg = tiny_config(f"method.name={method}", "data.n_tasks=1", "schedule.epochs_per_task=1")
        r = Engine(cfg, tiny_stream(cfg)).run()
        for rule, cil in r["class_il"].items():
            assert cil["accuracy_matrix"] == r["accuracy_matrix"], (method, rule)
            assert cil["task_inference_matrix"] == [[1.0]]
        assert ("nearest_prototype" in r["class_il"]) == (method == "pah")


def test_engine_class_il_counts_match_a_brute_force_evaluation():
    """After the last task, the engine's class-IL counts equal a per-image loop over the heads."""
    from pah_core.engine import Engine
    from pah_core.models import batchnorm_mode
    from tests.helpers import tiny_config, tiny_stream

    cfg = tiny_config("schedule.epochs_per_task=1")
    engine = Engine(cfg, tiny_stream(cfg))
    r = engine.run()
    net = engine.method.model
    with torch.no_grad(), batchnorm_mode(net, "running"):
        for j in range(3):
            split = engine.stream.test_split(j)
            x = engine.normalize(split.x)
            logits = torch.stack([net(x, k) for k in range(3)])  # one forward per head
            probs = logits.softmax(-1).amax(-1)
            task = probs.argmax(0)
            local = logits.argmax(-1).gather(0, task[None])[0]
            right = int(((task == j) & (local == split.y)).sum())
            assert r["class_il"]["max_softmax"]["cil_correct"][2][j] == right
            assert r["class_il"]["max_softmax"]["task_correct"][2][j] == int((task == j).sum())


def test_eval_future_fills_the_full_matrix_and_forward_transfer(tmp_path):
    from pah_core.engine import Engine
    from tests.helpers import tiny_config, tiny_stream

    cfg = tiny_config("schedule.eval_future=true", "schedule.epochs_per_task=1")
    full = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path / "a").run()
    m = np.array([[np.nan if v is None else v for v in row] for row in full["accuracy_matrix"]])
    assert not np.isnan(m).any() and m.shape == (3, 3)
    assert len(full["untrained_accuracy"]) == 3
    want = metrics.forward_transfer(m, full["untrained_accuracy"])
    assert full["forward_transfer"] == pytest.approx(want)
    # The untrained evaluation changes nothing about training: the lower triangle is the same.
    plain_cfg = tiny_config("schedule.epochs_per_task=1")
    plain = Engine(plain_cfg, tiny_stream(plain_cfg)).run()
    assert np.allclose(np.tril(m), np.nan_to_num(np.array(plain["accuracy_matrix"], dtype=float)))
    # Resume keeps the task-agnostic counts and the untrained reference.
    first = tiny_config(
        "schedule.eval_future=true", "schedule.epochs_per_task=1", "schedule.max_tasks=1"
    )
    Engine(first, tiny_stream(first), checkpoint_dir=tmp_path / "b").run()
    resumed = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path / "b").run(
        resume_from=tmp_path / "b" / "task_00"
    )
    assert resumed["class_il"] == full["class_il"]
    assert resumed["forward_transfer"] == full["forward_transfer"]


def test_nearest_prototype_rule_needs_prototypes():
    from pah_core.engine import Engine
    from tests.helpers import tiny_config, tiny_stream

    cfg = tiny_config("method.name=finetune", "schedule.task_inference=nearest_prototype")
    with pytest.raises(ValueError, match="needs prototypes, which finetune has not"):
        Engine(cfg, tiny_stream(cfg))


@pytest.mark.parametrize("method", ["pah", "lwf"])
def test_task_agnostic_evaluation_is_one_backbone_pass_per_image(method):
    """Every head and every rule from the same features: the backbone sees each test image once
    per evaluation (plus, for PAH, one pass over the seen tasks' prototypes)."""
    from pah_core.engine import Engine
    from tests.helpers import tiny_config, tiny_stream

    cfg = tiny_config(f"method.name={method}", "schedule.epochs_per_task=1")
    engine = Engine(cfg, tiny_stream(cfg))
    engine.run()
    seen = []
    hook = engine.method.model.backbone.register_forward_hook(
        lambda module, args, out: seen.append(args[0].shape[0])
    )
    try:
        engine.evaluator.seen(2)
    finally:
        hook.remove()
    images = sum(len(engine.stream.test_split(j)) for j in range(3))
    prototypes = 3 * engine.stream.classes_per_task if method == "pah" else 0
    assert sum(seen) == images + prototypes
