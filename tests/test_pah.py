import copy

import pytest
import torch

from pah_core.config import load_config
from pah_core.data import Normalize
from pah_core.losses import distillation_kl
from pah_core.methods import build_method
from pah_core.models import HyperMLP, PAHNet
from tests.helpers import tiny_config, tiny_stream

CPU = torch.device("cpu")


def test_official_hypernetwork_size_and_shapes():
    h = HyperMLP(1000, 10 * 512, width=16, depth=1)
    assert sum(p.numel() for p in h.parameters()) == 98_176
    assert all(m.bias is None for m in h.modules() if isinstance(m, torch.nn.Linear))
    cfg = load_config(None).model  # resnet18, 10x10x1 prototypes, H=16, 1 hidden layer
    net = PAHNet(cfg, n_tasks=10, classes_per_task=10, image_size=32)
    assert net.feature_dim == 512 and net.param_counts()["hypernet"] == 98_176
    assert net.prototypes.shape == (10, 10, 1, 10, 10)
    x = torch.randn(4, 3, 32, 32)
    assert net(x, 3).shape == (4, 10)
    assert net.heads(range(3)).shape == (3, 10, 512)
    assert net.prototype_images(2).shape == (10, 3, 10, 10)


def test_last_hypernet_layer_is_scaled_down():
    torch.manual_seed(0)
    h = HyperMLP(1000, 5120, width=256, depth=1)
    first, last = h.net[0].weight, h.net[-1].weight
    # Kaiming fan_in: std sqrt(2/fan_in); the last layer is divided by 10.
    assert first.std().item() == pytest.approx((2 / 1000) ** 0.5, rel=0.05)
    assert last.std().item() == pytest.approx((2 / 256) ** 0.5 / 10, rel=0.05)


def test_semantic_crop_init_matches_official_crop():
    cfg = load_config(None, ["model.backbone=small_cnn"]).model
    net = PAHNet(cfg, n_tasks=2, classes_per_task=3, image_size=32)
    images = torch.randn(3, 3, 32, 32)
    net.init_prototypes(1, images, "semantic_crop")
    assert torch.allclose(net.prototypes[1], images[:, :, 11:21, 11:21].mean(1, keepdim=True))
    before = net.prototypes[0].clone()
    net.init_prototypes(0, images, "random")
    assert torch.equal(net.prototypes[0], before)


def test_task_id_out_of_range():
    cfg = tiny_config()
    method = build_method(cfg, tiny_stream(cfg).spec, CPU)
    with pytest.raises(IndexError, match=r"task id 3 is out of range.*0..2"):
        method.predict(torch.zeros(2, 3, 16, 16), 3)
    with pytest.raises(IndexError, match="task id -1"):
        method.predict(torch.zeros(2, 3, 16, 16), -1)


def test_distillation_zero_when_equal_and_for_no_old_tasks():
    logits = torch.randn(3, 8, 5)
    for direction in ("teacher_student", "student_teacher"):
        for reduction in ("mean", "sum"):
            assert distillation_kl(
                logits, logits.clone(), 2.0, direction, reduction
            ).item() == pytest.approx(0, abs=1e-6)
    assert distillation_kl(torch.zeros(0, 8, 5), torch.zeros(0, 8, 5), 2.0).item() == 0.0
    other = torch.randn(3, 8, 5)
    mean = distillation_kl(logits, other, 2.0, reduction="mean")
    total = distillation_kl(logits, other, 2.0, reduction="sum")
    assert mean.item() > 0 and total.item() == pytest.approx(3 * mean.item(), rel=1e-5)
    assert distillation_kl(logits, other, 2.0, "teacher_student").item() != pytest.approx(
        distillation_kl(logits, other, 2.0, "student_teacher").item()
    )


