"""The statistics a reviewer accepts, from a small hand-made export (no training): 95% t-intervals
in every row, differences paired by seed with sign counts, footnotes for protocol keys that differ
between rows (schedule.eval_bn among them), and tables rebuilt byte-identically."""

import math

import pytest

from analysis.stats import paired, t_half_width


def test_t_interval_and_paired_differences_by_hand():
    # n = 3, sd = 1: t(0.975, 2) = 4.302653 -> half-width 4.302653 / sqrt(3)
    assert t_half_width([1.0, 2.0, 3.0]) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert t_half_width([5.0]) is None
    d = paired({"0": 55.0, "1": 56.0, "2": 54.0}, {"0": 50.0, "1": 51.5, "2": 50.5, "9": 1.0})
    assert d.n == 3 and d.mean == pytest.approx((5 + 4.5 + 3.5) / 3)
    assert d.signs() == "3/3 > 0" and d.resolved
    mixed = paired({"0": 1.0, "1": -2.0, "2": 0.5}, {"0": 0.0, "1": 0.0, "2": 0.0})
    # the mean (-1/6) is below 0: the seeds that go its way, not the majority's (2 above)
    assert mixed.signs() == "1/3 < 0" and not mixed.resolved
    assert paired({"0": 1.0}, {"1": 1.0}).n == 0


@pytest.fixture
def export():
    """PAH tuned and default, LwF tuned (under eval_bn=train) and default, fine-tune as a reference: 3 seeds
    (tests/small_export.py's COMPARISON)."""
    from tests.small_export import FOLDER

    return FOLDER


def test_comparison_tables_from_a_hand_made_export(export, tmp_path):
    from analysis.export import ExportSource
    from analysis.paper_tables import build

    report = build(None, tmp_path / "a", source=ExportSource(export))
    tables = {t.name: t for t in report.tables}
    comp, diff = tables["comparison"], tables["comparison_differences"]
    assert [(r["method"].shown(), r["config"].shown()) for r in comp.rows] == [
        ("PAH", "tuned"),
        ("PAH", "default"),
        ("LwF", "tuned"),
        ("LwF", "default"),
        ("Fine-tune", "reference"),
    ]
    acc = comp.rows[0]["acc"]  # PAH tuned: 50, 52, 51 -> mean 51, sd 1, 95% CI 51 -+ 2.48
    half = 4.302653 / math.sqrt(3)
    assert acc.shown() == f"51.00 ± 1.00 [{51 - half:.2f}, {51 + half:.2f}]"
    assert comp.rows[0]["n"].shown() == "3" and comp.rows[0]["seeds"].shown() == "2,3,4"
    # LwF's row was evaluated with batch statistics: its footnote says so, the others' do not.
    lwf_notes = [comp.notes[m] for m in comp.rows[2]["acc"].notes]
    assert any("schedule.eval_bn=train in this row" in n and "transductive" in n for n in lwf_notes)
    assert not any("eval_bn" in comp.notes[m] for m in comp.rows[0]["acc"].notes)
    rows = {r["comparison"].shown(): r for r in diff.rows}
    tuning = rows["PAH: tuned − default"]  # +1, +2, +1
    assert tuning["final_avg_acc"].mean == pytest.approx(4 / 3)
    assert tuning["final_avg_acc:signs"].shown() == "3/3 > 0" and tuning["n"].shown() == "3"
    lwf = rows["LwF tuned − PAH tuned"]  # +5, +4, +3: resolved, LwF ahead
    assert lwf["final_avg_acc"].shown().startswith("+4.00 [")
    assert "accuracy: first higher" in lwf["verdict"].shown()
    assert "forgetting: not resolved" in lwf["verdict"].shown()  # identical: a zero interval
    assert "Fine-tune reference − PAH tuned" in rows
    untuned = rows["LwF default − PAH default"]  # +3, +3, +2
    assert untuned["final_avg_acc"].mean == pytest.approx(8 / 3)
    assert untuned["final_avg_acc:signs"].shown() == "3/3 > 0"
    assert list(rows).index("LwF default − PAH default") == len(rows) - 1
    # A run in two rows is one run of the table's provenance.
    assert len(diff.provenance["run_ids"]) == len(set(diff.provenance["run_ids"]))
    # The same export gives the same files, byte for byte (no clock in them).
    again = build(None, tmp_path / "b", source=ExportSource(export))
    for name in ("report.md", "tables.tex", "comparison.md", "comparison_differences.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert again.data_time == "data as of 1970-01-01 00:00:00 UTC"
