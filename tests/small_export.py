"""The hand-made export in tests/data/small_export: every number chosen here, none trained, so that
the tables built from it (tests/test_tables_export.py) can be checked cell for cell.

    PYTHONPATH=. python -m tests.small_export     # rewrite tests/data/small_export from this file

It holds, in one experiment:
- ``base``, a baselines sweep on synthetic data (3 tasks): PAH and fine-tune on seeds 0-2, LwF on
  seeds 0-1, each with its accuracy matrix, avg_acc history and (PAH) head-drift diagnostics;
- ``abl``, a PAH ablation sweep: full and proto_5 and init_random on seeds 0-1, ce_only on seed 0
  (no accuracy matrices: the report warns, and draws no heatmap);
- ``search``, a search sweep: 4 finished trials at ``SEARCH_POINTS`` and one stopped by ASHA;
- standalone runs on cifar100 with gaps: PAH with one run lacking final_forgetting, SI with no
  final numbers at all;
- a method comparison on cifar100 (seeds 2-4): PAH tuned and default, LwF tuned (evaluated with
  eval_bn=train), fine-tune as its reference.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import export_run, export_sweep, write_hand_export

FOLDER = Path(__file__).resolve().parent / "data" / "small_export"
EXPERIMENT = "small"
PROVENANCE = {"git_sha": "abc123def456", "dataset_fingerprint": "fp-synthetic"}

# baselines: method -> per seed (final_avg_acc, final_forgetting, final_cil_avg_acc)
BASE = {
    "pah": [(0.60, 0.10, 0.30), (0.62, 0.12, 0.33), (0.64, 0.08, 0.36)],
    "finetune": [(0.40, 0.30, 0.20), (0.41, 0.32, 0.20), (0.42, 0.34, 0.23)],
    "lwf": [(0.55, 0.15, 0.25), (0.58, 0.17, 0.27)],
}
PAH_BASE = {  # the base configuration's ablated keys
    "model.prototype_size": "6",
    "model.prototype_init": "semantic_crop",
    "method.pah.use_sm": "True",
    "method.pah.use_sp": "True",
}
# ablation variant -> (its changes, per seed (final_avg_acc, final_forgetting, final_cil_avg_acc))
ABLATION = {
    "full": ({}, [(0.60, 0.10, 0.30), (0.64, 0.12, 0.32)]),
    "proto_5": ({"model.prototype_size": "5"}, [(0.50, 0.20, 0.25), (0.54, 0.16, 0.27)]),
    "init_random": ({"model.prototype_init": "random"}, [(0.45, 0.25, 0.20), (0.47, 0.21, 0.22)]),
    "ce_only": (
        {"method.pah.use_sm": "False", "method.pah.use_sp": "False"},
        [(0.30, 0.40, 0.10)],
    ),
}
SEARCH_KEYS = (
    "model.hyper_width",
    "model.hyper_depth",
    "method.pah.lambda_sm",
    "method.pah.lambda_sp",
    "method.pah.temperature",
)
# (width, depth, lambda_sm, lambda_sp, temperature), final_avg_acc, final_forgetting
SEARCH_POINTS = [
    ((8, 1, 0.5, 1.0, 2.0), 0.50, 0.10),
    ((16, 2, 0.05, 3.0, 4.0), 0.55, 0.20),
    ((32, 1, 2.0, 0.1, 1.5), 0.65, 0.15),
    ((12, 2, 0.2, 0.5, 6.0), 0.45, 0.05),
]
# run ids: figures are named by their first 8 characters (analysis.store.short_id)
SHORT = {"pah": "pah", "finetune": "ft", "lwf": "lwf"}
GAPS = {"pah": [(0.70, 0.02), (0.72, None), (0.75, 0.03)], "si": [(None, None)]}
# comparison sweep -> (name, role, method, per seed 2, 3, 4 final_avg_acc, param changes)
COMPARISON = {
    "p1": ("c-pah-final", "tuned", "pah", [0.50, 0.52, 0.51], {}),
    "p2": ("c-pah-default", "default", "pah", [0.49, 0.50, 0.50], {}),
    "p3": ("c-lwf-final", "tuned", "lwf", [0.55, 0.56, 0.54], {"schedule.eval_bn": "train"}),
    "p4": ("c-finetune", "reference", "finetune", [0.38, 0.40, 0.39], {}),
    "p5": ("c-lwf-default", "default", "lwf", [0.52, 0.53, 0.52], {}),
}


def matrix(acc: float, forgetting: float) -> list[list[float | None]]:
    """A 3-task accuracy matrix whose final average accuracy is ``acc`` and forgetting is
    ``forgetting``: final row acc - 0.2, acc, acc + 0.2; each old task forgot ``forgetting``."""
    x, y, z = (round(acc + d, 6) for d in (-0.2, 0.0, 0.2))
    f = forgetting
    return [
        [round(x + f, 6), None, None],
        [round(x + f / 2, 6), round(y + f, 6), None],
        [x, y, z],
    ]


def _avg_acc_history(m: list[list[float | None]]) -> dict[str, float]:
    return {str(i): round(sum(row[: i + 1]) / (i + 1), 6) for i, row in enumerate(m)}


def records() -> tuple[list[dict], list[dict]]:
    sweeps = [
        export_sweep("p-base", "base", "baselines", 1),
        export_sweep("p-abl", "abl", "ablation", 2),
        export_sweep("p-search", "search", "search", 3, objectives="acc,forgetting", method="pah"),
    ]
    runs = []
    t = 10
    for method, seeds in BASE.items():
        for seed, (acc, forg, cil) in enumerate(seeds):
            m = matrix(acc, forg)
            drift = [
                {"head_drift": [round(0.1 * (i - j), 6) for j in range(i + 1)]} for i in range(3)
            ]
            runs.append(
                export_run(
                    f"{SHORT[method]}-s{seed}-base",
                    t,
                    {"method.name": method, "run.seed": str(seed), "data.dataset": "synthetic"},
                    {"final_avg_acc": acc, "final_forgetting": forg, "final_cil_avg_acc": cil},
                    {"mlflow.parentRunId": "p-base", "sweep": "base", "variant": method}
                    | {"method": method, "dataset": "synthetic", **PROVENANCE},
                    history={"avg_acc": _avg_acc_history(m), "forgetting": {}},
                    acc_matrix={"acc_matrix": m, "n_tasks": 3, "tasks_done": 3},
                    diagnostics=drift if method == "pah" else None,
                )
            )
            t += 1
    for variant, (changes, seeds) in ABLATION.items():
        for seed, (acc, forg, cil) in enumerate(seeds):
            params = {"method.name": "pah", "run.seed": str(seed), **PAH_BASE, **changes}
            runs.append(
                export_run(
                    f"s{seed}-{variant}",
                    t,
                    params,
                    {"final_avg_acc": acc, "final_forgetting": forg, "final_cil_avg_acc": cil},
                    {"mlflow.parentRunId": "p-abl", "sweep": "abl", "variant": variant}
                    | {"method": "pah", "dataset": "synthetic", **PROVENANCE},
                )
            )
            t += 1
    search_tags = {"mlflow.parentRunId": "p-search", "sweep": "search", "method": "pah"}
    search_tags |= {"dataset": "synthetic", **PROVENANCE}
    for i, (point, acc, forg) in enumerate(SEARCH_POINTS):
        params = {"method.name": "pah", "run.seed": "0"}
        params |= {k: str(v) for k, v in zip(SEARCH_KEYS, point, strict=True)}
        metrics = {"final_avg_acc": acc, "final_forgetting": forg}
        runs.append(export_run(f"trial_{i}", t, params, metrics, search_tags))
        t += 1
    runs.append(  # ASHA stopped it after its first task: no final numbers
        export_run(
            "trial_stopped",
            t,
            {"method.name": "pah", "run.seed": "0", "model.hyper_width": "64"},
            {"avg_acc": 0.3},
            search_tags | {"pah.stopped_early": "asha"},
            status="KILLED",
            history={"avg_acc": {"0": 0.3}, "forgetting": {}},
        )
    )
    t += 1
    for method, seeds in GAPS.items():
        for seed, (acc, forg) in enumerate(seeds):
            metrics = {"avg_acc": 0.9}
            metrics |= {} if acc is None else {"final_avg_acc": acc}
            metrics |= {} if forg is None else {"final_forgetting": forg}
            runs.append(
                export_run(
                    f"{method}-{seed}",
                    t,
                    {"run.seed": str(seed)},
                    metrics,
                    {"method": method, "dataset": "cifar100", "git_sha": "g"},
                )
            )
            t += 1
    for i, (pid, (name, role, method, accs, changes)) in enumerate(COMPARISON.items()):
        sweeps.append(
            export_sweep(pid, name, "final", 4 + i, comparison="c", comparison_config=role)
        )
        for seed, acc in zip((2, 3, 4), accs, strict=True):
            params = {"method.name": method, "run.seed": str(seed), "data.dataset": "cifar100"}
            params |= {"schedule.eval_bn": "eval", "data.split_seed": "run", **changes}
            runs.append(
                export_run(
                    f"{pid}s{seed}",
                    t,
                    params,
                    {"final_avg_acc": acc, "final_forgetting": 0.05, "final_cil_avg_acc": acc / 4},
                    {"mlflow.parentRunId": pid, "method": method, "dataset": "cifar100"},
                )
            )
            t += 1
    return sweeps, runs


def write(folder: Path = FOLDER) -> Path:
    sweeps, runs = records()
    return write_hand_export(folder, EXPERIMENT, sweeps, runs)


if __name__ == "__main__":
    print(write())
