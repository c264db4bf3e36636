"""Image sources: the whole dataset decoded once into uint8 tensors (N, 3, H, W) in memory.

CIFAR-100 is read from the standard ``cifar-100-python/`` pickles and Tiny-ImageNet-200 from the
standard ``tiny-imagenet-200/`` folder. Content is validated (shapes, class counts, per-class
counts) rather than checked against the official archives' md5, so rebuilt offline copies load too.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


class DataError(RuntimeError):
    """Data that is missing, truncated or malformed; the message says where and how to fix it."""


@dataclass(frozen=True)
class ImageSource:
    name: str
    train_x: torch.Tensor  # uint8 (N, 3, H, W)
    train_y: torch.Tensor  # int64 (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    class_names: tuple[str, ...]
    # Normalisation of the official code for this dataset (mean, std per channel).
    official_mean: tuple[float, float, float]
    official_std: tuple[float, float, float]
    fingerprint: str  # content hash of the decoded arrays, for provenance

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    def train_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        x = self.train_x.to(torch.float64).div_(255.0)
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3))
        return tuple(mean.tolist()), tuple(std.tolist())


def content_fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def resolve_data_root(root: str | os.PathLike | None) -> Path:
    """--data-root (config ``data.root``), else $PAH_DATA_ROOT, else ~/.cache/pah/data."""
    if root:
        return Path(root).expanduser().resolve()
    env = os.environ.get("PAH_DATA_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / ".cache" / "pah" / "data").resolve()


def _missing_message(what: str, folder: Path, root: Path, reason: str) -> str:
    return (
        f"{what} not found: expected {folder} ({reason}). Provide it in one of these ways: "
        f"put the unpacked '{folder.name}/' folder under {root}; point --data-root or $PAH_DATA_ROOT "
        f"at a folder that holds it; or allow the download (data.download=true) on a machine with "
        f"network access."
    )


def _download(
    url: str, root: Path, filename: str, md5: str | None, what: str, folder: Path
) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        root.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(url, download_root=str(root), filename=filename, md5=md5)
    except Exception as e:  # noqa: BLE001 - any network or disk failure gets the same advice
        raise DataError(
            _missing_message(
                what, folder, root, f"the download from {url} failed: {type(e).__name__}: {e}"
            )
        ) from e


# ---------------------------------------------------------------------------------------------
# CIFAR-100

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"


# What CIFAR-100's pickles legitimately reference: numpy arrays and their dtypes. Anything else (a
# function to call, a class to build) means the file is not CIFAR-100, and is refused unloaded.
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _CIFAR_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused to load {module}.{name}: a CIFAR-100 file holds only arrays, lists and strings"
        )


def safe_unpickle(f) -> Any:
    """Unpickle a dataset file without running code: only numpy arrays and plain data."""
    return _DataOnlyUnpickler(f, encoding="latin1").load()


def _read_cifar_pickle(path: Path, n: int, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    fix = f"delete {path.parent} and unpack or download CIFAR-100 again"
    if not path.is_file():
        raise DataError(f"CIFAR-100 file {path} is missing: {fix}")
    try:
        with open(path, "rb") as f:
            entry = safe_unpickle(f)
    except (pickle.UnpicklingError, EOFError, ValueError, OSError, MemoryError) as e:
        raise DataError(
            f"CIFAR-100 file {path} is truncated or corrupted ({type(e).__name__}: {e}): {fix}"
        ) from e
    if not isinstance(entry, dict) or "data" not in entry or "fine_labels" not in entry:
        raise DataError(f"CIFAR-100 file {path} has no 'data'/'fine_labels' entries: {fix}")
    data = torch.as_tensor(entry["data"])
    labels = torch.as_tensor(entry["fine_labels"], dtype=torch.int64)
    if data.dtype != torch.uint8 or tuple(data.shape) != (n, 3072):
        raise DataError(
            f"CIFAR-100 file {path} holds data of shape {tuple(data.shape)} and dtype {data.dtype}, "
            f"expected ({n}, 3072) uint8: {fix}"
        )
    counts = torch.bincount(labels, minlength=100)
    if labels.shape != (n,) or counts.numel() != 100 or not bool((counts == per_class).all()):
        raise DataError(
            f"CIFAR-100 file {path} does not have {per_class} images for each of 100 classes "
            f"(counts range {int(counts.min())}..{int(counts.max())}): {fix}"
        )
    return data.view(n, 3, 32, 32).contiguous(), labels


def load_cifar100(root: Path, download: bool = True, url: str = CIFAR100_URL) -> ImageSource:
    folder = root / "cifar-100-python"
    if not folder.is_dir():
        if not download:
            raise DataError(
                _missing_message("CIFAR-100", folder, root, "download is off (data.download=false)")
            )
        _download(url, root, "cifar-100-python.tar.gz", CIFAR100_MD5, "CIFAR-100", folder)
    train_x, train_y = _read_cifar_pickle(folder / "train", 50_000, 500)
    test_x, test_y = _read_cifar_pickle(folder / "test", 10_000, 100)
    names: tuple[str, ...] = tuple(str(i) for i in range(100))
    meta = folder / "meta"
    if meta.is_file():
        try:
            with open(meta, "rb") as f:
                names = tuple(safe_unpickle(f)["fine_label_names"])
        except Exception as e:  # noqa: BLE001
            raise DataError(
                f"CIFAR-100 file {meta} is corrupted ({e}): delete {folder} and unpack again"
            ) from e
    return ImageSource(
        name="cifar100",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=100,
        class_names=names,
        official_mean=(0.5, 0.5, 0.5),
        official_std=(0.5, 0.5, 0.5),
        fingerprint=content_fingerprint(train_x, train_y, test_x, test_y),
    )


# ---------------------------------------------------------------------------------------------
# Tiny-ImageNet-200

TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _decode_jpegs(paths: list[Path], progress: Callable[[int], None] | None = None) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    out = torch.empty((len(paths), 3, 64, 64), dtype=torch.uint8)
    chunk = 512
    for start in range(0, len(paths), chunk):
        group = paths[start : start + chunk]
        raw = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in group]
        try:
            with warnings.catch_warnings():
                # torchvision 0.29 deprecates its decoders in favour of torchcodec; they still work and
                # are the fastest batched JPEG decoder available without another dependency.
                warnings.simplefilter("ignore", DeprecationWarning)
                images = decode_jpeg(raw, mode=ImageReadMode.RGB)  # grayscale JPEGs become RGB here
        except RuntimeError as e:
            raise DataError(
                f"a Tiny-ImageNet JPEG in {group[0].parent} could not be decoded: {e}"
            ) from e
        for i, (img, p) in enumerate(zip(images, group, strict=True)):
            if tuple(img.shape) != (3, 64, 64):
                raise DataError(
                    f"Tiny-ImageNet image {p} has shape {tuple(img.shape)}, expected (3, 64, 64)"
                )
            out[start + i] = img
        if progress:
            progress(len(group))
    return out


def _tiny_listing(folder: Path) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    wnids_file = folder / "wnids.txt"
    if not wnids_file.is_file():
        raise DataError(
            f"Tiny-ImageNet file {wnids_file} is missing: unpack or download tiny-imagenet-200 again"
        )
    wnids = [w.strip() for w in wnids_file.read_text().split() if w.strip()]
    if len(wnids) != 200:
        raise DataError(f"{wnids_file} lists {len(wnids)} classes, expected 200")
    index = {w: i for i, w in enumerate(wnids)}
    train: list[tuple[Path, int]] = []
    for w in wnids:
        images = folder / "train" / w / "images"
        if not images.is_dir():
            raise DataError(f"Tiny-ImageNet training folder {images} is missing")
        files = sorted(images.glob("*.JPEG"), key=lambda p: p.name)
        if not files:
            raise DataError(f"Tiny-ImageNet training folder {images} holds no JPEG files")
        train.extend((p, index[w]) for p in files)
    ann = folder / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise DataError(f"Tiny-ImageNet file {ann} is missing")
    val: list[tuple[Path, int]] = []
    for line in ann.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        if parts[1] not in index:
            raise DataError(f"{ann} names class {parts[1]!r}, which is not in wnids.txt")
        val.append((folder / "val" / "images" / parts[0], index[parts[1]]))
    val.sort(
        key=lambda pl: int(pl[0].stem.split("_")[-1]) if pl[0].stem.split("_")[-1].isdigit() else 0
    )
    return wnids, train, val


def _listing_key(folder: Path, train: list[tuple[Path, int]], val: list[tuple[Path, int]]) -> str:
    """Cheap cache key: names, sizes and mtimes of every source file (no pixel reads)."""
    h = hashlib.sha256()
    for p, label in train + val:
        st = p.stat()
        h.update(f"{p.relative_to(folder)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def load_tinyimagenet(
    root: Path, download: bool = True, cache_dir: Path | None = None, url: str = TINY_URL
) -> ImageSource:
    folder = root / "tiny-imagenet-200"
    if not folder.is_dir():
        if not download:
            raise DataError(
                _missing_message(
                    "Tiny-ImageNet-200", folder, root, "download is off (data.download=false)"
                )
            )
        _download(url, root, "tiny-imagenet-200.zip", TINY_MD5, "Tiny-ImageNet-200", folder)
    wnids, train, val = _tiny_listing(folder)
    key = _listing_key(folder, train, val)
    cache_file = (cache_dir or (root / ".pah-cache")) / f"tinyimagenet-{key}.pt"
    arrays = _tiny_arrays(cache_file, train, val)
    words = {}
    words_file = folder / "words.txt"
    if words_file.is_file():
        for line in words_file.read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid] = text.split(",")[0].strip()
    test_counts = torch.bincount(arrays["test_y"], minlength=200)
    if not bool((test_counts == 50).all()):
        raise DataError(
            f"Tiny-ImageNet val set in {folder} does not have 50 images for each of 200 classes"
        )
    return ImageSource(
        name="tinyimagenet",
        train_x=arrays["train_x"],
        train_y=arrays["train_y"],
        test_x=arrays["test_x"],
        test_y=arrays["test_y"],
        num_classes=200,
        class_names=tuple(words.get(w, w) for w in wnids),
        official_mean=IMAGENET_MEAN,
        official_std=IMAGENET_STD,
        fingerprint=str(arrays["fingerprint"]),
    )


def _tiny_arrays(cache_file: Path, train: list, val: list) -> dict:
    """The decoded images and labels: from the cache (tensors only) when it reads, else decoded
    and cached, atomically, where the folder is writable."""
    if cache_file.is_file():
        try:
            return torch.load(cache_file, weights_only=True)
        except Exception:  # noqa: BLE001 - a broken cache is rebuilt, never trusted
            pass
    t0 = time.perf_counter()
    arrays = {
        "train_x": _decode_jpegs([p for p, _ in train]),
        "train_y": torch.tensor([y for _, y in train], dtype=torch.int64),
        "test_x": _decode_jpegs([p for p, _ in val]),
        "test_y": torch.tensor([y for _, y in val], dtype=torch.int64),
    }
    arrays["fingerprint"] = content_fingerprint(
        arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"]
    )
    arrays["decode_seconds"] = time.perf_counter() - t0
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        torch.save(arrays, tmp)
        os.replace(tmp, cache_file)  # atomic: concurrent trials never read half a file
    except OSError:
        pass  # a read-only data root still works, only slower on the next load
    return arrays


def is_cached_tinyimagenet(root: Path, cache_dir: Path | None = None) -> bool:
    folder = root / "tiny-imagenet-200"
    _, train, val = _tiny_listing(folder)
    return (
        (cache_dir or root / ".pah-cache") / f"tinyimagenet-{_listing_key(folder, train, val)}.pt"
    ).is_file()


# ---------------------------------------------------------------------------------------------
# Synthetic (unit tests only)


def make_synthetic(
    num_classes: int = 10,
    train_per_class: int = 20,
    test_per_class: int = 10,
    size: int = 16,
    seed: int = 0,
) -> ImageSource:
    """Class-dependent colour blobs: learnable in a few steps, for fast unit tests only."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.rand(num_classes, 3, 1, 1, generator=g)

    def draw(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(num_classes).repeat_interleave(per_class)
        noise = torch.rand(len(y), 3, size, size, generator=g) * 0.5
        x = (colours[y] * 0.5 + noise).mul(255).clamp(0, 255).to(torch.uint8)
        return x, y

    train_x, train_y = draw(train_per_class)
    test_x, test_y = draw(test_per_class)
    return ImageSource(
        name="synthetic",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=num_classes,
        class_names=tuple(f"class{i}" for i in range(num_classes)),
        official_mean=(0.5, 0.5, 0.5),
        official_std=(0.5, 0.5, 0.5),
        fingerprint=content_fingerprint(train_x, train_y, test_x, test_y),
    )
