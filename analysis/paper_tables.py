"""MLflow -> the paper's tables and figures (Markdown, LaTeX, CSV, JSON; PNG and PDF).

    python analysis/paper_tables.py --experiment pah-cifar100 --out report/
    python analysis/paper_tables.py --experiment pah-cifar100 --sweep NAME_OR_PARENT_RUN_ID --out report/
    python analysis/paper_tables.py --from-export docs/results/cpu/export --out docs/results/cpu

Reads MLflow only (an embedded sqlite store or an http:// server): one search per experiment,
then metric histories and accuracy-matrix artifacts only for the runs that are plotted.
Or, with --from-export, an export folder (analysis/export.py) and no MLflow at all: the same tables.

What goes where: runs of ``baselines`` sweeps and standalone runs make the main table (method, or
a variant that is not plainly a method, x dataset); runs of ``ablation`` sweeps make the ablation
tables (by their config, not their names; the base configuration's row also takes the runs of
another sweep that the ablation sweep's parent names in ``tables.FULL_FROM_TAG``); each ``search``
sweep gets a sensitivity table, its trials, a sensitivity plot, Optuna's parameter importances
(from optuna.db beside mlflow.db, or --optuna-storage) and its Pareto front.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from analysis import figures, render  # noqa: E402
from analysis.ablations import ablation_tables, shared_full_runs  # noqa: E402
from analysis.comparison import comparison_tables  # noqa: E402
from analysis.export import ExportSource  # noqa: E402
from analysis.hpo_compare import protocol_figures  # noqa: E402
from analysis.hpo_protocols import protocol_tables  # noqa: E402
from analysis.main_table import main_differences, main_table  # noqa: E402
from analysis.sensitivity import (  # noqa: E402
    optuna_importances,
    search_keys,
    selection_keys,
    sensitivity_tables,
)
from analysis.store import (  # noqa: E402
    AnalysisError,
    MlflowSource,
    RunRecord,
    children,
    client_for,
    resolve_uri,
    select_sweeps,
)
from analysis.tables import Table, data_time, load_paper, row_key  # noqa: E402


@dataclass
class Report:
    out: Path
    tables: list[Table] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    data_time: str = ""  # tables.data_time of every run reported


def build(
    experiment: str | None,
    out: str | Path,
    sweeps: list[str] | None = None,
    mlflow_uri: str | None = None,
    optuna_storage: str | None = None,
    max_heatmaps: int = 100,
    source: MlflowSource | ExportSource | None = None,
) -> Report:
    """Tables and figures of ``experiment`` (or of the export's, with an ExportSource) into ``out``.

    ``source`` is where runs, histories and matrices are read: by default MLflow at ``mlflow_uri``;
    an ``ExportSource`` reads an export folder instead."""
    if source is None:
        source = MlflowSource(client_for(resolve_uri(mlflow_uri)))
    experiment = experiment or source.default_experiment
    if experiment is None:
        raise AnalysisError("name the MLflow experiment to analyse (--experiment)")
    exp = source.experiment(experiment)
    report = Report(Path(out))
    if sweeps:
        parents = select_sweeps(exp, sweeps)
        selected = children(exp, parents)
        if not selected:
            raise AnalysisError(f"the sweep(s) {', '.join(sweeps)} have no runs in {experiment!r}")
    else:
        parents = list(exp.sweeps)
        selected = exp.runs
    if not selected:
        raise AnalysisError(f"experiment {experiment!r} has sweep runs but no training runs")
    paper = load_paper()
    main_runs = [r for r in selected if r.kind in ("baselines", "standalone")]
    ablation_runs = [r for r in selected if r.kind == "ablation" and r.variant]
    ablation_parents = list(dict.fromkeys(r.parent for r in ablation_runs if r.parent))
    shared_full, missing = shared_full_runs(exp, ablation_parents)
    report.warnings += missing
    report.tables.append(main_table(exp, main_runs, paper))
    differences = main_differences(exp, main_runs)
    if differences is not None:
        report.tables.append(differences)
    report.tables += comparison_tables(exp)
    report.tables += protocol_tables(exp)
    report.figures += protocol_figures(exp, report.out / "figures")
    report.tables += ablation_tables(exp, ablation_runs, paper, shared_full)
    search = [p for p in parents if exp.sweeps[p].tags.get("sweep_kind", "search") == "search"]
    search_reports(report, exp, search, optuna_storage or source.optuna_storage())
    accuracy_curves(report, source, main_runs)
    heatmaps(report, source, main_runs + ablation_runs, max_heatmaps)
    report.data_time = data_time(selected)
    write(report)
    return report


def search_reports(report: Report, exp, search: list[str], storage: str | None) -> None:
    """Each search's sensitivity tables, its sensitivity plot and its Pareto front."""
    from pah_core import metrics

    figdir = report.out / "figures"
    for pid in search:
        label = exp.sweep_label(pid)
        trials = children(exp, [pid])
        if not trials:
            report.warnings.append(f"search sweep {label}: no trials")
            continue
        keys = search_keys(exp.sweeps[pid], trials)
        first = exp.sweeps[pid].tags.get("objectives", "acc").split(",")[0]
        imp, note = optuna_importances(storage, label, first)
        summary, detail = sensitivity_tables(exp, label, trials, imp, note, keys)
        report.tables += [summary, detail]
        report.figures += figures.sensitivity_plot(
            trials, keys, label, figdir, f"sensitivity_{summary.name[12:]}"
        )
        acc, forg, _ = selection_keys(trials)  # the split the search selected on
        done = [r for r in trials if r.metric(acc) is not None and r.metric(forg) is not None]
        front = metrics.pareto_front([(r.run_id, r.metric(acc), r.metric(forg)) for r in done])
        if done:
            report.figures += figures.pareto_plot(
                trials, [p[0] for p in front], label, figdir, f"pareto_{summary.name[12:]}"
            )
        else:
            report.warnings.append(f"search sweep {label}: no finished trial, no Pareto front")


def accuracy_curves(report: Report, source, main_runs: list[RunRecord]) -> None:
    """Average accuracy vs tasks seen, per dataset, one curve per main-table row (avg_acc history)."""
    figdir = report.out / "figures"
    source.histories(main_runs, "avg_acc")
    for dataset in sorted({r.dataset for r in main_runs}):
        groups: dict[str, list[RunRecord]] = {}  # one curve per main-table row
        for r in main_runs:
            if r.dataset == dataset:
                groups.setdefault(row_key(r), []).append(r)
        report.figures += figures.avg_acc_curves(groups, dataset, figdir)


def heatmaps(report: Report, source, runs: list[RunRecord], max_heatmaps: int) -> None:
    """One heatmap per run (main table and ablations), PAH's drift figure beside it, capped; a
    warning where a run's logged final accuracy disagrees with its matrix."""
    from pah_core import metrics

    figdir = report.out / "figures"
    plotted = runs[: max(0, max_heatmaps)]
    if len(runs) > len(plotted):
        report.warnings.append(
            f"heatmaps for the first {len(plotted)} of {len(runs)} runs (--max-heatmaps)"
        )
    for r in plotted:
        loaded = source.matrix(r)
        if loaded is None:
            report.warnings.append(f"run {r.run_id} ({r.name}): no acc_matrix.json, no heatmap")
            continue
        m, d = loaded
        logged = r.metric("final_avg_acc")
        if logged is not None and d.get("tasks_done") == d.get("n_tasks"):
            again = metrics.average_accuracy(m)
            if abs(again - logged) > 1e-6:
                report.warnings.append(
                    f"run {r.run_id}: final_avg_acc {logged:.6f} but its acc_matrix.json gives {again:.6f}"
                )
        report.figures += figures.heatmap(r, m, figdir / "heatmaps")
        history = source.diagnostics(r)
        if history and "head_drift" in history[-1]:  # PAH: what explains its forgetting
            report.figures += figures.drift(r, history, figdir / "drift")


def write(report: Report) -> None:
    out = report.out
    out.mkdir(parents=True, exist_ok=True)
    for t in report.tables:
        render.write_table(t, out)
    pngs = [p for p in report.figures if p.suffix == ".png"]
    pdfs = [
        p.relative_to(out)
        for p in report.figures
        if p.suffix == ".pdf" and not {"heatmaps", "drift"} & set(p.parts)  # per run: too many
    ]
    (out / "tables.tex").write_text(render.latex_document(report.tables, pdfs))
    runs = [r for t in report.tables for r in t.provenance.get("run_ids", [])]
    md = [f"# PAH analysis ({report.data_time or 'no runs'}; {len(set(runs))} runs)", ""]
    md += [render.to_markdown(t) for t in report.tables]
    md += ["## Figures", ""] + [
        f"- ![{render.md_escape(p.stem)}]({render.md_link(p.relative_to(out).as_posix())})"
        for p in pngs
    ]
    if report.warnings:
        md += ["", "## Warnings", ""] + [f"- {render.md_escape(w)}" for w in report.warnings]
    (out / "report.md").write_text("\n".join(md) + "\n")
    (out / "index.json").write_text(
        json.dumps(
            {
                "tables": [t.name for t in report.tables],
                "figures": [p.relative_to(out).as_posix() for p in report.figures],
                "warnings": report.warnings,
            },
            indent=1,
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python analysis/paper_tables.py", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--experiment",
        help="MLflow experiment name (e.g. pah-cifar100; with --from-export: its own)",
    )
    p.add_argument(
        "--from-export",
        metavar="DIR",
        help="read an export folder (analysis/export.py, e.g. docs/results/cpu/export) instead of MLflow",
    )
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        help="only this sweep (name or parent run id); repeatable; default: every run of the experiment",
    )
    p.add_argument(
        "--mlflow-uri",
        help="sqlite:////abs/mlflow.db, a path to a .db file, or http://host:port "
        "(default: $MLFLOW_TRACKING_URI, else ./mlflow.db)",
    )
    p.add_argument(
        "--optuna-storage",
        help="Optuna storage URL of the search studies (default: optuna.db beside an sqlite mlflow.db)",
    )
    p.add_argument(
        "--max-heatmaps", type=int, default=100, help="at most this many per-run heatmaps"
    )
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args(argv)
    if not args.experiment and not args.from_export:
        p.error("pass --experiment (an MLflow experiment) or --from-export DIR")
    # One progress bar per downloaded acc_matrix.json would bury the summary.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    t0 = time.perf_counter()
    try:
        rep = build(
            args.experiment,
            args.out,
            sweeps=args.sweep,
            mlflow_uri=args.mlflow_uri,
            optuna_storage=args.optuna_storage,
            max_heatmaps=args.max_heatmaps,
            source=ExportSource(args.from_export) if args.from_export else None,
        )
    except AnalysisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"[analysis] {len(rep.tables)} table(s), {len(rep.figures)} figure file(s) in {rep.out} "
        f"({time.perf_counter() - t0:.1f} s); see {rep.out / 'report.md'} and {rep.out / 'tables.tex'}"
    )
    for w in rep.warnings:
        print(f"[analysis] warning: {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
