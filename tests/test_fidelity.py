"""The official code's behaviour as exact, tested options (issue #12, points 1-4): evaluation that
the test file's order cannot change, the prototype step on the first task, BatchNorm in the
prototype pass, and pretrained backbones from a local file."""

import pickle

import pytest
import torch

from pah_core.config import ConfigError, load_config
from pah_core.data import Normalize
from pah_core.engine import Engine
from pah_core.methods import build_method
from pah_core.models import BackboneError, PAHNet, batchnorm_mode
from sweeps.ablation import VARIANTS
from tests.helpers import tiny_config, tiny_stream

CPU = torch.device("cpu")


# -- 1. evaluation order -------------------------------------------------------------------------


def test_a_last_batch_of_one_joins_the_previous_one():
    """Batch statistics cannot normalise a single image: evaluation merges it, counting it once."""
    cfg = tiny_config("optim.batch_size=13", "schedule.eval_bn=train")
    engine = Engine(cfg, tiny_stream(cfg))
    sizes = [len(y) for _, y in engine.evaluator.batches(0, after=0)]  # 40 test images per task
    assert sizes == [13, 13, 14] and sum(sizes) == len(engine.stream.test_split(0))


def test_evaluation_leaves_batchnorm_statistics_alone():
    cfg = tiny_config("schedule.eval_bn=train")
    engine = Engine(cfg, tiny_stream(cfg))
    engine.stream.task(0)
    before = {k: v.clone() for k, v in engine.method.model.state_dict().items()}
    engine.evaluator.seen(0)
    after = engine.method.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert engine.method.model.training


# -- 2. the prototype step on the first task ------------------------------------------------------


def _first_batch(*overrides):
    cfg = tiny_config(*overrides)
    stream = tiny_stream(cfg)
    method = build_method(cfg, stream.spec, CPU)
    norm = Normalize(stream.spec.mean, stream.spec.std, CPU)
    task = stream.task(0)
    method.begin_task(task, norm)
    x, y = norm(task.train.x[:16]), task.train.y[:16]
    return method, x, y


def test_official_prototype_step_runs_on_the_first_task():
    """With proto_step_keeps_main_grad the official code steps the prototype optimiser on every
    batch, task 0 included (its gradient is the main step's); without it there is nothing to step."""
    method, x, y = _first_batch("method.pah.proto_step_keeps_main_grad=true")
    main_only = build_method(method.cfg, tiny_stream(method.cfg).spec, CPU)
    main_only.model.load_state_dict(method.model.state_dict())
    method.train_batch(x, y, 0)
    steps = [s["step"] for s in method.opt_proto.state.values()]
    assert [float(s) for s in steps] == [1.0]
    # The prototypes moved further than the main step alone moves them.
    main_only.opt.zero_grad()
    loss, _ = main_only.main_loss(x, y, 0)
    loss.backward()
    main_only.opt.step()
    assert not torch.equal(method.model.prototypes, main_only.model.prototypes)

    plain, x, y = _first_batch()
    plain.train_batch(x, y, 0)
    assert plain.opt_proto.state == {}


# -- 3. BatchNorm in the prototype pass -----------------------------------------------------------


def _method_at_task_1(*overrides):
    cfg = tiny_config(*overrides)
    stream = tiny_stream(cfg)
    method = build_method(cfg, stream.spec, CPU)
    norm = Normalize(stream.spec.mean, stream.spec.std, CPU)
    for k in (0, 1):
        task = stream.task(k)
        method.begin_task(task, norm)
        method.train_batch(norm(task.train.x[:16]), task.train.y[:16], k)
        if k == 0:
            method.end_task(task)
    return method


def _buffers(net):
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_b" in k}


@pytest.mark.parametrize("eval_bn", ["eval", "train"])
def test_prototype_bn_running_is_the_eval_mode_pass(eval_bn):
    """prototype_bn=running (default, whatever eval_bn says): the prototypes are normalised by the
    running statistics, which the pass leaves unchanged."""
    method = _method_at_task_1(f"schedule.eval_bn={eval_bn}")
    net = method.model
    before = _buffers(net)
    logits = method.prototype_logits(net, 1)
    net.eval()
    with torch.no_grad():
        expected = net(net.prototype_images(0), 0)
    net.train()
    assert torch.allclose(logits[0], expected, atol=1e-5)
    assert all(torch.equal(v, _buffers(net)[k]) for k, v in before.items())


