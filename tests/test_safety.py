"""Files other people can write never run code here, and no run is destroyed by accident (#14)."""

import json
import os

import pytest
import torch

from pah_core.checkpoints import CheckpointError
from pah_core.engine import Engine
from pah_core.train import main as cli_main
from tests.helpers import TINY_CLI, tiny_config, tiny_stream


class _RunsCode:
    """Pickles to a call of os.system: loading it with plain pickle would run the command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _checkpoint(tmp_path):
    cfg = tiny_config("schedule.max_tasks=1")
    Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path / "ck").run()
    return cfg, tmp_path / "ck" / "task_00" / "state.pt"


def test_checkpoints_are_not_world_readable(tmp_path):
    _, real = _checkpoint(tmp_path)
    assert real.stat().st_mode & 0o077 == 0
    assert real.parent.stat().st_mode & 0o077 == 0


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    cfg, real = _checkpoint(tmp_path)
    marker = tmp_path / "pwned"
    payload = torch.load(real, weights_only=True)
    payload["method_state"]["extra"] = _RunsCode(marker)
    torch.save(payload, real)
    engine = Engine(cfg, tiny_stream(cfg))
    with pytest.raises(CheckpointError, match="refused: it holds objects other than tensors"):
        engine.load_checkpoint(real.parent)
    assert not marker.exists()


def test_checkpoints_of_another_format_are_refused(tmp_path):
    cfg, real = _checkpoint(tmp_path)
    payload = torch.load(real, weights_only=True)
    for old in (1, 2):  # 2: before the validation counts
        payload["format"] = old
        torch.save(payload, real)
        with pytest.raises(CheckpointError, match=f"format 3 \\(found {old}\\)"):
            Engine(cfg, tiny_stream(cfg)).load_checkpoint(real)
    real.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read"):
        Engine(cfg, tiny_stream(cfg)).load_checkpoint(real)


ARGS = [*TINY_CLI, "schedule.max_tasks=1"]


def test_an_existing_run_is_never_overwritten_silently(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(["--out", str(out), *ARGS]) == 0
    first = (out / "results.json").read_text()
    assert cli_main(["--out", str(out), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "already holds a run (results.json, checkpoints)" in err
    assert "--resume" in err and "--overwrite" in err
    assert (out / "results.json").read_text() == first
    # A bad config with --overwrite leaves the old run as it was.
    assert cli_main(["--out", str(out), "--overwrite", *ARGS, "optim.batch_size=0"]) == 2
    assert (out / "results.json").read_text() == first
    assert cli_main(["--out", str(out), "--overwrite", *ARGS, "run.seed=5"]) == 0
    assert json.loads((out / "results.json").read_text())["config"]["run"]["seed"] == 5


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("file", "is an existing file, not a folder"),
        ("below_file", "is a file, so the folder cannot be created"),
        ("proc", "under a system pseudo-filesystem"),
    ],
)
def test_unusable_out_folders_are_refused_before_the_data_loads(tmp_path, capsys, where, message):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    out = {"file": a_file, "below_file": a_file / "run", "proc": "/proc/self/pah-run"}[where]
    # data.root points nowhere: the output check must fire first.
    assert cli_main(["--out", str(out), *ARGS, f"data.root={tmp_path / 'nodata'}"]) == 2
    assert message in capsys.readouterr().err
