"""Tables to Markdown, LaTeX (booktabs, best value bold), CSV and JSON, each with its provenance."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import urllib.parse
from dataclasses import asdict
from pathlib import Path

from .tables import Cell, Table


def _groups(t: Table) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for c in t.columns:
        if out and out[-1][0] == c.group:
            out[-1] = (c.group, out[-1][1] + 1)
        else:
            out.append((c.group, 1))
    return out


def _prov_lines(t: Table) -> list[str]:
    p = t.provenance
    ids = p.get("run_ids", [])
    lines = [
        f"MLflow: {p.get('mlflow_uri')} experiment {p.get('experiment')!r}"
        + (f" sweep {p['sweep']!r}" if p.get("sweep") else ""),
        f"runs ({len(ids)}): {', '.join(ids) if ids else '(none)'}",
        f"git SHA: {', '.join(p.get('git_sha', [])) or '(none)'}",
        f"dataset fingerprint: {', '.join(p.get('dataset_fingerprint', [])) or '(none)'}",
        f"generated: {p.get('generated')}",
    ]
    if p.get("reported_from"):
        lines.append(f"reported numbers: {p['reported_from']} (analysis/paper_reported.yaml)")
    return lines


# -- Escaping ------------------------------------------------------------------------------------
# Names, tags and config values from a store reach every output; any of them may hold a newline
# (a second line would escape a LaTeX comment or a markdown table row) or markup. Every string
# goes through one of these, whole, on every line.

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(s: object) -> str:
    """``s`` as one line: control characters (newlines, tabs, ...) become spaces."""
    return _CONTROL.sub(" ", str(s))


def md_escape(s: object) -> str:
    """Text for markdown (and the HTML it may hold): one line, no markup (``<``, ``&``), no
    table cell breaks (``|``)."""
    return html.escape(one_line(s), quote=False).replace("|", "\\|")


def md_link(path: str) -> str:
    """A relative path as a markdown link target: percent-encoded, so that no ``)`` or space
    ends it early."""
    return urllib.parse.quote(path, safe="/._-")


# -- Markdown ------------------------------------------------------------------------------------


def _md_cell(c: Cell) -> str:
    s = md_escape(c.shown())
    if c.bold:
        s = f"**{s}**"
    if c.notes:
        s += f"<sup>{md_escape(','.join(dict.fromkeys(c.notes)))}</sup>"
    return s


def to_markdown(t: Table) -> str:
    heads = [md_escape(f"{c.group} {c.header}".strip()) for c in t.columns]
    out = [f"### {md_escape(t.title)}", "", "| " + " | ".join(heads) + " |"]
    out.append("|" + "---|" * len(heads))
    for r in t.rows:
        out.append(
            "| " + " | ".join(_md_cell(r.get(c.key, Cell(text=""))) for c in t.columns) + " |"
        )
    out.append("")
    for k, v in t.notes.items():
        out.append(f"<sup>{md_escape(k)}</sup> {md_escape(v)}  ")
    out += ["", "<details><summary>provenance</summary>", ""]
    out += [f"- {md_escape(line)}" for line in _prov_lines(t)]
    out += ["", "</details>", ""]
    return "\n".join(out)


# -- LaTeX ---------------------------------------------------------------------------------------

_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "Δ": r"$\Delta$",
    "−": r"$-$",
    "×": r"$\times$",
    "†": r"$^\dagger$",
    "ρ": r"$\rho$",
    "–": "--",
    "—": "---",
    "λ": r"$\lambda$",
}


def tex_escape(s: str) -> str:
    out = "".join(_TEX.get(ch, ch) for ch in one_line(s))
    return "".join(ch if ord(ch) < 128 else "?" for ch in out)  # nothing pdflatex cannot set


LEFT = {"source", "buffer", "variants", "status", "range"}


def _tex_cell(c: Cell) -> str:
    s = tex_escape(c.shown())
    if c.bold:
        s = rf"\textbf{{{s}}}"
    if c.notes:
        s += rf"\textsuperscript{{{tex_escape(','.join(dict.fromkeys(c.notes)))}}}"
    return s


def _label(name: str) -> str:
    """A table's name as a LaTeX label: letters, digits and hyphens only."""
    return re.sub(r"[^A-Za-z0-9-]", "-", name)


# Figure paths \includegraphics can take as they are: no LaTeX specials, no spaces, no newlines.
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+-]+")


def includable(path: Path) -> bool:
    return _SAFE_PATH.fullmatch(path.as_posix()) is not None