def test_prototype_bn_batch_normalises_each_task_as_one_batch():
    """prototype_bn=batch (official): each task's C prototypes are one BatchNorm batch with its own
    statistics; the running statistics stay as they are; the teacher's targets are made the same way."""
    method = _method_at_task_1("model.prototype_bn=batch")
    net = method.model
    before = _buffers(net)
    logits = method.prototype_logits(net, 1)
    with batchnorm_mode(net, "batch"), torch.no_grad():
        alone = net(net.prototype_images(0), 0)
    net.eval()
    with torch.no_grad():
        running = net(net.prototype_images(0), 0)
    net.train()
    assert torch.allclose(logits[0], alone, atol=1e-5)
    assert not torch.allclose(logits[0], running, atol=1e-3)
    assert all(torch.equal(v, _buffers(net)[k]) for k, v in before.items())
    # Student == teacher at the start of a task: the teacher's batch-mode targets match exactly.
    fresh = _method_at_task_1("model.prototype_bn=batch")
    fresh.model.load_state_dict(fresh.teacher.state_dict())
    assert fresh.prototype_loss(1).item() == pytest.approx(0.0, abs=1e-6)


def test_official_code_variant_sets_every_official_choice():
    official = VARIANTS["official_code"]
    expected = {
        "method.pah.kl_direction": "student_teacher",
        "method.pah.old_task_reduction": "sum",
        "method.pah.proto_step_keeps_main_grad": True,
        "schedule.eval_bn": "train",
        "model.prototype_bn": "batch",
        "model.prototype_init": "semantic_crop",
        "model.prototype_input": "native",
        "data.augment": False,
    }
    assert {k: official[k] for k in expected} == expected
    cfg = load_config("configs/cifar100_pah.yaml", official)
    flat = cfg.flat()
    assert (
        flat["model.prototype_bn"] == "batch"
    )  # recorded with every result (params, results.json)
    assert load_config("configs/cifar100_pah.yaml").model.prototype_bn == "running"


# -- 4. pretrained backbones from a local file ------------------------------------------------------


def _resnet_state(path):
    from torchvision.models import resnet18

    torch.manual_seed(3)
    state = resnet18(weights=None).state_dict()
    torch.save(state, path)
    return state


@pytest.mark.parametrize("backbone", ["resnet18", "resnet18_cifar"])
def test_pretrained_path_loads_a_local_state_dict(tmp_path, backbone):
    state = _resnet_state(tmp_path / "r18.pth")
    cfg = load_config(
        None,
        [
            f"model.backbone={backbone}",
            "model.pretrained=true",
            f"model.pretrained_path={tmp_path / 'r18.pth'}",
        ],
    )
    net = PAHNet(cfg.model, n_tasks=2, classes_per_task=10, image_size=32)
    ours = net.backbone.net.state_dict()
    for k in ("layer1.0.conv1.weight", "layer4.1.bn2.running_var", "bn1.weight"):
        assert torch.equal(ours[k], state[k]), k
    same_stem = backbone == "resnet18"
    assert torch.equal(ours["conv1.weight"], state["conv1.weight"]) == same_stem


def test_pretrained_path_problems_are_clear_errors(tmp_path):
    def build(path):
        cfg = load_config(None, ["model.pretrained=true", f"model.pretrained_path={path}"])
        return PAHNet(cfg.model, n_tasks=2, classes_per_task=10, image_size=32)

    with pytest.raises(BackboneError, match=r"missing\.pth'?: no such file"):
        build(tmp_path / "missing.pth")
    state = _resnet_state(tmp_path / "r18.pth")
    del state["layer4.1.bn2.weight"]
    state["head.weight"] = torch.zeros(3)
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(BackboneError) as e:
        build(tmp_path / "bad.pth")
    text = str(e.value)
    assert "bad.pth" in text and "missing keys layer4.1.bn2.weight" in text
    assert "unexpected keys head.weight" in text
    assert "conv1.weight (64, 3, 3, 3) (expected (64, 3, 7, 7))" in text
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(BackboneError, match="holds a list, not a state dict"):
        build(tmp_path / "list.pth")
    with pytest.raises(ConfigError, match="only with model.pretrained=true"):
        load_config(None, [f"model.pretrained_path={tmp_path / 'r18.pth'}"])


class _Payload:
    def __reduce__(self):
        return (open, ("/tmp/pah-pwned-by-weights", "w"))


def test_pretrained_file_cannot_run_code(tmp_path):
    """A crafted weights file (a pickle that calls a function on load) is refused, nothing runs."""
    target = tmp_path / "evil.pth"
    with open(target, "wb") as f:
        pickle.dump({"conv1.weight": _Payload()}, f)
    cfg = load_config(None, ["model.pretrained=true", f"model.pretrained_path={target}"])
    import os

    if os.path.exists("/tmp/pah-pwned-by-weights"):
        os.remove("/tmp/pah-pwned-by-weights")
    with pytest.raises(BackboneError, match="could not be read as a tensors-only state dict"):
        PAHNet(cfg.model, n_tasks=2, classes_per_task=10, image_size=32)
    assert not os.path.exists("/tmp/pah-pwned-by-weights")
