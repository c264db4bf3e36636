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
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from analysis.store import AnalysisError  # noqa: E402
from pah_core.config import ConfigError, load_config  # noqa: E402
from pah_core.methods import registered_methods  # noqa: E402
from pah_core.search_space import Param  # noqa: E402
from pah_core.typed_dicts import parse_overrides  # noqa: E402
from pah_sweep import REPO, search  # noqa: E402
from pah_sweep.cli import (  # noqa: E402
    HPO_PROTOCOLS,
    SweepError,
    count,
    open_workdir,
    parse_names,
    protocol_overrides,
    study_arguments,
)
from pah_sweep.grid import run_grid  # noqa: E402
from pah_sweep.record import check_tracking_uri_or_default, finished  # noqa: E402
from pah_sweep.search import Selection  # noqa: E402
from pah_sweep.space import method_space  # noqa: E402
from pah_sweep.study import PROTOCOLS  # noqa: E402

# The tag that marks every sweep of one comparison, and the role of its final runs.
COMPARISON_TAG = "comparison"
CONFIG_TAG = "comparison_config"  # tuned, default or reference


def sweep_flags(args: argparse.Namespace, storage: Path, uri: str, name: str) -> list[str]:
    """The flags every sweep of the comparison shares: where it records, its scale, its tags."""
    resume = args.resume and (storage / name).exists()
    return [
        "--name", name,
        "--storage", str(storage),
        "--mlflow-uri", uri,
        "--experiment", args.experiment,
        "--preset", "paper",
        "--tag", f"{COMPARISON_TAG}={args.name}",
        *[a for k, v in args.overrides.items() for a in ("--set", f"{k}={_value(v)}")],
        *(["--max-concurrent", str(args.max_concurrent)] if args.max_concurrent else []),
        *(["--resume"] if resume else []),
        *(["--verbose"] if args.verbose else []),
    ]  # fmt: skip


def exported(args: argparse.Namespace, sweep: str) -> dict[str, Any] | None:
    """The record of ``sweep`` in the committed export (--out) of a comparison continued in a new
    store (its first store gone with its machine), with its runs' records under ``runs``."""
    folder = Path(args.out) / "export" if args.out else None
    if folder is None or not (folder / "experiment.json").is_file():
        return None
    for f in (folder / "sweeps").glob("*.json"):
        record = json.loads(f.read_text())
        if record.get("name") == sweep:
            runs = [json.loads(r.read_text()) for r in (folder / "runs").glob("*.json")]
            record["runs"] = [r for r in runs if r.get("tags", {}).get("sweep") == sweep]
            return record
    return None


def done(args: argparse.Namespace, uri: str, sweep: str) -> bool:
    """Whether ``sweep`` finished: in the MLflow store, or in the committed export."""
    if finished(uri, args.experiment, sweep):
        return True
    record = exported(args, sweep)
    return record is not None and record.get("status") == "FINISHED"


def exported_selection(args: argparse.Namespace, method: str, sweep: str) -> Selection | None:
    """The choice of ``method``'s search ``sweep`` as the export records it when the search
    finished in an earlier store: its ``best.<key>`` tags typed by the method's space, and the
    trial whose parameters they are. None when the export holds no finished search."""
    record = exported(args, sweep)
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


def export_and_report(args: argparse.Namespace, uri: str) -> None:
    """The store's sweeps into ``--out``/export, keeping an earlier export's sweeps that this
    store does not hold (a comparison continued in a new store), then the tables from it."""
    from analysis.export import ExportSource, write_export
    from analysis.paper_tables import build
    from analysis.store import MlflowSource, client_for, resolve_uri

    out = Path(args.out)
    client = client_for(resolve_uri(uri))
    if client.get_experiment_by_name(args.experiment) is None:
        print(f"[compare] no run in {uri} yet: the export in {out} is unchanged", flush=True)
        return
    source = MlflowSource(client)
    folder = write_export(source, args.experiment, out / "export", keep_other_sweeps=True)
    report = build(None, out, source=ExportSource(folder))
    print(f"[compare] export in {folder}; report in {out / 'report.md'}", flush=True)
    for w in report.warnings:
        print(f"[compare] warning: {w}")


def _value(v) -> str:
    """A config value as ``--set`` parses it back (YAML): null and true/false, not None/True."""
    return json.dumps(v) if v is None or isinstance(v, bool) else str(v)


