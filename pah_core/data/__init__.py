"""Data: sources decoded into uint8 tensors, class-incremental task streams, in-memory batching."""

from .loader import Augment, BatchLoader, Normalize, random_crop, random_flip
from .sources import (
    DataError,
    ImageSource,
    load_cifar100,
    load_tinyimagenet,
    make_synthetic,
    resolve_data_root,
)
from .stream import Split, StreamSpec, Task, TaskStream, load_source

__all__ = [
    "Augment",
    "BatchLoader",
    "DataError",
    "ImageSource",
    "Normalize",
    "Split",
    "StreamSpec",
    "Task",
    "TaskStream",
    "load_cifar100",
    "load_source",
    "load_tinyimagenet",
    "make_synthetic",
    "random_crop",
    "random_flip",
    "resolve_data_root",
]
