"""Adding a method is one new file (and its own test): no other run, old checkpoint or table note
changes (issue #25)."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "data"


def test_dropping_in_a_method_file_is_the_whole_change(tmp_path):
    """A copy of the repository with one new file in pah_core/methods/ (and its test in tests/):
    the fast suite passes there, the new method is searchable, and a checkpoint written before the
    file existed resumes."""
    copy = tmp_path / "repo"
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for f in files:
        if (
            f.startswith(
                (
                    "pah_core/",
                    "pah_sweep/",
                    "sweeps/",
                    "analysis/",
                    "tests/",
                    "configs/",
                    "cluster/",
                    "docs/results/demo/",
                )
            )
            or f == "pyproject.toml"
        ):
            (copy / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, copy / f)
    # Before the new file: a checkpoint of a PAH run.
    env_code = (
        "from pah_core.engine import Engine; from tests.helpers import tiny_config, tiny_stream; "
        "import sys; cfg = tiny_config(*sys.argv[2:]); "
        "print(Engine(cfg, tiny_stream(cfg), checkpoint_dir=sys.argv[1]).run("
        "resume_from=sys.argv[1] + '/task_00' if 'resume' in sys.argv[1] else None)['tasks_completed'])"
    )
    ckpt = tmp_path / "ckpt"
    subprocess.run(
        [sys.executable, "-c", env_code, str(ckpt), "schedule.max_tasks=1"], cwd=copy, check=True
    )
    shutil.copy2(DATA / "new_method_smooth.py", copy / "pah_core" / "methods" / "smooth.py")
    shutil.copy2(DATA / "check_smooth.py", copy / "tests" / "test_new_method_smooth.py")
    fast = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert fast.returncode == 0, fast.stdout[-3000:]
    assert "test_new_method_smooth.py" not in fast.stdout or "passed" in fast.stdout
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pah_sweep.space import method_space; print(sorted(method_space('smooth')))",
        ],
        cwd=copy,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "method.smooth.smoothing" in listed
    resume = tmp_path / "resume"
    shutil.copytree(ckpt, resume)
    again = subprocess.run(
        [sys.executable, "-c", env_code, str(resume)], cwd=copy, capture_output=True, text=True
    )
    assert again.returncode == 0 and again.stdout.strip() == "3", again.stderr[-2000:]
