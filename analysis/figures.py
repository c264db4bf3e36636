"""Figures, each saved as PNG and PDF: accuracy-matrix heatmaps, PAH's head drift per run, average
accuracy vs tasks seen, the Pareto front of a sweep, and the sensitivity scatter of a search sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pah_core.figures import pyplot
from pah_core.methods import param_label
from pah_core.metrics import MIN_TRIALS_FOR_SENSITIVITY

from .store import RunRecord, short_id
from .tables import dataset_name, method_name


def save(fig, out: Path, stem: str, caption: str = "") -> list[Path]:
    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    if caption:
        fig.text(0.01, 0.005, caption, fontsize=5, color="0.4", ha="left", va="bottom")
    paths = []
    for ext in ("png", "pdf"):
        p = out / f"{stem}.{ext}"
        # No creation date in the PDF: a figure rebuilt from the same export is the same file.
        meta = {"CreationDate": None} if ext == "pdf" else {"Software": "pah analysis"}
        fig.savefig(p, dpi=150, metadata=meta)
        paths.append(p)
    plt.close(fig)
    return paths


def heatmap_figure(run: RunRecord, matrix: np.ndarray):
    from pah_core.figures import accuracy_heatmap

    label = f"{method_name(run.method)} {dataset_name(run.dataset)}"
    if run.variant:
        label += f" [{run.variant}]"
    fig = accuracy_heatmap(matrix)
    w, h = fig.get_size_inches()
    fig.set_size_inches(max(w, 4.0), max(h, 3.4))
    fig.axes[0].set_title(f"{run.name}: accuracy (%)\n{label}, seed {run.seed}", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 0.94))
    return fig


def heatmap(run: RunRecord, matrix: np.ndarray, out: Path) -> list[Path]:
    fig = heatmap_figure(run, matrix)
    return save(fig, out, f"heatmap_{short_id(run.run_id)}", f"run {run.run_id}")


def drift(run: RunRecord, history: list[dict], out: Path) -> list[Path]:
    """One PAH run's generated-head drift: one line per old task, against tasks trained."""
    from pah_core.figures import drift_figure

    label = f"{method_name(run.method)} {dataset_name(run.dataset)}"
    label += f" [{run.variant}]" if run.variant else ""
    fig = drift_figure(history, "head_drift", f"{run.name}: head drift\n{label}, seed {run.seed}")
    fig.axes[0].title.set_fontsize(8)
    return save(fig, out, f"drift_{short_id(run.run_id)}", f"run {run.run_id}")