def _method_at_task(t: int, *overrides: str):
    cfg = tiny_config(*overrides)
    stream = tiny_stream(cfg)
    method = build_method(cfg, stream.spec, CPU)
    norm = Normalize(stream.spec.mean, stream.spec.std, CPU)
    for k in range(t + 1):
        method.begin_task(stream.task(k), norm)
        if k < t:
            task = stream.task(k)
            method.train_batch(norm(task.train.x[:16]), task.train.y[:16], k)
            method.end_task(task)
    task = stream.task(t)
    return method, norm(task.train.x[:16]), task.train.y[:16]


def test_losses_are_zero_when_student_equals_teacher():
    method, x, y = _method_at_task(1)
    # The prototype loss first: main_loss's train-mode forward moves the student's BatchNorm
    # running statistics, which the prototype pass reads (model.prototype_bn=running).
    assert method.prototype_loss(1).item() == pytest.approx(0.0, abs=1e-6)
    _, stats = method.main_loss(x, y, 1)
    assert float(stats["loss_sm"]) == pytest.approx(0.0, abs=1e-6)


def test_first_task_has_no_distillation():
    method, x, y = _method_at_task(0)
    stats = method.train_batch(x, y, 0)
    assert "loss_sm" not in stats and "loss_sp" not in stats and method.teacher is None


def test_teacher_stays_frozen():
    method, x, y = _method_at_task(1)
    snapshot = copy.deepcopy(method.teacher.state_dict())
    assert all(not p.requires_grad for p in method.teacher.parameters())
    for _ in range(3):
        method.train_batch(x, y, 1)
    after = method.teacher.state_dict()
    for k, v in snapshot.items():
        if "running" in k or "num_batches" in k:
            continue  # the teacher's forward uses batch statistics, as the student's
        assert torch.equal(v, after[k]), k
    student = method.model.state_dict()
    assert not torch.equal(student["hypernet.net.0.weight"], after["hypernet.net.0.weight"])


def test_prototype_step_changes_only_prototypes():
    method, x, y = _method_at_task(1)
    net = method.model
    # Make L_sp non-zero: move the student away from the teacher first.
    method.train_batch(x, y, 1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    l_sp = method.prototype_loss(1)
    assert l_sp.item() > 0
    (grad,) = torch.autograd.grad(l_sp, [net.prototypes])
    net.prototypes.grad = grad
    method.opt_proto.step()
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"prototypes"}
    # Old prototypes move; with the default eval-mode BN the running statistics did not see them.


def test_switching_a_term_off_removes_its_gradient():
    def grads(*overrides):
        method, x, y = _method_at_task(1, *overrides)
        method.train_batch(x, y, 1)  # student != teacher afterwards
        loss, stats = method.main_loss(x, y, 1)
        net = method.model
        g = torch.autograd.grad(loss, [net.prototypes], allow_unused=True)[0]
        return stats, g

    stats_on, g_on = grads()
    stats_off, g_off = grads("method.pah.use_sm=false")
    assert "loss_sm" in stats_on and "loss_sm" not in stats_off
    # Without L_sm the old task's prototypes (task 0) get no gradient from the main step.
    assert g_on[0].abs().sum() > 0
    assert g_off[0].abs().sum() == 0
    method, x, y = _method_at_task(1, "method.pah.use_sp=false")
    assert "loss_sp" not in method.train_batch(x, y, 1)
    method, x, y = _method_at_task(1, "method.pah.lambda_sp=0")
    assert "loss_sp" not in method.train_batch(x, y, 1)


def test_nan_loss_names_the_cause():
    """No per-step host sync: a non-finite loss fails the run at the next logging interval."""
    from pah_core.engine import Engine
    from pah_core.losslog import LOG_EVERY

    cfg = tiny_config("optim.lr_backbone=1e30", "optim.lr_hypernet=1e30")
    engine = Engine(cfg, tiny_stream(cfg))
    with pytest.raises(FloatingPointError, match=r"pah loss is not finite \(.*at task 0.*diverged"):
        engine.run()
    assert LOG_EVERY >= 10
