"""The bad-input survey of issue #14 as a table: every bad input to an entry point ends in one clear
message (naming the input and the fix) and exit code 2, before anything is written; no traceback,
nothing silently accepted."""

import pytest

from pah_core.train import main as train_main

BASE = [
    "--config",
    "configs/smoke.yaml",
    "schedule.max_tasks=1",
    "data.train_per_class=5",
    "data.test_per_class=2",
]

# (overrides or flags, message fragment)
TRAIN_CASES = [
    (["run.device=tpu"], "run.device = 'tpu' is not allowed: auto, cpu, cuda or cuda:N"),
    (["run.device=cuda:x"], "run.device = 'cuda:x' is not allowed"),
    (["run.seed=-1"], "run.seed = -1 is not allowed: an integer from 0 to 2**32 - 1"),
    (["run.seed=4294967296"], "run.seed = 4294967296 is not allowed"),
    (["optim.lr_backbone=inf"], "optim.lr_backbone = inf is not allowed: a finite number"),
    (["optim.lr_hypernet=nan"], "optim.lr_hypernet = nan is not allowed: a finite number"),
    (["method.pah.temperature=inf"], "method.pah.temperature = inf is not allowed: a finite"),
    (["method.lwf.temperature=.inf"], "method.lwf.temperature = inf is not allowed: a finite"),
    (["method.ewc.lambda_ewc=-.inf"], "method.ewc.lambda_ewc = -inf is not allowed: a finite"),
    (["optim.weight_decay=-1"], "optim.weight_decay = -1.0 is not allowed"),
    (["schedule.max_tasks=20"], "schedule.max_tasks = 20 is not allowed: an integer from 1 to"),
    (["data.test_per_class=101"], "data.test_per_class = 101 is not allowed: at most 100"),
    (["data.train_per_class=501"], "data.train_per_class = 501 is not allowed: at most 500"),
    (["method.name="], "method.name = '' is not allowed: one of"),
    (["data.n_tasks=0"], "data.n_tasks = 0 is not allowed"),
    (["data.n_tasks=7"], "a divisor of cifar100's 100 classes"),
    (["model.hyper_widht=4"], "did you mean 'model.hyper_width'"),
    (["model.hyper_width=1e9"], "model.hyper_width = '1e9' is not allowed: an integer"),
    (["model.prototype_size=40"], "model.prototype_size = 40 is not allowed"),
    (["model.pretrained_path=/x.pth"], "only with model.pretrained=true"),
    (["optim.batch_size=0"], "optim.batch_size = 0 is not allowed"),
    (["model.hyper_width"], "is not of the form key=value"),
]


@pytest.mark.parametrize(("args", "message"), TRAIN_CASES, ids=[c[0][0] for c in TRAIN_CASES])
def test_train_cli_bad_input(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code = train_main(["--out", str(out), *BASE, *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()  # nothing written


def test_cuda_without_a_gpu_is_a_message(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code = train_main(["--out", str(tmp_path / "r"), *BASE, "run.device=cuda"])
    err = capsys.readouterr().err
    assert code == 1 and "CUDA is not available here: use run.device=auto or cpu" in err


def test_yaml_that_is_not_a_mapping(tmp_path, capsys):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    code = train_main(["--out", str(tmp_path / "r"), "--config", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "list.yaml" in err and "must be a mapping" in err
