import copy
import json
import pickle
from pathlib import Path

import pytest

from pah_core.config import Config, ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["cifar100_pah.yaml", "tinyimagenet_pah.yaml", "smoke.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert isinstance(cfg, Config)
    assert cfg.method.name == "pah"


def test_paper_defaults():
    cfg = load_config(CONFIGS / "cifar100_pah.yaml")
    p = cfg.method.pah
    assert (p.temperature, p.lambda_sm, p.lambda_sp) == (2.0, 0.5, 1.0)
    assert (cfg.optim.lr_backbone, cfg.optim.lr_hypernet, cfg.optim.weight_decay) == (
        1e-4,
        1e-3,
        0.01,
    )
    assert (cfg.model.hyper_width, cfg.model.hyper_depth, cfg.model.prototype_size) == (16, 1, 10)


def test_overrides_are_typed():
    cfg = load_config(
        None,
        [
            "model.hyper_width=64",
            "optim.lr_backbone=1e-3",
            "data.augment=true",
            "data.root=null",
            "method.pah.kl_direction=student_teacher",
        ],
    )
    assert cfg.model.hyper_width == 64
    assert cfg.optim.lr_backbone == pytest.approx(1e-3)
    assert cfg.data.augment is True and cfg.data.root is None
    assert cfg.method.pah.kl_direction == "student_teacher"


@pytest.mark.parametrize(
    "override, words",
    [
        ("optim.batch_size=-4", ["optim.batch_size", "-4", ">= 1"]),
        ("data.dataset=mnist", ["data.dataset", "mnist", "cifar100", "tinyimagenet"]),
        ("data.n_tasks=7", ["data.n_tasks", "7", "divisor", "100"]),
        ("model.hyper_width=0", ["model.hyper_width", "0", "> 0"]),
        ("method.pah.temperature=0", ["method.pah.temperature", "> 0"]),
        ("method.pah.lambda_sm=-0.5", ["method.pah.lambda_sm", "-0.5", ">= 0"]),
        ("method.pah.lambda_sp=-1", ["method.pah.lambda_sp", ">= 0"]),
        ("model.prototype_size=40", ["model.prototype_size", "40", "32x32"]),
        ("method.name=nosuch", ["method.name", "nosuch", "pah"]),
        ("model.hyper_width=wide", ["model.hyper_width", "wide", "integer"]),
        (
            "method.pah.kl_direction=sideways",
            ["kl_direction", "teacher_student", "student_teacher"],
        ),
    ],
)
def test_bad_values_name_field_value_and_allowed(override, words):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_unknown_key_suggests_the_near_one(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'model.hyper_widht'; did you mean 'model.hyper_width'",
    ):
        load_config(None, ["model.hyper_widht=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(
        ConfigError, match=r"unknown config key 'optim.learning_rate'.*Allowed keys under 'optim'"
    ):
        load_config(bad)


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["model.hyper_width"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")


def test_classes_per_task_subset_allowed_and_bounded():
    cfg = load_config(None, ["data.n_tasks=2", "data.classes_per_task=5"])
    assert cfg.data.classes_per_task == 5
    with pytest.raises(ConfigError, match="at most 10"):
        load_config(None, ["data.n_tasks=10", "data.classes_per_task=11"])


def test_default_flat_config_is_pinned():
    """MLflow params and checkpoints' config comparison read ``Config.flat()``: the default config's
    keys, values and types must not move when the tree is refactored (pinned from main at 2c3991f;
    schedule.task_inference and schedule.eval_future added since, with #15; data.split_seed with #24;
    since #25 a run records its own method's options only; run.precision, run.channels_last and
    run.compile with #28, and schedule.eval_future_tasks; data.kept_order with #29)."""
    pinned = json.loads((Path(__file__).parent / "default_config_flat.json").read_text())
    flat = Config().flat()
    assert flat == pinned
    assert {k: type(v) for k, v in flat.items()} == {k: type(v) for k, v in pinned.items()}
    assert load_config(None).flat() == pinned


def test_tasks_to_run_is_n_tasks_cut_at_max_tasks():
    assert load_config(None).tasks_to_run == 10
    assert load_config(None, ["schedule.max_tasks=3"]).tasks_to_run == 3
    assert load_config(None, ["schedule.max_tasks=10"]).tasks_to_run == 10
    with pytest.raises(ConfigError, match="schedule.max_tasks = 20 is not allowed"):
        load_config(None, ["schedule.max_tasks=20"])  # more than exist: an error, not a cap


def test_config_pickles_and_compares_equal():
    cfg = load_config(None, ["method.name=lwf", "method.lwf.temperature=3"])
    assert pickle.loads(pickle.dumps(cfg)) == cfg == copy.deepcopy(cfg)
    assert cfg != load_config(None, ["method.name=lwf"])
