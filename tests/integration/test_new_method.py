"""Adding a method is one new file (and its own test): no other run, old checkpoint or table note
changes (issue #25)."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "data"


# The fast tests that a new file in pah_core/methods/ can break, run in the copy beside the new
# method's own test: those that read the method registry or pin what a new method must not change.
# The rest of the fast suite (each other method's mechanisms, the data, the sweeps' machinery) never
# sees a method it does not name; CI runs all of it on the repository itself.
REGISTRY_TESTS = [
    "tests/test_architecture.py",  # methods discovered, own their options; the import rules
    "tests/test_search_spaces.py",  # every registered method's search space and defaults
    "tests/test_config.py",  # the default config, pinned: no other run's config changes
    "tests/test_spec.py",  # the sweep and study CLIs, whose method choices come from the registry
    "tests/test_tables_export.py",  # the tables' rows and notes (method labels, ablation variants)
    "tests/test_comparison_tables.py",  # the comparison's rows and notes
    "tests/test_new_method.py::test_a_run_records_only_its_own_methods_options",
    # Every registered method but PAH: listed, each method's option checks, and the generic
    # contract (trains, resumes bit for bit, a divergence is a clear error) for the new one.
    "tests/test_baselines.py::test_all_baselines_are_listed",
    "tests/test_baselines.py::test_baseline_config_checks",
    "tests/test_baselines.py::test_end_to_end_and_resume_gives_the_same_matrix[smooth]",
    "tests/test_baselines.py::test_divergence_raises_a_clear_error[smooth]",
]


def test_dropping_in_a_method_file_is_the_whole_change(tmp_path):
    """A copy of the repository with one new file in pah_core/methods/ (and its test in tests/):
    its test and the fast tests that a method file can break pass there, the new method is
    searchable, and a checkpoint written before the file existed resumes."""
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
    mine = "tests/test_new_method_smooth.py"
    fast = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider"]
        + ["-rA", mine, *REGISTRY_TESTS],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert fast.returncode == 0, fast.stdout[-3000:]
    # The new method's own test ran and passed, and the generic contract with the new method.
    assert f"PASSED {mine}::test_smooth_trains_and_records_only_its_own_option" in fast.stdout
    for test in REGISTRY_TESTS[-2:]:
        assert f"PASSED {test}" in fast.stdout, test
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
