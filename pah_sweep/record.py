"""What a sweep records about itself, and where: its folder under ``--storage`` with the state file
``pah_sweep.json``, and its MLflow parent run (one per sweep; each trial's run is a child of it).

The state file names the parent run and the settings a ``--resume`` must keep. The parent run gets
the sweep's config at the start; its trials, best config and Pareto set at the end, or FAILED with
the error when the sweep fails after it was created.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from pah_core.tracking import (
    TrackingError,
    check_store,
    check_tracking_uri,
    default_tracking_uri,
    load_run_json,
    quote,
)

from .errors import SweepError

SWEEP_STATE = "pah_sweep.json"


def check_tracking_uri_or_default(uri: str | None) -> str:
    """--mlflow-uri (default: $MLFLOW_TRACKING_URI, else ./mlflow.db), absolute, its store usable:
    an sqlite file (or none yet) or a server that answers."""
    try:
        return check_store(check_tracking_uri(uri) if uri else default_tracking_uri(), False)
    except TrackingError as e:
        raise SweepError(f"--mlflow-uri: {e}") from None


def absolute_storage(storage: str) -> str:
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())


def check_name(name: str) -> str:
    """A sweep name is one folder under --storage (never a path out of it), one line of printable
    text (it becomes run names, file names, table cells), and is searched for in MLflow filter
    strings, quoted (tracking.quote)."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or not name.isprintable():
        raise SweepError(
            f"--name {name!r}: a sweep name is one folder name of printable characters (no /, "
            "no control characters or newlines, not . or ..): choose another"
        )
    try:
        quote(name)
    except TrackingError as e:
        raise SweepError(f"--name: {e}") from None
    return name


@dataclass
class SweepState:
    """pah_sweep.json: the parent run, and what the sweep was started with."""

    mlflow_uri: str
    experiment: str
    dataset: str
    preset: str
    objectives: list[str]
    kind: str
    # The overrides of the base config (--set, a grid's base overrides); None in the state of a
    # sweep started before they were recorded, and then not checked on resume.
    overrides: dict[str, Any] | None = None
    # --config as given ("": the dataset's shipped config; None: not recorded, not checked). Not a
    # resolved path: a job submitted again (ray job submit --working-dir) runs from another folder.
    config: str | None = None
    # Where the trials' engines run (trial.trial_runner): their checkpoints are Tune's or Ray
    # Train's, and a resumed trial finds only its own kind. None: a sweep started before it was
    # recorded, whose trials all ran under Ray Train.
    trial_runner: str | None = None
    parent_run_id: str = ""  # known once the parent run exists

    @classmethod
    def read(cls, sweep_dir: Path) -> SweepState:
        """The state file, or a SweepError that says it is damaged (never a traceback)."""
        path = sweep_dir / SWEEP_STATE
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            state = cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
            state.check_types()
        except (OSError, ValueError, TypeError) as e:
            raise SweepError(
                f"--resume: the sweep's state file {path} is damaged ({e}): restore it from a "
                "backup, or start the sweep again under another --name"
            ) from None
        return state

    def check_types(self) -> None:
        """TypeError naming the first field of the wrong type (a hand-edited or damaged file)."""
        texts = ("mlflow_uri", "experiment", "dataset", "preset", "kind", "parent_run_id")
        for name in texts:
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} is not a string")
        if not isinstance(self.overrides, dict | None):
            raise TypeError("overrides is not an object")
        objectives = self.objectives
        if not (isinstance(objectives, list) and all(isinstance(o, str) for o in objectives)):
            raise TypeError("objectives is not a list of names")

    def write(self, sweep_dir: Path) -> None:
        (sweep_dir / SWEEP_STATE).write_text(json.dumps(asdict(self), indent=2))

    def check_resume(self, stored: SweepState, name: str) -> None:
        """A resume keeps every setting the sweep was started with: Tune restores the old trials,
        and the trials still to start would get the new settings, two sweeps in one."""
        now = json.loads(json.dumps(asdict(self)))  # as the stored one went through JSON
        for key, then in asdict(stored).items():
            if key == "parent_run_id" or then is None or then == now[key]:
                continue
            if key == "overrides":
                keys = sorted(k for k in {*then, *now[key]} if then.get(k) != now[key].get(k))
                what = ", ".join(
                    f"{k} = {_shown(then, k)} then, {_shown(now[key], k)} now" for k in keys
                )
                raise SweepError(
                    f"--resume: sweep {name!r} was started with other config overrides (--set): "
                    f"{what}. Pass the same, or start another --name"
                )
            if key == "trial_runner":
                raise SweepError(
                    f"--resume: sweep {name!r} ran its trials under the {then!r} runner, and these "
                    f"flags give {now[key]!r} (--workers-per-trial, --ray-train): a trial resumes "
                    "only from its own runner's checkpoints. Pass the same flags, or start another "
                    "--name"
                )
            shown = [repr(v) if v != "" else "(the shipped one)" for v in (then, now[key])]
            raise SweepError(
                f"--resume: sweep {name!r} was started with {key} {shown[0]}, not {shown[1]}: "
                "pass the same, or start another --name"
            )


