"""How a run computes (issue #28): run.precision, run.channels_last, run.compile as recorded,
validated options, each training close to fp32, with checkpoints that keep the uncompiled keys.

torch.compile traces with the aot_eager backend here (dynamo and autograd's graphs, no C++ build);
benchmarks/numerics.py measures inductor, the default."""

import pytest
import torch

import pah_core.numerics
from pah_core.config import ConfigError
from pah_core.data import Normalize
from pah_core.engine import Engine
from pah_core.methods import build_method
from pah_core.numerics import Numerics, NumericsError, bf16_supported
from pah_core.train import main as cli_main
from tests.helpers import TINY_CLI, tiny_config, tiny_stream

CPU = torch.device("cpu")
# Each option against fp32: how close its losses stay after two steps (bf16 keeps 8 bits of
# mantissa; the layout and the compiled graph change float rounding only).
OPTIONS = {
    "bf16": (["run.precision=bf16"], 3e-2),
    "channels_last": (["run.channels_last=true"], 1e-4),
    "compile": (["run.compile=default"], 1e-4),
}
needs_bf16 = pytest.mark.skipif(not bf16_supported(CPU), reason="this CPU has no native bf16")


@pytest.fixture(autouse=True)
def traced_compile(monkeypatch):
    monkeypatch.setattr(pah_core.numerics, "COMPILE_BACKEND", "aot_eager")


def two_steps(method_name: str, *overrides: str):
    """A method at task 2 (teacher and old prototypes in place), seeded alike, after two
    training steps on the same batches: (method, each step's losses)."""
    torch.manual_seed(0)
    cfg = tiny_config(f"method.name={method_name}", *overrides)
    stream = tiny_stream(cfg)
    method = build_method(cfg, stream.spec, CPU)
    norm = Normalize(stream.spec.mean, stream.spec.std, CPU, channels_last=cfg.run.channels_last)
    for j in range(2):
        method.begin_task(stream.task(j), norm)
    task = stream.task(1)
    losses = []
    for i in range(2):
        x, y = norm(task.train.x[16 * i : 16 * (i + 1)]), task.train.y[16 * i : 16 * (i + 1)]
        losses.append({k: float(v) for k, v in method.train_batch(x, y, 1).items()})
    return method, losses


@pytest.mark.parametrize("method_name", ["pah", "lwf"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_each_option_trains_close_to_fp32(option, method_name):
    if option == "bf16" and not bf16_supported(CPU):
        pytest.skip("this CPU has no native bf16")
    overrides, rtol = OPTIONS[option]
    _, fp32 = two_steps(method_name, "run.checkpoint=false")
    method, got = two_steps(method_name, *overrides)
    for a, b in zip(fp32, got, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.isfinite(torch.tensor(b[k])), (k, b[k])
            # The distillation terms are near 0 (the student one step from its teacher), where
            # rounding moves them by more than rtol of themselves: measured on the loss's scale.
            close = pytest.approx(a[k], rel=rtol, abs=rtol * abs(a["loss"]))
            assert b[k] == close, (k, a[k], b[k])
    teacher = method.teacher
    if option == "compile":  # the teacher's backbone too: a deep copy drops the compiled forward
        assert method.model.backbone._compiled_call_impl is not None
        assert teacher.backbone._compiled_call_impl is not None
    if option == "channels_last":
        conv = next(m for m in teacher.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("option", ["channels_last", "compile"])
def test_state_dicts_and_checkpoints_are_the_plain_models(option, tmp_path):
    """Same keys as fp32, and a checkpoint written under the option loads into a plain model and
    resumes a run under the option."""
    overrides, _ = OPTIONS[option]
    plain, _ = two_steps("pah")
    method, _ = two_steps("pah", *overrides)
    assert method.model.state_dict().keys() == plain.model.state_dict().keys()
    plain.load_state_dict(method.state_dict())
    mine = method.model.state_dict()
    assert all(torch.equal(v, mine[k]) for k, v in plain.model.state_dict().items())

    first = tiny_config(*overrides, "schedule.max_tasks=1", "schedule.epochs_per_task=1")
    Engine(first, tiny_stream(first), checkpoint_dir=tmp_path).run()
    cfg = tiny_config(*overrides, "schedule.max_tasks=2", "schedule.epochs_per_task=1")
    resumed = Engine(cfg, tiny_stream(cfg)).run(resume_from=tmp_path / "task_00")
    assert resumed["tasks_completed"] == 2 and resumed["avg_acc"] == resumed["avg_acc"]


@needs_bf16
def test_a_bf16_run_evaluates_under_autocast_and_records_its_numerics(tmp_path):
    cfg = tiny_config(
        "run.precision=bf16",
        "run.channels_last=true",
        "data.val_fraction=0.2",
        "schedule.max_tasks=2",
        "schedule.epochs_per_task=1",
        "run.checkpoint=false",
    )
    engine = Engine(cfg, tiny_stream(cfg))
    dtypes = set()
    engine.method.model.backbone.register_forward_hook(lambda m, a, out: dtypes.add(out.dtype))
    results = engine.run()
    assert torch.bfloat16 in dtypes and torch.float32 not in dtypes
    assert 0 <= results["avg_acc"] <= 1 and 0 <= results["val_avg_acc"] <= 1
    run = results["config"]["run"]  # what results.json, checkpoints and MLflow params record
    assert (run["precision"], run["channels_last"], run["compile"]) == ("bf16", True, None)
    assert cfg.flat()["run.precision"] == "bf16"


def test_bad_values_and_devices_are_clear_errors(monkeypatch, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"run\.precision = 'fp16' is not allowed: one of"):
        tiny_config("run.precision=fp16")
    with pytest.raises(ConfigError, match=r"run\.compile = 'fast' is not allowed: one of"):
        tiny_config("run.compile=fast")
    cfg = tiny_config("run.compile=reduce-overhead")
    with pytest.raises(NumericsError, match="captures CUDA graphs, and this run is on cpu"):
        Numerics.of(cfg.run, CPU)
    # bf16 where the device has none: refused when the run starts, before any data is read.
    monkeypatch.setattr(pah_core.numerics, "bf16_supported", lambda device: False)
    with pytest.raises(NumericsError, match="cpu has no native bfloat16"):
        Engine(tiny_config("run.precision=bf16"), tiny_stream(tiny_config()))
    code = cli_main([*TINY_CLI, "run.precision=bf16", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "use run.precision=fp32" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_the_defaults_change_nothing():
    numerics = Numerics.of(tiny_config().run, CPU)
    assert numerics == Numerics(CPU, "fp32", False, None)
    assert not torch.is_autocast_enabled("cpu")
    with numerics.autocast():
        assert not torch.is_autocast_enabled("cpu")


def test_checkpoints_from_before_the_options_resume_as_fp32():
    """Checkpoints and runs recorded before these keys ran fp32, plain layout, uncompiled
    (KEYS_ADDED): they resume under the defaults, and another setting is a clear refusal."""
    from pah_core.checkpoints import config_differences

    new = ("run.precision", "run.channels_last", "run.compile")
    old = {k: v for k, v in tiny_config().flat().items() if k not in new}
    assert config_differences(old, tiny_config().flat()) == []
    assert config_differences(old, tiny_config("run.channels_last=true").flat()) == [
        "run.channels_last: False (checkpoint) vs True (now)"
    ]
