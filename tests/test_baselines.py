"""The baselines (docs/baselines.md): each mechanism on its own, then end to end through Engine."""

import numpy as np
import pytest
import torch

from pah_core.data import Normalize
from pah_core.engine import Engine
from pah_core.methods import build_method, registered_methods
from pah_core.methods.agem import project
from pah_core.train import main as cli_main
from tests.helpers import tiny_config, tiny_stream

CPU = torch.device("cpu")
# Every registered method but PAH, from the registry: a new method's file gets the end-to-end,
# resume and divergence tests below without an edit here.
BASELINES = sorted(n for n in registered_methods() if n != "pah")


def setup(name, *overrides):
    cfg = tiny_config(f"method.name={name}", *overrides)
    stream = tiny_stream(cfg)
    torch.manual_seed(0)
    method = build_method(cfg, stream.spec, CPU)
    norm = Normalize(stream.spec.mean, stream.spec.std, CPU)
    return cfg, stream, method, norm


def train_task(method, task, norm, steps=3, batch=16):
    method.begin_task(task, norm)
    for i in range(steps):
        sl = slice(i * batch, (i + 1) * batch)
        method.train_batch(norm(task.train.x[sl]), task.train.y[sl], task.task_id)
    method.end_task(task)


def test_all_baselines_are_listed(capsys):
    methods = registered_methods()
    assert {"finetune", "joint", "lwf", "ewc", "si", "agem", "hnet"} <= set(BASELINES)
    assert all(methods[name].summary for name in methods)
    assert cli_main(["--list-methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(methods)


def test_ewc_penalty_zero_at_anchor_positive_away():
    _, stream, m, norm = setup("ewc")
    train_task(m, stream.task(0), norm)
    assert m.fisher and all((f >= 0).all() for f in m.fisher.values())
    assert sum(float(f.sum()) for f in m.fisher.values()) > 0
    assert float(m.penalty().detach()) == 0.0
    with torch.no_grad():
        for _, p in m.shared_parameters():
            p.add_(0.01)
    assert float(m.penalty().detach()) > 0


def test_ewc_online_fisher_decays():
    _, stream, m, norm = setup("ewc", "method.ewc.gamma=0.5")
    train_task(m, stream.task(0), norm)
    first = {n: f.clone() for n, f in m.fisher.items()}
    new = m.estimate_fisher(stream.task(1))
    m.end_task(stream.task(1))
    # the model did not change between the two estimates, so F = 0.5 F_0 + F_1 exactly
    for n in first:
        assert torch.allclose(m.fisher[n], 0.5 * first[n] + new[n], atol=1e-6)


def test_si_importance_non_negative_and_accumulates():
    _, stream, m, norm = setup("si")
    train_task(m, stream.task(0), norm)
    first = {n: o.clone() for n, o in m.omega.items()}
    assert all((o >= 0).all() for o in first.values())
    assert sum(float(o.sum()) for o in first.values()) > 0
    assert float(m.penalty().detach()) == 0.0  # at the anchor
    train_task(m, stream.task(1), norm)
    for n, o in m.omega.items():
        assert (o >= first[n]).all()
    assert sum(float(o.sum()) for o in m.omega.values()) > sum(
        float(o.sum()) for o in first.values()
    )


def test_agem_projection_does_not_oppose_reference():
    torch.manual_seed(0)
    for _ in range(20):
        g, ref = torch.randn(50), torch.randn(50)
        out = project(g, ref)
        assert float(torch.dot(out, ref)) >= -1e-5
        if float(torch.dot(g, ref)) >= 0:
            assert torch.equal(out, g)


def test_agem_memory_is_balanced_and_never_exceeds_its_size():
    _, stream, m, norm = setup("agem", "method.agem.memory_size=7")
    for t in range(3):
        task = stream.task(t)
        m.begin_task(task, norm)
        m.end_task(task)
        assert len(m.mem_y) == len(m.mem_x) == 7
        counts = torch.bincount(m.mem_t, minlength=t + 1)
        assert int(counts.max() - counts.min()) <= 1
        assert set(m.mem_t.tolist()) == set(range(t + 1))


def test_agem_projection_in_train_batch_matches_reference_batch(monkeypatch):
    _, stream, m, norm = setup("agem", "method.agem.memory_size=8", "method.agem.ref_batch_size=8")
    train_task(m, stream.task(0), norm)
    task = stream.task(1)
    m.begin_task(task, norm)
    # whole memory as the reference batch: g_ref is deterministic given the model
    params = list(m.model.parameters())
    m.opt.zero_grad(set_to_none=True)
    m.memory_loss().backward()
    ref = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
    )
    m.opt.zero_grad(set_to_none=True)
    loss, _ = m.task_loss(norm(task.train.x[:16]), task.train.y[:16], 1)
    loss.backward()
    m.before_step(1)
    g = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
    )
    assert float(torch.dot(g, ref)) >= -1e-4 * float(ref.norm() * g.norm())


