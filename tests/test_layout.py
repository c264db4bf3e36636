"""The test layout tests/conftest.py enforces: integration tests live in tests/integration/, slow by
their path there (and data where they read the datasets); a test outside it that uses an
integration fixture, or is marked slow by hand, stops the collection with where to move it."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import INTEGRATION, misplaced

REPO = Path(__file__).resolve().parents[1]


def test_misplaced_by_fixture_or_hand_mark_outside_integration():
    outside = REPO / "tests" / "test_x.py"
    assert misplaced(outside, {"tmp_path", "cifar", "data_root"}, False) == (
        "uses the integration fixture(s) cifar, data_root"
    )
    assert misplaced(outside, {"tmp_path"}, True) == "is marked slow by hand"
    assert misplaced(outside, {"tmp_path"}, False) is None
    assert misplaced(INTEGRATION / "test_x.py", {"ray_cluster"}, True) is None


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """A tests/ package with this repository's conftest.py and ``files``."""
    tests = tmp_path / "tests"
    (tests / "integration").mkdir(parents=True)
    shutil.copy2(REPO / "tests" / "conftest.py", tests / "conftest.py")
    for f in ("tests/__init__.py", "tests/integration/__init__.py"):
        (tmp_path / f).touch()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def _pytest(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_collection_marks_by_path_and_refuses_a_misplaced_test(tmp_path):
    root = _tree(
        tmp_path,
        {
            "tests/test_unit.py": "def test_unit(tmp_path):\n    pass\n",
            "tests/integration/test_real.py": (
                "def test_real(data_root):\n    pass\n\n\ndef test_store(tmp_path):\n    pass\n"
            ),
        },
    )
    fast = _pytest(root, "-m", "not slow", "tests")
    assert fast.returncode == 0, fast.stdout + fast.stderr
    assert "tests/test_unit.py::test_unit" in fast.stdout
    assert "1/3 tests collected (2 deselected)" in fast.stdout
    data = _pytest(root, "-m", "data", "tests")
    assert "tests/integration/test_real.py::test_real" in data.stdout
    assert "1/3 tests collected (2 deselected)" in data.stdout
    (root / "tests" / "test_wrong.py").write_text(
        "import pytest\n\n\ndef test_wrong(cifar):\n    pass\n\n\n"
        "@pytest.mark.slow\ndef test_slow(tmp_path):\n    pass\n"
    )
    wrong = _pytest(root, "-m", "not slow", "tests")
    assert wrong.returncode == 4  # a usage error: nothing runs
    err = wrong.stdout + wrong.stderr
    assert "integration tests belong in tests/integration/" in err
    assert "tests/test_wrong.py::test_wrong uses the integration fixture(s) cifar" in err
    assert "tests/test_wrong.py::test_slow is marked slow by hand" in err
