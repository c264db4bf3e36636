"""Small real objects for unit tests: a synthetic stream and a small CNN."""

from pah_core.config import load_config
from pah_core.data import TaskStream, load_source


def tiny_config(*overrides: str):
    return load_config(
        None,
        [
            "data.dataset=synthetic",
            "data.n_tasks=3",
            "data.classes_per_task=4",
            "model.backbone=small_cnn",
            "model.prototype_size=6",
            "model.hyper_width=8",
            "optim.batch_size=16",
            "schedule.epochs_per_task=2",
            "run.progress=false",
            *overrides,
        ],
    )


def tiny_stream(cfg):
    return TaskStream(load_source(cfg.data), cfg.data)
