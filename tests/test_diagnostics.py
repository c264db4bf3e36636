"""PAH's hypernetwork diagnostics and the prototype pictures (issue #17 points 3-4)."""

import json

import numpy as np
import pytest
import torch

from pah_core import figures
from pah_core.data import Normalize
from pah_core.engine import Engine
from pah_core.methods import build_method
from tests.helpers import tiny_config, tiny_stream

CPU = torch.device("cpu")


def _pah(*overrides):
    cfg = tiny_config(*overrides)
    stream = tiny_stream(cfg)
    method = build_method(cfg, stream.spec, CPU)
    return method, stream, Normalize(stream.spec.mean, stream.spec.std, CPU)


def _train(method, norm, task, steps=3):
    for _ in range(steps):
        method.train_batch(norm(task.train.x[:16]), task.train.y[:16], task.task_id)


def test_drift_is_zero_for_an_unchanged_model():
    method, stream, norm = _pah()
    task = stream.task(0)
    method.begin_task(task, norm)
    method.end_task(task)
    d = method.diagnostics(0)
    assert d["head_drift"] == [0.0] and d["prototype_drift_task_end"] == [0.0]
    assert d["prototype_drift_init"] == [0.0]  # not trained since its init
    assert d["head_norm"][0] > 0


def test_drift_is_positive_after_training_per_old_task():
    method, stream, norm = _pah()
    for t in range(3):
        task = stream.task(t)
        method.begin_task(task, norm)
        _train(method, norm, task)
        method.end_task(task)
        d = method.diagnostics(t)
        assert all(len(v) == t + 1 for v in d.values())
        assert d["head_drift"][t] == pytest.approx(0.0, abs=1e-5)  # its own reference
        assert d["prototype_drift_init"][t] > 0  # its prototypes trained during its task
        # Old tasks' heads and prototypes moved while later tasks trained (L_sm, L_sp, AdamW).
        assert all(v > 0 for v in d["head_drift"][:t])
        assert all(v > 0 for v in d["prototype_drift_task_end"][:t])
    # Hand-checked for task 0 after task 2: ||W_0(now) - W_0(end of 0)|| / ||W_0(end of 0)||.
    w_now = method.model.heads([0])[0].detach()
    w_then = method.snapshots["head_end"][0]
    assert d["head_drift"][0] == pytest.approx(float((w_now - w_then).norm() / w_then.norm()))


def test_engine_records_diagnostics_per_task_and_resumes_them(tmp_path):
    cfg = tiny_config("schedule.epochs_per_task=1")
    full = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path / "a").run()
    diag = full["diagnostics"]
    assert [d["task"] for d in diag] == [0, 1, 2]
    assert [len(d["head_drift"]) for d in diag] == [1, 2, 3]
    assert set(diag[2]["losses"]) >= {"loss_ce", "loss_sm", "loss_sp", "loss"}
    json.dumps(diag)  # plain data: results.json and weights_only checkpoints hold it
    first = tiny_config("schedule.epochs_per_task=1", "schedule.max_tasks=1")
    Engine(first, tiny_stream(first), checkpoint_dir=tmp_path / "b").run()
    resumed = Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path / "b").run(
        resume_from=tmp_path / "b" / "task_00"
    )
    assert resumed["diagnostics"] == diag


def test_prototype_grid_shows_the_model_tensors():
    method, stream, norm = _pah("model.prototype_size=5")
    for t in range(2):
        task = stream.task(t)
        method.begin_task(task, norm)
        _train(method, norm, task)
        method.end_task(task)
    pics = method.pictures()
    init, learned = pics["prototypes_initial"].numpy(), pics["prototypes_learned"].numpy()
    img = figures.prototype_grid(init, learned, 2, pics["mean"], pics["std"])
    c, s = stream.spec.classes_per_task, 5
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    non_white = 0
    for panel, protos in enumerate((init, learned)):
        for t in range(2):
            for k in range(c):
                y, x = figures.cell_origin(t, k, panel, c, s)
                tile = img[y : y + s * figures.SCALE, x : x + s * figures.SCALE]
                # Each screen pixel is the prototype's own value, undone normalisation, 0..255.
                value = protos[t, k, 0] * np.mean(pics["std"]) + np.mean(pics["mean"])
                want = np.round(np.clip(value, 0, 1) * 255).astype(np.uint8)
                want = want.repeat(figures.SCALE, 0).repeat(figures.SCALE, 1)
                assert np.array_equal(tile[..., 0], want), (panel, t, k)
                non_white += 1
    assert non_white == 2 * 2 * c
    assert not np.array_equal(init[:2], learned[:2])  # the two panels differ after training
