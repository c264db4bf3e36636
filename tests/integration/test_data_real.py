"""The real datasets from $PAH_DATA_ROOT (see ../shared/data/README.md)."""

import shutil

import pytest
import torch

from pah_core.config import load_config
from pah_core.data import DataError, TaskStream, load_cifar100, load_tinyimagenet, sources


def test_cifar100_content(cifar):
    assert tuple(cifar.train_x.shape) == (50_000, 3, 32, 32) and cifar.train_x.dtype == torch.uint8
    assert tuple(cifar.test_x.shape) == (10_000, 3, 32, 32)
    assert cifar.num_classes == 100 and len(cifar.class_names) == 100
    assert torch.bincount(cifar.train_y, minlength=100).eq(500).all()
    assert torch.bincount(cifar.test_y, minlength=100).eq(100).all()
    mean, _ = cifar.train_mean_std()
    for got, want in zip(mean, (0.5071, 0.4865, 0.4409), strict=True):
        assert abs(got - want) < 0.001


def test_cifar100_ten_task_split(cifar):
    cfg = load_config(None, ["data.n_tasks=10"]).data
    stream = TaskStream(cifar, cfg, 1)
    seen: set[int] = set()
    for t in range(10):
        task = stream.task(t)
        assert len(task.classes) == 10 and seen.isdisjoint(task.classes)
        seen |= set(task.classes)
        assert task.classes == tuple(range(10 * t, 10 * t + 10))  # label order, as the paper
        assert task.train.y.unique().tolist() == list(range(10))
        assert len(task.train) == 10 * 499 and len(task.test) == 1000
        # The held-out prototype image of each class is not in the task's training set.
        assert set(task.prototype_index.tolist()).isdisjoint(task.train_index.tolist())
        assert cifar.train_y[task.prototype_index].tolist() == list(task.classes)
    assert seen == set(range(100))


def test_seeded_class_order_and_validation_split(cifar):
    cfg = load_config(
        None, ["data.class_order=random", "data.order_seed=3", "data.val_fraction=0.1"]
    ).data
    a, b = TaskStream(cifar, cfg, 1), TaskStream(cifar, cfg, 1)
    assert a.class_order == b.class_order and a.class_order != list(range(100))
    task = a.task(0)
    assert len(task.val) == 10 * round(0.1 * 499) and len(task.train) + len(task.val) == 10 * 499
    assert torch.equal(task.train.x, b.task(0).train.x)


def test_tinyimagenet_subset_and_cache(data_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_tinyimagenet(data_root, download=False, cache_dir=cache)
    assert tuple(first.train_x.shape) == (20_000, 3, 64, 64) and first.train_x.dtype == torch.uint8
    assert tuple(first.test_x.shape) == (10_000, 3, 64, 64)
    assert first.num_classes == 200
    assert torch.bincount(first.train_y, minlength=200).eq(100).all()
    assert len(list(cache.glob("tinyimagenet-*.pt"))) == 1

    # The second load reads the cache: decoding a JPEG now fails the test. (Checked by what runs,
    # not by a time bound, which a loaded CI machine broke: 2.7 s against 2.0.)
    def no_decoding(paths):
        raise AssertionError(f"decoded {len(paths)} JPEGs although the cache holds them")

    monkeypatch.setattr(sources, "_decode_jpegs", no_decoding)
    second = load_tinyimagenet(data_root, download=False, cache_dir=cache)
    assert torch.equal(first.train_x, second.train_x) and first.fingerprint == second.fingerprint
    # Grayscale JPEGs were converted to RGB: some images have three identical channels.
    x = first.train_x[:2000]
    gray = (x[:, 0] == x[:, 1]).flatten(1).all(1) & (x[:, 1] == x[:, 2]).flatten(1).all(1)
    assert int(gray.sum()) > 0


def test_truncated_pickle_is_reported(data_root, tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    shutil.copy(data_root / "cifar-100-python" / "meta", folder / "meta")
    shutil.copy(data_root / "cifar-100-python" / "test", folder / "test")
    raw = (data_root / "cifar-100-python" / "train").read_bytes()
    (folder / "train").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(
        DataError, match=r"train is truncated or corrupted.*unpack or download CIFAR-100 again"
    ):
        load_cifar100(tmp_path, download=False)


def test_n_tasks_not_dividing_classes_is_rejected(cifar):
    cfg = load_config(None).data
    cfg.n_tasks = 7  # bypasses load-time validation: the stream checks again
    with pytest.raises(DataError, match="does not divide"):
        TaskStream(cifar, cfg, 1)
