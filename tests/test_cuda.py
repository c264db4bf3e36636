"""The CUDA path: every method trains and evaluates on a GPU, checkpoints move between a GPU and
a CPU in both directions, evaluation leaves BatchNorm's statistics alone there too, and a sweep trial
trains on the GPU Ray gives it, with Ray Train and without.

Skipped where no GPU is visible (CI and the development machines have none); run them on a GPU
machine with ``pytest tests/test_cuda.py tests/integration/test_cuda.py`` (benchmarks/cuda_check.sh does, with the real runs).
"""

import numpy as np
import pytest
import torch

from pah_core.device import DeviceError, pick_device
from pah_core.engine import Engine
from pah_core.methods import registered_methods
from pah_core.models.batchnorm import batchnorm_mode
from tests.helpers import tiny_config, tiny_stream

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("method", sorted(registered_methods()))
def test_every_method_trains_and_evaluates_on_cuda(method, tmp_path):
    cfg = tiny_config(
        f"method.name={method}",
        "run.device=cuda",
        "schedule.eval_future=true",
        "schedule.task_inference=max_softmax",
    )
    engine = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path)
    assert engine.device.type == "cuda"
    results = engine.run()
    assert results["status"] == "finished" and np.isfinite(results["avg_acc"])
    # Each test image of each seen task counted once per evaluation, as on the CPU.
    assert all(results["total"][i][j] == 40 for i in range(3) for j in range(i + 1))
    # Colour blobs are learnable within two epochs: well above the 25% chance of 4 classes.
    assert results["avg_acc"] > 0.5


def test_a_gpu_checkpoint_resumes_on_the_cpu_and_back(tmp_path):
    gpu_first = tiny_config("run.device=cuda", "schedule.max_tasks=1")
    Engine(gpu_first, tiny_stream(gpu_first), checkpoint_dir=tmp_path / "a").run()
    cpu_rest = tiny_config("run.device=cpu", "schedule.max_tasks=2")
    r = Engine(cpu_rest, tiny_stream(cpu_rest), checkpoint_dir=tmp_path / "a").run(
        resume_from=tmp_path / "a" / "task_00"
    )
    assert r["tasks_completed"] == 2
    gpu_last = tiny_config("run.device=cuda")
    r = Engine(gpu_last, tiny_stream(gpu_last), checkpoint_dir=tmp_path / "a").run(
        resume_from=tmp_path / "a" / "task_01"
    )
    assert r["tasks_completed"] == 3 and np.isfinite(r["avg_acc"])


def test_gpu_and_cpu_evaluate_the_same_weights_alike(tmp_path):
    """The same checkpoint evaluated on both devices: the same predictions up to float rounding."""
    cfg = tiny_config("run.device=cuda", "schedule.max_tasks=2")
    gpu = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path)
    gpu.run()
    on_cpu = tiny_config("run.device=cpu", "schedule.max_tasks=2")
    cpu = Engine(on_cpu, tiny_stream(on_cpu))
    cpu.load_checkpoint(tmp_path / "task_01")
    gpu_counts, cpu_counts = gpu.evaluator.seen(1), cpu.evaluator.seen(1)
    assert (gpu_counts[:, 1] == 40).all() and (cpu_counts[:, 1] == 40).all()
    assert np.abs(gpu_counts - cpu_counts).max() <= 1  # at most one image of 40 flips


@pytest.mark.parametrize("eval_bn", ["eval", "train"])
def test_evaluation_leaves_batchnorm_statistics_alone_on_cuda(eval_bn):
    cfg = tiny_config("run.device=cuda", "model.backbone=resnet18", f"schedule.eval_bn={eval_bn}")
    engine = Engine(cfg, tiny_stream(cfg))
    engine.method.begin_task(engine.stream.task(0), engine.normalize)
    before = {k: v.clone() for k, v in engine.method.model.state_dict().items() if "running" in k}
    engine.evaluator.seen(0)
    after = engine.method.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with batchnorm_mode(engine.method.model, "batch"):
        assert any(m.training for m in engine.method.model.modules())


def test_a_gpu_index_that_does_not_exist_is_a_message():
    n = torch.cuda.device_count()
    with pytest.raises(DeviceError, match=f"this machine has {n} GPU"):
        pick_device(f"cuda:{n}")