def tune_method(method: str, args: argparse.Namespace, storage: Path, uri: str) -> int:
    """The method's search and its selection's final runs (``search.main`` does both)."""
    name = f"{args.name}-{method}"
    if args.resume and done(args, uri, f"{name}-final"):
        print(f"[compare] {method}: tuned, skipped", flush=True)
        return 0
    selected = None
    if args.resume and not finished(uri, args.experiment, name):
        selected = exported_selection(args, method, name)
    if selected is None:
        print(f"\n[compare] {method}: search ({args.num_samples} trials, {args.hpo_protocol})")
    else:
        print(f"\n[compare] {method}: search finished in an earlier store; final runs of its "
              f"selection {selected.config}", flush=True)  # fmt: skip
    return search.main(
        "cifar100",
        [
            *sweep_flags(args, storage, uri, name),
            "--method", method,
            "--tag", f"{CONFIG_TAG}=tuned",
            "--hpo-protocol", args.hpo_protocol,
            "--num-samples", str(args.num_samples),
            "--seed", str(args.seed),
            "--first-k", str(args.first_k),
            "--final-seeds", str(args.final_seeds),
            *(["--startup-trials", str(args.startup_trials)] if args.startup_trials else []),
        ],
        selected,
    )  # fmt: skip


def default_runs(
    method: str, role: str, args: argparse.Namespace, storage: Path, uri: str, seeds: list[int]
) -> int:
    """The method's published defaults (its config's) on the final seeds and evaluation stream."""
    name = f"{args.name}-{method}" + ("-default" if role == "default" else "")
    if args.resume and done(args, uri, name):
        print(f"[compare] {method}: {role} runs finished, skipped", flush=True)
        return 0
    print(f"\n[compare] {method}: {role} config on seeds {seeds}", flush=True)
    flags = search.parser("cifar100").parse_args(
        [*sweep_flags(args, storage, uri, name), "--tag", f"{CONFIG_TAG}={role}"]
    )
    _, final_overrides = protocol_overrides(args.hpo_protocol, args.first_k)
    return run_grid(
        "cifar100",
        flags,
        "final",
        {role: {}},
        seeds,
        base_overrides={"method.name": method},
        tags={"method": method},
        protocol_overrides=final_overrides,
    )


def final_seeds(args: argparse.Namespace) -> list[int]:
    """The seeds of every final run: those ``search.run_final`` gives a selection (after the
    trials' seed), so that tuned, default and reference runs pair seed by seed."""
    base = load_config(REPO / "configs" / "cifar100_pah.yaml", args.overrides).run.seed
    return list(range(base + 1, base + 1 + args.final_seeds))


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
    p.add_argument("--num-samples", type=count, default=12, help="trials per method (default 12)")
    p.add_argument("--startup-trials", type=count, help="TPE's random trials (see the search)")
    p.add_argument("--hpo-protocol", choices=list(HPO_PROTOCOLS), default="first_k")
    p.add_argument("--first-k", type=count, default=3, help="first_k: the tuning tasks (3)")
    p.add_argument("--final-seeds", type=count, default=5, help="final runs per config (5)")
    p.add_argument("--seed", type=int, default=0, help="the Optuna sampler's seed (default 0)")
    p.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        help="the data, backbone and schedule of a reproduction protocol (pah_sweep/study.py), under "
        "--set; default: the shipped config with --set",
    )
    p.add_argument("--max-concurrent", type=count, help="trials in flight (default: what fits)")
    return study_arguments(p, "runs/compare", "compare-methods", None)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.perf_counter()
    workdir = Path(args.workdir).resolve()
    uri = check_tracking_uri_or_default(str(workdir / "mlflow.db"))
    try:
        scale = PROTOCOLS[args.protocol].overrides if args.protocol else {}
        args.overrides = {**scale, **parse_overrides(args.overrides)}
        names = sorted(registered_methods())
        methods = parse_names(args.methods, names, "--methods")
        refs = parse_names(args.references, names, "--references") if args.references else []
        for m in methods:
            method_space(m)  # every tuned method can be searched, before anything starts
        seeds = final_seeds(args)
        if not args.report_only:
            open_workdir(workdir, args.resume)
            storage = workdir / "ray"
            # The export is written after each step: a study cut off (its machine, its session)
            # keeps every finished sweep in --out, from which --resume continues in a new store.
            steps = []
            for m in methods:
                steps.append(lambda m=m: tune_method(m, args, storage, uri))
                steps.append(lambda m=m: default_runs(m, "default", args, storage, uri, seeds))
            for r in refs:
                steps.append(lambda r=r: default_runs(r, "reference", args, storage, uri, seeds))
            for step in steps:
                if (rc := step()) != 0:
                    return rc
                if args.out:
                    export_and_report(args, uri)
        elif args.out:
            export_and_report(args, uri)
    except (SweepError, ConfigError, AnalysisError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[compare] done in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