def avg_acc_curves(groups: dict[str, list[RunRecord]], dataset: str, out: Path) -> list[Path]:
    """Mean +- std (over runs) of the ``avg_acc`` history per method; step = task index."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, (method, runs) in enumerate(sorted(groups.items())):
        steps = sorted({s for r in runs for s in r.history.get("avg_acc", {})})
        if not steps:
            continue
        mean, std, n = [], [], []
        for s in steps:
            v = [100 * r.history["avg_acc"][s] for r in runs if s in r.history.get("avg_acc", {})]
            mean.append(np.mean(v))
            std.append(np.std(v, ddof=1) if len(v) > 1 else 0.0)
            n.append(len(v))
        x = np.asarray(steps) + 1
        mean, std = np.asarray(mean), np.asarray(std)
        color = f"C{i % 10}"
        ax.plot(x, mean, marker="o", ms=3, color=color, label=f"{method_name(method)} (n={max(n)})")
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    ax.set_xlabel("tasks seen")
    ax.set_ylabel("average accuracy (%)")
    ax.set_title(f"{dataset_name(dataset)}: average accuracy vs tasks seen (mean ± std)")
    ax.set_ylim(0, 100)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    ids = ", ".join(short_id(r.run_id) for rs in groups.values() for r in rs)
    return save(fig, out, f"avg_acc_vs_tasks_{dataset}", f"runs: {ids}"[:300])


def pareto_plot(
    trials: list[RunRecord], front_ids: list[str], sweep: str, out: Path, stem: str
) -> list[Path]:
    """Every finished trial as (forgetting, accuracy), the non-dominated ones joined by a line; on
    the split the search selected on (validation, or test for searches made before it)."""
    from .sensitivity import selection_keys

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    acc, forg, split = selection_keys(trials)
    pts = {
        r.run_id: (100 * r.metric(forg), 100 * r.metric(acc))
        for r in trials
        if r.metric(acc) is not None and r.metric(forg) is not None
    }
    others = [p for k, p in pts.items() if k not in front_ids]
    if others:
        ax.scatter(*zip(*others, strict=True), s=18, color="0.6", label="dominated")
    front = sorted((pts[k] for k in front_ids if k in pts), key=lambda p: p[0])
    if front:
        ax.plot(*zip(*front, strict=True), "-o", color="C3", ms=5, label="Pareto front")
    ax.set_xlabel(f"forgetting, {split} (%) ↓")
    ax.set_ylabel(f"average accuracy, {split} (%) ↑")
    ax.set_title(f"{sweep}: accuracy vs forgetting ({len(pts)} finished trials)", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save(fig, out, stem, f"sweep {sweep}")


def sensitivity_plot(trials: list[RunRecord], keys: list[str], sweep: str, out: Path, stem: str):
    from matplotlib.ticker import NullFormatter

    from .sensitivity import selection_keys

    plt = pyplot()
    # Rows of at most 5 panels: a search space of 10 parameters in one row is too wide to read.
    cols = min(5, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.3 * rows + 0.3), sharey=True)
    axes = np.atleast_1d(axes).ravel()
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    acc, _, split = selection_keys(trials)
    done = [r for r in trials if r.metric(acc) is not None]
    for ax, k in zip(axes, keys, strict=False):
        xs, ys = [], []
        for r in done:
            try:
                xs.append(float(r.params[k]))
                ys.append(100 * r.metric(acc))
            except (KeyError, ValueError):
                continue
        ax.scatter(xs, ys, s=14, color="C0")
        if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
            # Minor-tick labels of a log axis that spans about one decade overlap each other.
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            # Learning rates: few ticks, in scientific notation, or their labels run together.
            ax.locator_params(axis="x", nbins=4)
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 4))
            ax.xaxis.get_offset_text().set_fontsize(7)
        ax.set_xlabel(param_label(k), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[::cols]:
        ax.set_ylabel(f"final avg. accuracy,\n{split} (%)", fontsize=8)
    # Below the minimum the panels are the trials themselves, not a sensitivity estimate.
    title = (
        f"sensitivity ({len(done)} finished trials)"
        if len(done) >= MIN_TRIALS_FOR_SENSITIVITY
        else f"the {len(done)} finished trials (too few for a sensitivity estimate: "
        f"rank correlations from {MIN_TRIALS_FOR_SENSITIVITY})"
    )
    fig.suptitle(f"{sweep}: {title}", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, out, stem, f"sweep {sweep}")


# (cost, mean test accuracy %, 95% half-width over the final runs or None, sampler seed)
SearchPoint = tuple[float, float, float | None, str | None]


def protocol_plot(panels: dict[str, dict[str, list[SearchPoint]]], out: Path, stem: str):
    """One panel per evaluation stream (accuracies of different streams are not comparable):
    per protocol, each search's selection (its final runs' mean test accuracy with their 95%
    interval) against what a deployable model cost, and the mean over searches (a diamond, with
    the 95% interval over searches)."""
    from .stats import t_half_width

    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False, sharex=True
    )
    colours: dict[str, str] = {}
    top = max(p[0] for protocols in panels.values() for ps in protocols.values() for p in ps)
    dodge = top / 35  # searches of one cost side by side, not on top of each other
    for ax, (stream, protocols) in zip(axes[0], panels.items(), strict=True):
        for protocol, points in protocols.items():
            c = colours.setdefault(protocol, f"C{len(colours)}")
            xs = [p[0] + dodge * (i - (len(points) - 1) / 2) for i, p in enumerate(points)]
            ys = [p[1] for p in points]
            err = [p[2] or 0.0 for p in points]
            ax.errorbar(xs, ys, yerr=err, fmt="o", ms=4, color=c, alpha=0.6, capsize=2)
            for x, y, _, seed in zip(xs, ys, err, (p[3] for p in points), strict=True):
                if seed is not None:
                    ax.annotate(f"s{seed}", (x, y), fontsize=6, color=c, xytext=(3, 3),
                                textcoords="offset points")  # fmt: skip
            half = t_half_width(ys)
            ax.errorbar(
                [float(np.mean([p[0] for p in points]))],
                [float(np.mean(ys))],
                yerr=[half] if half is not None else None,
                fmt="D",
                ms=8,
                mfc="none",
                mew=1.5,
                color=c,
                capsize=4,
                label=f"{protocol} (n = {len(points)})",
            )
        ax.set_title(stream, fontsize=8)
        ax.set_xlim(0, 1.15 * top)
        ax.set_xlabel("tasks trained to deploy one model", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("selection's final test accuracy (%)", fontsize=8)
    fig.suptitle(
        "HPO protocols: each search's selection (dots: its final runs' mean, 95% CI), "
        "the mean over searches (diamonds: 95% CI over searches)",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return save(fig, out, stem, "test accuracy of each protocol's selections by evaluation stream")