def to_latex(t: Table) -> str:
    cols = t.columns
    align = "".join("l" if i == 0 or c.key in LEFT else "r" for i, c in enumerate(cols))
    # Comments: one line each, or a newline in a name would start live LaTeX on the next line.
    lines = [f"% {one_line(line)}" for line in _prov_lines(t)]
    lines += [
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{tex_escape(t.title)}}}",
        rf"\label{{tab:{_label(t.name)}}}",
    ]
    wide = len(cols) > 8
    if wide:
        lines.append(r"\resizebox{\textwidth}{!}{%")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule"]
    groups = _groups(t)
    if any(g for g, _ in groups):
        spans, rules, col = [], [], 1
        for g, n in groups:
            spans.append(
                rf"\multicolumn{{{n}}}{{c}}{{{tex_escape(g)}}}" if g else " & ".join([""] * n)
            )
            if g:
                rules.append(rf"\cmidrule(lr){{{col}-{col + n - 1}}}")
            col += n
        lines.append(" & ".join(spans) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join(tex_escape(c.header) for c in cols) + r" \\")
    lines.append(r"\midrule")
    for r in t.rows:
        lines.append(" & ".join(_tex_cell(r.get(c.key, Cell(text=""))) for c in cols) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if wide:
        lines.append("}")
    p = t.provenance
    sha = ", ".join(s[:12] for s in p.get("git_sha", [])) or "none"
    fp = ", ".join(s[:12] for s in p.get("dataset_fingerprint", [])) or "none"
    foot = [rf"\textsuperscript{{{tex_escape(k)}}}\,{tex_escape(v)}" for k, v in t.notes.items()]
    foot.append(
        tex_escape(
            f"Source: MLflow experiment {p.get('experiment')}, {len(p.get('run_ids', []))} runs "
            f"(ids in the .tex comments and the .json), git {sha}, data {fp}, generated {p.get('generated')}."
        )
    )
    lines += [
        r"\par\smallskip",
        r"\begin{minipage}{\linewidth}\footnotesize",
        " \\\\\n".join(foot),
        r"\end{minipage}",
        r"\end{table}",
        "",
    ]
    return "\n".join(lines)


def latex_document(tables: list[Table], figures: list[Path] | None = None) -> str:
    body = [
        r"\documentclass[10pt]{article}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\begin{document}",
    ]
    body += [to_latex(t) for t in tables]
    for f in [f for f in figures or [] if includable(f)]:  # the others: report.md only
        body += [
            r"\begin{figure}[htbp]\centering",
            rf"\includegraphics[width=0.8\linewidth]{{{f.as_posix()}}}",
            r"\end{figure}",
        ]
    body += [r"\end{document}", ""]
    return "\n".join(body)


# -- CSV / JSON ----------------------------------------------------------------------------------


def to_csv(t: Table) -> str:
    """One row per table row; a ``_std`` column next to each column that holds one; notes in a
    ``notes`` column; provenance as leading ``#`` lines (``pandas.read_csv(comment='#')``)."""
    buf = io.StringIO()
    for line in _prov_lines(t):
        buf.write(f"# {line}\n")
    with_std = {
        c.key for c in t.columns if any(r.get(c.key) and r[c.key].std is not None for r in t.rows)
    }
    head = []
    for c in t.columns:
        name = f"{c.group} {c.header}".strip()
        head.append(name)
        if c.key in with_std:
            head.append(f"{name} std")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*head, "notes"])
    for r in t.rows:
        vals, notes = [], []
        for c in t.columns:
            cell = r.get(c.key, Cell(text=""))
            vals.append(
                f"{cell.mean:.6g}" if cell.text is None and cell.mean is not None else cell.shown()
            )
            if c.key in with_std:
                vals.append("" if cell.std is None else f"{cell.std:.6g}")
            notes += [n for n in cell.notes if n not in notes]
        w.writerow([*vals, " ".join(f"[{n}] {t.notes[n]}" for n in notes)])
    return buf.getvalue()


def to_json(t: Table) -> str:
    return json.dumps(
        {
            "name": t.name,
            "title": t.title,
            "columns": [asdict(c) for c in t.columns],
            "rows": [{k: asdict(v) | {"shown": v.shown()} for k, v in r.items()} for r in t.rows],
            "notes": t.notes,
            "provenance": t.provenance,
        },
        indent=1,
        ensure_ascii=False,
    )


def write_table(t: Table, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, fn in (("md", to_markdown), ("tex", to_latex), ("csv", to_csv), ("json", to_json)):
        p = out / f"{t.name}.{ext}"
        p.write_text(fn(t))
        paths.append(p)
    return paths
