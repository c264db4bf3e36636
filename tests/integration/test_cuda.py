"""The CUDA path: every method trains and evaluates on a GPU, checkpoints move between a GPU and
a CPU in both directions, evaluation leaves BatchNorm's statistics alone there too, and a sweep trial
trains on the GPU Ray gives it, with Ray Train and without.

Skipped where no GPU is visible (CI and the development machines have none); run them on a GPU
machine with ``pytest tests/test_cuda.py tests/integration/test_cuda.py`` (benchmarks/cuda_check.sh does, with the real runs).
"""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("ray_train", ["auto", "always"])
def test_a_sweep_trial_trains_on_its_gpu(ray_cluster, tmp_path, ray_train):
    """A one-GPU trial, in Tune's trial process (auto) and under Ray Train (always): the engine
    runs on the GPU Ray gave the trial, and the MLflow run says so."""
    from mlflow.tracking import MlflowClient

    from pah_sweep.search import main
    from tests.helpers import tiny_cifar

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    flags = tiny_cifar(
        data__train_per_class=100, schedule__max_tasks=1, schedule__epochs_per_task=1
    )
    argv = ["--storage", str(tmp_path / "ray"), "--mlflow-uri", uri, "--name", "gpu"]
    argv += ["--num-samples", "1", "--gpus-per-worker", "1", "--ray-train", ray_train, *flags]
    assert main("cifar100", argv) == 0
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("pah-cifar100")
    (run,) = [
        r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags
    ]
    assert run.info.status == "FINISHED" and run.data.metrics["tasks_done"] == 1
    assert run.data.params["run.device"].startswith("cuda")
