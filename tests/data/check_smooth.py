"""The new method's own test (copied to tests/test_new_method_smooth.py by tests/integration/test_new_method.py): it
trains, and it records its own option only."""

from pah_core.engine import Engine
from tests.helpers import tiny_config, tiny_stream


def test_smooth_trains_and_records_only_its_own_option():
    cfg = tiny_config("method.name=smooth", "method.smooth.smoothing=0.2")
    results = Engine(cfg, tiny_stream(cfg)).run()
    assert results["tasks_completed"] == 3
    flat = cfg.flat()
    assert flat["method.smooth.smoothing"] == 0.2
    assert not [
        k for k in flat if k.startswith("method.") and k.split(".")[1] not in ("name", "smooth")
    ]
