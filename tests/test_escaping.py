"""Every string that reaches the LaTeX, markdown or HTML outputs of the analysis is escaped, on
every line of it (issue #26): names and tags from a store may hold newlines and markup."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from analysis import render
from analysis.paper_tables import Report, write
from analysis.tables import Cell, Column, Table

TEX_ATTACK = "x\n\\input{/etc/passwd}\n\n\\immediate\\write18{touch pwned}"
HTML_ATTACK = 'a\n<script>alert(1)</script><img src=x onerror="y">|'
ATTACKS = [TEX_ATTACK, HTML_ATTACK, "evil\r\n# heading", "tab\there\u2028next"]


def _table(attack: str) -> Table:
    t = Table(
        name="main_table",
        title=f"Main {attack}",
        columns=[Column("method", f"Method {attack}", group=attack), Column("acc", "Acc")],
        notes={"a": f"note {attack}"},
        provenance={
            "mlflow_uri": f"sqlite:////tmp/{attack}.db",
            "experiment": attack,
            "sweep": attack,
            "run_ids": [attack],
            "git_sha": [attack],
            "dataset_fingerprint": [attack],
            "generated": attack,
        },
    )
    t.rows.append({"method": Cell(text=attack, notes=["a"]), "acc": Cell(mean=0.5, std=0.1, n=3)})
    return t


@pytest.mark.parametrize("attack", ATTACKS, ids=["tex", "html", "crlf", "tab+u2028"])
def test_latex_holds_no_live_line_from_a_name(attack):
    tex = render.to_latex(_table(attack))
    live = [ln for ln in tex.splitlines() if not ln.startswith("% ")]  # comments end at the line
    assert len(live) < len(tex.splitlines())  # the provenance comments are there, one line each
    for line in live:
        # No live line holds the injected commands, and no control character survives.
        assert "\\input{" not in line and "\\immediate" not in line, line
        assert "\\write18" not in line, line
        assert not re.search(r"[\x00-\x08\x0b-\x1f\u2028]", line), line
    assert "\n\n" not in tex.split("\\begin{tabular}")[1]  # no paragraph break in the tabular


@pytest.mark.parametrize("attack", ATTACKS, ids=["tex", "html", "crlf", "tab+u2028"])
def test_markdown_holds_no_markup_or_broken_row_from_a_name(attack):
    md = render.to_markdown(_table(attack))
    assert "<script" not in md and "<img" not in md
    assert "&lt;script&gt;" in md or "<" not in attack
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(rows) == 3  # header, rule, one row: no newline broke the table
    assert all(len(re.findall(r"(?<!\\)\|", r)) == 3 for r in rows), rows
    for line in md.splitlines():
        assert not line.startswith(("# heading", "\\input", "<script")), line


def test_report_md_and_tables_tex_escape_figure_names_and_warnings(tmp_path):
    figs = tmp_path / "figures"
    figs.mkdir()
    odd = figs / "sensitivity_a}b\\input{x} c.pdf"
    odd.write_bytes(b"%PDF")
    png = figs / "pareto_<b>x<b> (1).png"
    png.write_bytes(b"png")
    report = Report(out=tmp_path, tables=[_table(HTML_ATTACK)], figures=[odd, png])
    report.warnings.append(f"sweep {HTML_ATTACK} has no trials")
    write(report)
    md = (tmp_path / "report.md").read_text()
    assert "<script" not in md and "<b>" not in md
    assert "pareto_%3Cb%3Ex%3Cb%3E%20%281%29.png" in md
    tex = (tmp_path / "tables.tex").read_text()
    assert "\\input{x}" not in tex  # an unsafe figure path is left out of the LaTeX
    if shutil.which("pdflatex"):  # and the document still compiles
        done = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-no-shell-escape", "tables.tex"],
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout.decode()[-2000:]
        assert not Path(tmp_path / "pwned").exists()
