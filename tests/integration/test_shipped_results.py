"""Every shipped study (``docs/results/<study>/export``) regenerates its committed tables and
figures byte for byte with the documented command, so that an analysis change that would alter a
shipped number shows up here instead of in a reader's rerun."""

from pathlib import Path

import pytest

from analysis import paper_tables

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "results"
STUDIES = sorted(p.parent.name for p in RESULTS.glob("*/export"))


def test_the_shipped_studies_are_found():
    assert {"cpu", "hpo-protocols-pilot", "tuned-cpu"} <= set(STUDIES)


@pytest.mark.parametrize("study", STUDIES)
def test_a_shipped_study_regenerates_byte_for_byte(study, tmp_path, monkeypatch):
    # The command as documented, run from the repository root: the export's path is part of the
    # provenance the tables print.
    monkeypatch.chdir(REPO)
    export = f"docs/results/{study}/export"
    assert paper_tables.main(["--from-export", export, "--out", str(tmp_path)]) == 0
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert made, f"nothing generated from {export}"
    differ = [str(rel) for rel in made if (tmp_path / rel).read_bytes() != _shipped(study, rel)]
    assert not differ, (
        f"{study}: regenerating from {export} changes {differ}; rerun "
        f"`python analysis/paper_tables.py --from-export {export} --out docs/results/{study}` "
        "and commit the change with its reason"
    )


def _shipped(study: str, rel: Path) -> bytes:
    path = RESULTS / study / rel
    return path.read_bytes() if path.is_file() else b"(not shipped)"
