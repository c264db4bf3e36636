"""Adding a method is one new file (and its own test): no other run, old checkpoint or table note
changes (issue #25)."""

from pah_core.checkpoints import config_differences
from pah_core.engine import Engine
from tests.helpers import tiny_config, tiny_stream


def test_a_run_records_only_its_own_methods_options():
    flat = tiny_config("method.name=finetune").flat()
    assert not [k for k in flat if k.startswith("method.") and k != "method.name"]
    pah = tiny_config().flat()
    assert {k.split(".")[1] for k in pah if k.startswith("method.") and k != "method.name"} == {
        "pah"
    }


def test_a_checkpoint_that_lists_every_methods_options_still_resumes(tmp_path):
    """Checkpoints written before runs recorded only their own method's options carry every
    registered method's section: those sections are no part of the run."""
    cfg = tiny_config("schedule.max_tasks=1")
    Engine(cfg, tiny_stream(cfg), checkpoint_dir=tmp_path).run()
    import torch

    path = tmp_path / "task_00" / "state.pt"
    payload = torch.load(path, weights_only=True)
    payload["config"] |= {"method.lwf.lambda_kd": 1.0, "method.removed_method.x": 3}
    torch.save(payload, path)
    assert config_differences(payload["config"], tiny_config().flat()) == []
    full = tiny_config()
    resumed = Engine(full, tiny_stream(full), checkpoint_dir=tmp_path).run(resume_from=path.parent)
    assert resumed["tasks_completed"] == 3