def _shown(overrides: dict[str, Any], key: str) -> str:
    return repr(overrides[key]) if key in overrides else "unset"


def mlflow_client(mlflow_uri: str):
    """The one place a sweep opens its MLflow store (mlflow imported late: planning needs none)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=mlflow_uri)


def finished(mlflow_uri: str, experiment: str, sweep: str) -> bool:
    """Whether sweep ``sweep``'s parent run ended FINISHED in the store."""
    client = mlflow_client(mlflow_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return False
    runs = client.search_runs([exp.experiment_id], filter_string=sweep_parent_filter(sweep))
    return any(r.info.status == "FINISHED" for r in runs)


def create_parent_run(
    mlflow_uri: str, experiment: str, name: str, tags: dict[str, str], sweep_config: dict[str, Any]
) -> str:
    """The sweep's parent run, with ``sweep_config.json``; its id."""
    from pah_core.mlflow_reporter import RUN_KEY_TAG, get_or_create_experiment

    client = mlflow_client(mlflow_uri)
    exp_id = get_or_create_experiment(client, experiment)
    tags = {RUN_KEY_TAG: f"{name}/parent", "sweep": name, "pah.role": "sweep", **tags}
    run_id = client.create_run(exp_id, run_name=name, tags=tags).info.run_id
    client.log_dict(run_id, sweep_config, "sweep_config.json")
    return run_id


def check_parent_run(mlflow_uri: str, experiment: str, name: str, run_id: str) -> str:
    """The parent run a resume would reopen, checked to be this sweep's: its tags name this
    sweep, in this experiment (an edited or copied state file could point at another sweep's
    parent, which the resume would then overwrite). Its status."""
    from mlflow.exceptions import MlflowException

    fix = (
        "the state file was edited or copied from another sweep: restore it, or start another "
        "--name"
    )
    if not isinstance(run_id, str) or len(run_id) != 32 or not run_id.isalnum():
        raise SweepError(f"--resume: the state file names no valid parent run ({run_id!r}): {fix}")
    try:
        run = mlflow_client(mlflow_uri).get_run(run_id)
        exp = mlflow_client(mlflow_uri).get_experiment(run.info.experiment_id)
    except MlflowException as e:
        raise SweepError(
            f"--resume: the parent run {run_id} of sweep {name!r} is not in {mlflow_uri} "
            f"({str(e).splitlines()[0][:200]}): {fix}"
        ) from None
    tags = run.data.tags
    owner = tags.get("sweep")
    if tags.get("pah.role") != "sweep" or owner != name or exp.name != experiment:
        raise SweepError(
            f"--resume: the state file of sweep {name!r} names parent run {run_id}, which is "
            f"{'the parent of sweep ' + repr(owner) if owner else 'not a sweep parent'} "
            f"in experiment {exp.name!r}: {fix}"
        )
    return run.info.status


def reopen_parent_run(mlflow_uri: str, run_id: str) -> str:
    """A resumed sweep runs again (its parent may say FAILED from an earlier failure); the
    status it had, which a failed resume puts back."""
    client = mlflow_client(mlflow_uri)
    before = client.get_run(run_id).info.status
    client.update_run(run_id, status="RUNNING")
    return before


def fail_parent_run(
    mlflow_uri: str, run_id: str, error: BaseException, status: str = "FAILED"
) -> None:
    """``status``: FAILED, KILLED (interrupted), or the status a resumed sweep had before this
    resume failed (a finished sweep stays FINISHED; the error is kept in ``pah.resume_error``)."""
    client = mlflow_client(mlflow_uri)
    tag = "error" if status == "FAILED" else "pah.resume_error"
    if status == "KILLED":
        tag = "pah.interrupted"
    client.set_tag(run_id, tag, f"{type(error).__name__}: {error}"[:5000])
    client.set_terminated(run_id, status=status)


def finish_parent_run(
    mlflow_uri: str, parent_run_id: str, summary: dict[str, Any], experiment: str
) -> str:
    """The summary onto the parent run, every trial's run closed, the parent FINISHED (KILLED
    when a grid's trial did not finish: the sweep was interrupted, and ``--resume`` continues it);
    the experiment's id."""
    from pah_core.mlflow_reporter import find_run, get_or_create_experiment

    client = mlflow_client(mlflow_uri)
    client.log_dict(parent_run_id, summary["trials"], "trials.json")
    best = summary["best"]
    if best:
        client.log_dict(parent_run_id, best, "best_config.json")
        client.log_metric(parent_run_id, "best_avg_acc", float(best["avg_acc"]))
        client.log_metric(parent_run_id, "best_forgetting", float(best["forgetting"]))
        if best.get("val_avg_acc") is not None:
            client.log_metric(parent_run_id, "val/best_avg_acc", float(best["val_avg_acc"]))
        client.set_tag(parent_run_id, "selected_on", summary.get("selected_on", "test"))
        for k, v in best["config"].items():
            client.set_tag(parent_run_id, f"best.{k}", str(v))
    if summary["pareto"]:
        client.log_dict(parent_run_id, summary["pareto"], "pareto.json")
        client.log_metric(parent_run_id, "pareto_size", float(len(summary["pareto"])))
    client.log_metric(parent_run_id, "trials_failed", float(len(summary["failures"])))
    # The compute the sweep spent (what HPO protocols are compared on): tasks trained over all
    # trials, and the trials' wall-clock seconds summed.
    trials = summary["trials"]
    client.log_metric(
        parent_run_id, "compute/trial_tasks", float(sum(t["tasks_done"] for t in trials))
    )
    client.log_metric(
        parent_run_id, "compute/trial_seconds", float(sum(t["seconds"] for t in trials))
    )
    # Trials that ASHA stopped, that a Ctrl-C interrupted (a grid's "not finished") or that
    # crashed before logging their end still say RUNNING: close them, saying which.
    exp_id = get_or_create_experiment(client, experiment)
    sweep = client.get_run(parent_run_id).data.tags.get("sweep")
    for t in summary["trials"]:
        run = find_run(client, exp_id, f"{sweep}/{t['trial']}")
        if run is not None and run.info.status == "RUNNING":
            if t["status"] == "error":
                client.set_tag(run.info.run_id, "error", t.get("error", "")[:5000])
            elif t["status"] == "not finished":
                client.set_tag(run.info.run_id, "pah.interrupted", "true")
            else:
                client.set_tag(run.info.run_id, "pah.stopped_early", "asha")
            client.set_terminated(
                run.info.run_id, status="FAILED" if t["status"] == "error" else "KILLED"
            )
    close_lost_trials(client, exp_id, parent_run_id, {t["trial"] for t in summary["trials"]})
    interrupted = summary.get("interrupted") or any(
        t["status"] == "not finished" for t in summary["trials"]
    )
    client.set_terminated(parent_run_id, status="KILLED" if interrupted else "FINISHED")
    return exp_id


LOST_TRIAL = (
    "started after the last snapshot Tune took of the sweep, just before its driver died: the "
    "resumed sweep did not know this trial and ran its slot as another"
)


def close_lost_trials(client, exp_id: str, parent_run_id: str, known: set[str]) -> list[str]:
    """Child runs still RUNNING at the sweep's end whose trial Tune does not know: KILLED, tagged
    ``pah.lost_trial`` with why, never left RUNNING; their run ids."""
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.mlflow.parentRunId = {quote(parent_run_id)} "
        "and attributes.status = 'RUNNING'",
        max_results=1000,
    )
    lost = [r for r in runs if r.data.tags.get("ray_trial_id") not in known]
    for run in lost:
        client.set_tag(run.info.run_id, "pah.lost_trial", LOST_TRIAL)
        client.set_terminated(run.info.run_id, status="KILLED")
    return [r.info.run_id for r in lost]


def sweep_parent_filter(sweep: str) -> str:
    """The MLflow filter string that finds the parent run of sweep ``sweep``."""
    return f"tags.sweep = {quote(sweep)} and tags.`pah.role` = 'sweep'"


def best_config_of_sweep(mlflow_uri: str, experiment: str, sweep: str) -> dict[str, Any]:
    """The searched keys of an earlier sweep's best trial (from its parent run's best_config.json)."""
    client = mlflow_client(mlflow_uri)
    exp = client.get_experiment_by_name(experiment)
    try:
        runs = (
            []
            if exp is None
            else client.search_runs(
                [exp.experiment_id], filter_string=sweep_parent_filter(sweep), max_results=1
            )
        )
    except TrackingError as e:
        raise SweepError(f"--from-sweep: {e}") from None
    if not runs:
        raise SweepError(
            f"--from-sweep {sweep!r}: no such sweep in experiment {experiment!r} at {mlflow_uri}"
        )
    try:
        best = load_run_json(mlflow_uri, runs[0].info.run_id, "best_config.json")
    except Exception as e:  # noqa: BLE001
        raise SweepError(
            f"--from-sweep {sweep!r}: it has no best_config.json (did it finish a trial?)"
        ) from e
    return dict(best["config"])
