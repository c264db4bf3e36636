import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets: `make test` and .ci/run unpack them and export PAH_DATA_ROOT."""
    root = os.environ.get("PAH_DATA_ROOT")
    if not root or not (Path(root) / "cifar-100-python").is_dir():
        pytest.fail(
            "the real datasets are needed: run the tests through `make test` (it unpacks ../shared/data), "
            "or export PAH_DATA_ROOT=<folder holding cifar-100-python/ and tiny-imagenet-200/>"
        )
    return Path(root)


@pytest.fixture(scope="session")
def cifar(data_root):
    from pah_core.data import load_cifar100

    return load_cifar100(data_root, download=False)
