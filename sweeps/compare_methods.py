"""A fair comparison of continual-learning methods: every method tuned with the same budget under
one leak-free HPO protocol, then its tuned and its published-default configurations run on the same
fresh seeds of the same evaluation stream, beside untuned references; then an MLflow-free export
and the tables (per method "default vs tuned", and differences between methods paired by seed).

    python sweeps/compare_methods.py --methods pah,lwf,ewc --references finetune,joint \\
        --num-samples 12 --hpo-protocol first_k --first-k 3 --final-seeds 5     # start
    python sweeps/compare_methods.py ... --resume        # continue: finished sweeps are skipped
    python analysis/paper_tables.py --from-export OUT/export --out OUT      # the tables again

For each method: a search (``sweeps/cifar100_search.py --method M``: the method's own space and
published defaults, Optuna TPE, ASHA at task boundaries, the validation objective), its selection's
final runs (``<name>-<M>-final``), and its published defaults' final runs on the same seeds
(``<name>-<M>-default``). Each reference: final runs of its default config (``<name>-<R>``). Every
sweep has its own MLflow parent run; all carry the tag ``comparison=<name>``. Through a Ray
cluster: ``ray job submit --working-dir . -- python sweeps/compare_methods.py ...`` (the sweeps
join the job's Ray through $RAY_ADDRESS).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from analysis.store import AnalysisError  # noqa: E402
from pah_core.config import ConfigError, load_config  # noqa: E402
from pah_core.methods import registered_methods  # noqa: E402
from pah_core.search_space import Param  # noqa: E402
from pah_sweep import REPO, search  # noqa: E402
from pah_sweep.cli import open_workdir, parse_names, study_arguments  # noqa: E402
from pah_sweep.errors import SweepError  # noqa: E402
from pah_sweep.grid import run_grid  # noqa: E402
from pah_sweep.presets import protocol_overrides  # noqa: E402
from pah_sweep.record import check_tracking_uri_or_default, finished  # noqa: E402
from pah_sweep.search import Selection  # noqa: E402
from pah_sweep.space import method_space  # noqa: E402
from pah_sweep.spec import SearchSpec, from_args  # noqa: E402
from pah_sweep.study import PROTOCOLS  # noqa: E402
from pah_sweep.study_export import (  # noqa: E402
    export_and_report,
    exported_sweep,
    run_steps,
    sweep_done,
)

# The tag that marks every sweep of one comparison, and the role of its final runs.
COMPARISON_TAG = "comparison"
CONFIG_TAG = "comparison_config"  # tuned, default or reference


def study_spec(args: argparse.Namespace, uri: str) -> SearchSpec:
    """What every sweep of the comparison shares: its flags, a --protocol's scale under --set,
    where it records (the study's store and experiment), the "paper" preset (no overrides of its
    own), the tag that marks the comparison."""
    spec = from_args(SearchSpec, args)
    scale = PROTOCOLS[args.protocol].overrides if args.protocol else {}
    return replace(
        spec,
        preset="paper",
        overrides={**scale, **spec.overrides},
        storage=str(Path(args.workdir).resolve() / "ray"),
        mlflow_uri=uri,
        experiment=args.experiment,
        tags={**spec.tags, COMPARISON_TAG: args.name},
    )


def sweep_spec(args: argparse.Namespace, spec: SearchSpec, name: str, role: str) -> SearchSpec:
    """The comparison's spec for its sweep ``name`` of config ``role`` (tuned, default or
    reference); under --resume it resumes the sweep if it started."""
    resume = args.resume and (Path(spec.storage) / name).exists()
    return replace(spec, name=name, resume=resume, tags={**spec.tags, CONFIG_TAG: role})


def exported_selection(args: argparse.Namespace, method: str, sweep: str) -> Selection | None:
    """The choice of ``method``'s search ``sweep`` as the export records it when the search
    finished in an earlier store: its ``best.<key>`` tags typed by the method's space, and the
    trial whose parameters they are. None when the export holds no finished search."""
    record = exported_sweep(args.out, sweep)
    if record is None or record.get("status") != "FINISHED":
        return None
    space = method_space(method)
    tags = record["tags"]
    best = {k.removeprefix("best."): v for k, v in tags.items() if k.startswith("best.")}
    unknown = sorted(set(best) - set(space))
    if not best or unknown:
        raise SweepError(
            f"{sweep}: its export records {'no selection' if not best else f'keys {unknown}'} "
            f"that {method}'s search space does not hold; rerun the search without --resume"
        )
    config = {k: typed(space[k], v) for k, v in best.items()}
    trial = next(
        (
            r["tags"].get("ray_trial_id", "")
            for r in record["runs"]
            if r.get("status") == "FINISHED"
            and all(r["params"].get(k) == v for k, v in best.items())
        ),
        "",
    )
    score = record["metrics"].get("val/best_avg_acc")
    return Selection(
        config,
        {
            "selected_trial": trial,
            "selected_on": tags.get("selected_on", "validation"),
            "selected_val_avg_acc": "" if score is None else f"{score:.6f}",
        },
    )


def typed(param: Param, text: str) -> Any:
    """A searched value back from its tag's text (``str(value)``) by the parameter's kind."""
    if param.kind == "choice":
        matches = [v for v in param.values if str(v) == text]
        if not matches:
            raise SweepError(f"selection {text!r} is not one of the choices {param.values}")
        return matches[0]
    return int(text) if param.kind in ("int", "logint") else float(text)


def tune_method(method: str, args: argparse.Namespace, spec: SearchSpec) -> int | None:
    """The method's search, then (after the export, which then holds its selection) the
    selection's final runs; None when both finished before (--resume): nothing ran."""
    name, uri = f"{args.name}-{method}", spec.mlflow_uri
    if args.resume and sweep_done(uri, args.experiment, args.out, f"{name}-final"):
        print(f"[compare] {method}: tuned, skipped", flush=True)
        return None
    selected = None
    if args.resume and not finished(uri, args.experiment, name):
        selected = exported_selection(args, method, name)
    tuned = replace(sweep_spec(args, spec, name, "tuned"), method=method)
    if selected is None:
        print(f"\n[compare] {method}: search ({spec.num_samples} trials, {spec.hpo_protocol})")
        if (rc := search.run("cifar100", replace(tuned, final_seeds=0))) != 0:
            return rc
        # Exported before its final runs: a study cut off during them keeps the selection.
        if args.out:
            export_and_report(uri, args.experiment, args.out)
            selected = exported_selection(args, method, name)
        tuned = replace(tuned, resume=True)
    if selected is not None:
        print(f"\n[compare] {method}: final runs of the search's selection {selected.config}")
    return search.run("cifar100", tuned, selected)