def test_lwf_teacher_is_a_frozen_distinct_copy():
    _, stream, m, norm = setup("lwf")
    train_task(m, stream.task(0), norm)
    m.begin_task(stream.task(1), norm)
    teacher = m.teacher
    assert teacher is not None and teacher is not m.model
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(
        p.data_ptr() != q.data_ptr()
        for p, q in zip(teacher.parameters(), m.model.parameters(), strict=True)
    )
    before = {k: v.clone() for k, v in teacher.state_dict().items() if v.is_floating_point()}
    task = stream.task(1)
    # before any step the student equals the teacher: zero distillation
    _, stats = m.task_loss(norm(task.train.x[:16]), task.train.y[:16], 1)
    assert float(stats["loss_kd"]) == pytest.approx(0.0, abs=1e-6)
    for i in range(3):
        sl = slice(16 * i, 16 * (i + 1))
        m.train_batch(norm(task.train.x[sl]), task.train.y[sl], 1)
    after = teacher.state_dict()
    params = dict(teacher.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in params)
    student = dict(m.model.named_parameters())
    assert any(not torch.equal(params[k], student[k]) for k in params)
    _, stats = m.task_loss(norm(task.train.x[:16]), task.train.y[:16], 1)
    assert float(stats["loss_kd"]) > 0


def test_hnet_regulariser_zero_when_nothing_changed():
    _, stream, m, norm = setup("hnet")
    train_task(m, stream.task(0), norm)
    m.begin_task(stream.task(1), norm)
    assert float(m.regulariser(1).detach()) == 0.0
    task = stream.task(1)
    emb0 = m.model.embeddings[0].detach().clone()
    for i in range(3):
        sl = slice(16 * i, 16 * (i + 1))
        m.train_batch(norm(task.train.x[sl]), task.train.y[sl], 1)
    assert float(m.regulariser(1).detach()) > 0
    assert torch.equal(m.model.embeddings[0], emb0)  # old embeddings stay fixed
    assert m.model(norm(task.test.x[:4]), 0).shape == (4, 4)


def test_joint_sees_the_union_of_seen_tasks(monkeypatch):
    _, stream, m, norm = setup("joint")
    seen = []
    orig = m.model.task_logits

    def spy(features, t):
        seen.append((t, int(features.shape[0])))
        return orig(features, t)

    monkeypatch.setattr(m.model, "task_logits", spy)
    for t in range(3):
        task = stream.task(t)
        m.begin_task(task, norm)
        assert len(m.seen) == t + 1
        for j in range(t + 1):  # the joint method keeps each seen task's training split itself
            old = stream.task(j).train
            assert torch.equal(m.seen[j].x, old.x) and torch.equal(m.seen[j].y, old.y)
        seen.clear()
        m.train_batch(norm(task.train.x[:8]), task.train.y[:8], t)
        assert sorted(seen) == [(j, 8) for j in range(t + 1)]
        m.end_task(task)


@pytest.mark.parametrize("name", BASELINES)
def test_end_to_end_and_resume_gives_the_same_matrix(name, tmp_path):
    cfg = tiny_config(f"method.name={name}", "schedule.epochs_per_task=1")
    full = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path / "a").run()
    assert full["tasks_completed"] == 3 and np.isfinite(full["avg_acc"])

    first = tiny_config(f"method.name={name}", "schedule.epochs_per_task=1", "schedule.max_tasks=1")
    Engine(first, tiny_stream(first), checkpoint_dir=tmp_path / "b").run()
    resumed = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path / "b").run(
        resume_from=tmp_path / "b" / "task_00"
    )
    assert resumed["correct"] == full["correct"]
    assert resumed["accuracy_matrix"] == full["accuracy_matrix"]
    a, b = (
        torch.load(tmp_path / d / "task_02" / "state.pt", weights_only=False)["method_state"]
        for d in ("a", "b")
    )
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.parametrize("name", BASELINES)
def test_divergence_raises_a_clear_error(name):
    cfg = tiny_config(
        f"method.name={name}",
        "optim.lr_backbone=1e30",
        "optim.lr_head=1e30",
        "optim.lr_hypernet=1e30",
    )
    with pytest.raises(FloatingPointError, match="diverged"):
        Engine(cfg, tiny_stream(cfg)).run()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("method.lwf.temperature=0", "method.lwf.temperature"),
        ("method.ewc.lambda_ewc=-1", "method.ewc.lambda_ewc"),
        ("method.ewc.gamma=1.5", "method.ewc.gamma"),
        ("method.si.xi=0", "method.si.xi"),
        ("method.agem.memory_size=0", "method.agem.memory_size"),
        ("method.hnet.beta=-0.1", "method.hnet.beta"),
    ],
)
def test_baseline_config_checks(override, key):
    from pah_core.config import ConfigError

    with pytest.raises(ConfigError, match=key):
        tiny_config(override)
