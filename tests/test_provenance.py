"""A run's git SHA: "-dirty" means the code it ran differs from the commit, not that a study wrote
its export and tables under docs/ while it ran."""

import subprocess

from pah_core.mlflow_reporter import git_sha


def test_a_checkout_is_dirty_for_code_changes_not_for_results_under_docs(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "table.md").write_text("| a |\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    sha = git_sha(tmp_path)
    assert len(sha) == 40
    (tmp_path / "docs" / "table.md").write_text("| b |\n")  # a study's output
    assert git_sha(tmp_path / "docs") == sha  # from any folder of the checkout
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_sha(tmp_path) == f"{sha}-dirty"