def default_runs(
    method: str, role: str, args: argparse.Namespace, spec: SearchSpec, seeds: list[int]
) -> int | None:
    """The method's published defaults (its config's) on the final seeds and evaluation stream;
    None when they finished before (--resume): nothing ran."""
    name = f"{args.name}-{method}" + ("-default" if role == "default" else "")
    if args.resume and sweep_done(spec.mlflow_uri, args.experiment, args.out, name):
        print(f"[compare] {method}: {role} runs finished, skipped", flush=True)
        return None
    print(f"\n[compare] {method}: {role} config on seeds {seeds}", flush=True)
    _, final_overrides = protocol_overrides(spec.hpo_protocol, spec.first_k)
    return run_grid(
        "cifar100",
        sweep_spec(args, spec, name, role),
        "final",
        {role: {}},
        seeds,
        base_overrides={"method.name": method},
        tags={"method": method},
        protocol_overrides=final_overrides,
        objectives=spec.objectives,
    )


def final_seeds(spec: SearchSpec) -> list[int]:
    """The seeds of every final run: those ``search.run_final`` gives a selection (after the
    trials' seed), so that tuned, default and reference runs pair seed by seed."""
    base = load_config(REPO / "configs" / "cifar100_pah.yaml", spec.overrides).run.seed
    return list(range(base + 1, base + 1 + spec.final_seeds))


def parser() -> argparse.ArgumentParser:
    methods = sorted(registered_methods())
    p = argparse.ArgumentParser(
        prog="python sweeps/compare_methods.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--methods", default="pah,lwf,ewc", help=f"tuned, from: {', '.join(methods)}")
    p.add_argument(
        "--references", default="finetune,joint", help="untuned references ('' for none)"
    )
    p.add_argument("--name", default="compare", help="the comparison's name (sweep name prefix)")
    p.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        help="the data, backbone and schedule of a reproduction protocol (pah_sweep/study.py), under "
        "--set; default: the shipped config with --set",
    )
    # Every other search flag (the resources, --set, --objectives, ...) goes to every sweep.
    return study_arguments(
        p,
        "runs/compare",
        "compare-methods",
        None,
        SearchSpec,
        exclude=("method", "points", "grace_tasks"),
        defaults={"num_samples": 12, "hpo_protocol": "first_k", "final_seeds": 5},
        helps={
            "num_samples": "trials per method (default 12)",
            "startup_trials": "TPE's random trials (see the search)",
            "hpo_protocol": "how each search spends its trials (default first_k; see the search)",
            "first_k": "first_k: the tuning tasks (3)",
            "final_seeds": "final runs per config (5)",
            "seed": "the Optuna sampler's seed (default 0)",
            "max_concurrent": "trials in flight (default: what fits)",
        },
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.perf_counter()
    workdir = Path(args.workdir).resolve()
    uri = check_tracking_uri_or_default(str(workdir / "mlflow.db"))
    try:
        spec = study_spec(args, uri)
        names = sorted(registered_methods())
        methods = parse_names(args.methods, names, "--methods")
        refs = parse_names(args.references, names, "--references") if args.references else []
        for m in methods:
            method_space(m)  # every tuned method can be searched, before anything starts
        seeds = final_seeds(spec)
        if not args.report_only:
            open_workdir(workdir, args.resume)
            steps = []
            for m in methods:
                steps.append(lambda m=m: tune_method(m, args, spec))
                steps.append(lambda m=m: default_runs(m, "default", args, spec, seeds))
            for r in refs:
                steps.append(lambda r=r: default_runs(r, "reference", args, spec, seeds))
            if (rc := run_steps(steps, uri, args.experiment, args.out)) != 0:
                return rc
        elif args.out:
            export_and_report(uri, args.experiment, args.out)
    except (SweepError, ConfigError, AnalysisError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[compare] done in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
