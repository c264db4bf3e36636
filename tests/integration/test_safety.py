"""Files other people can write never run code here, and no run is destroyed by accident (#14)."""

import pickle
import shutil

import numpy as np
import pytest

from pah_core.data import DataError, load_cifar100
from tests.test_safety import _RunsCode


def test_a_crafted_dataset_pickle_is_refused_and_runs_nothing(tmp_path, data_root):
    folder = tmp_path / "cifar-100-python"
    shutil.copytree(data_root / "cifar-100-python", folder)
    marker = tmp_path / "pwned"
    with open(folder / "test", "wb") as f:
        pickle.dump({"data": _RunsCode(marker), "fine_labels": [0]}, f)
    with pytest.raises(DataError, match=r"refused to load posix\.system"):
        load_cifar100(tmp_path, download=False)
    assert not marker.exists()
    # Plain arrays still load (what the real files hold).
    with open(folder / "test", "wb") as f:
        pickle.dump({"data": np.zeros((3, 3072), np.uint8), "fine_labels": [0, 1, 2]}, f)
    with pytest.raises(DataError, match=r"shape \(3, 3072\)"):
        load_cifar100(tmp_path, download=False)
