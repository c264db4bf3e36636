"""The bad-input survey of issue #14 as a table: every bad input to an entry point ends in one clear
message (naming the input and the fix) and exit code 2, before anything is written; no traceback,
nothing silently accepted."""

import pytest

from pah_core.train import main as train_main
from tests.helpers import new_mlflow_store

BASE = [
    "--config",
    "configs/smoke.yaml",
    "schedule.max_tasks=1",
    "data.train_per_class=5",
    "data.test_per_class=2",
]

# (overrides or flags, message fragment)
TRAIN_CASES = [
    (["run.device=tpu"], "run.device = 'tpu' is not allowed: auto, cpu, cuda or cuda:N"),
    (["run.device=cuda:x"], "run.device = 'cuda:x' is not allowed"),
    (["run.seed=-1"], "run.seed = -1 is not allowed: an integer from 0 to 2**32 - 1"),
    (["run.seed=4294967296"], "run.seed = 4294967296 is not allowed"),
    (["optim.lr_backbone=inf"], "optim.lr_backbone = inf is not allowed: a finite number"),
    (["optim.lr_hypernet=nan"], "optim.lr_hypernet = nan is not allowed: a finite number"),
    (["method.pah.temperature=inf"], "method.pah.temperature = inf is not allowed: a finite"),
    (["method.lwf.temperature=.inf"], "method.lwf.temperature = inf is not allowed: a finite"),
    (["method.ewc.lambda_ewc=-.inf"], "method.ewc.lambda_ewc = -inf is not allowed: a finite"),
    (["optim.weight_decay=-1"], "optim.weight_decay = -1.0 is not allowed"),
    (["schedule.max_tasks=20"], "schedule.max_tasks = 20 is not allowed: an integer from 1 to"),
    (["data.test_per_class=101"], "data.test_per_class = 101 is not allowed: at most 100"),
    (["data.train_per_class=501"], "data.train_per_class = 501 is not allowed: at most 500"),
    (["method.name="], "method.name = '' is not allowed: one of"),
    (["data.n_tasks=0"], "data.n_tasks = 0 is not allowed"),
    (["data.n_tasks=7"], "a divisor of cifar100's 100 classes"),
    (["model.hyper_widht=4"], "did you mean 'model.hyper_width'"),
    (["model.hyper_width=1e9"], "model.hyper_width = '1e9' is not allowed: an integer"),
    (["model.prototype_size=40"], "model.prototype_size = 40 is not allowed"),
    (["model.pretrained_path=/x.pth"], "only with model.pretrained=true"),
    (["optim.batch_size=0"], "optim.batch_size = 0 is not allowed"),
    (["model.hyper_width"], "is not of the form key=value"),
    # issue #26
    (["run.threads=1000000"], "run.threads = 1000000 is not allowed: an integer from 1 to 1024"),
    (["run.threads=0"], "run.threads = 0 is not allowed"),
    (["model.hyper_width=*a"], "uses YAML anchors or aliases"),
    (["model.hyper_width=[1,"], "is not valid YAML"),
]


@pytest.mark.parametrize(("args", "message"), TRAIN_CASES, ids=[c[0][0] for c in TRAIN_CASES])
def test_train_cli_bad_input(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code = train_main(["--out", str(out), *BASE, *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()  # nothing written


def test_cuda_without_a_gpu_is_a_message(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code = train_main(["--out", str(tmp_path / "r"), *BASE, "run.device=cuda"])
    err = capsys.readouterr().err
    assert code == 1 and "CUDA is not available here: use run.device=auto or cpu" in err


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, capsys, monkeypatch):
    """0.7 KB of nested aliases expand to about a gigabyte (9 levels of 10): refused unexpanded."""
    import time

    import yaml

    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 1000

    def no_expansion(*args, **kwargs):
        raise AssertionError("the aliases were expanded")

    monkeypatch.setattr(yaml, "safe_load", no_expansion)
    started = time.perf_counter()
    code = train_main(["--out", str(tmp_path / "r"), "--config", str(bomb)])
    err = capsys.readouterr().err
    assert code == 2 and "bomb.yaml' uses YAML anchors or aliases" in err, err
    assert time.perf_counter() - started < 5
    assert not (tmp_path / "r").exists()


def test_yaml_that_is_not_a_mapping(tmp_path, capsys):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    code = train_main(["--out", str(tmp_path / "r"), "--config", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "list.yaml" in err and "must be a mapping" in err


# -- sweeps and analysis ---------------------------------------------------------------------------
# Each case: argv (with {tmp} and {http} filled in by the workspace below), message fragment. All of
# them fail before Ray starts (a call to start it fails the test), so the tables run in seconds;
# none writes a sweep folder or creates the MLflow store (so no parent run either).

SWEEP_CASES = [
    (["--num-samples", "0"], "argument --num-samples: 0 is not allowed: an integer, 1 or more"),
    (["--num-samples", "-1"], "argument --num-samples: -1 is not allowed"),
    (["--max-concurrent", "0"], "argument --max-concurrent: 0 is not allowed"),
    (["--max-concurrent", "-2"], "argument --max-concurrent: -2 is not allowed"),
    (["--grace-tasks", "0"], "argument --grace-tasks: 0 is not allowed"),
    (["--grace-tasks", "99"], "--grace-tasks 99: a trial runs 4 task(s), so use 1 to 4"),
    (["--cpus-per-worker", "0"], "argument --cpus-per-worker: 0 is not allowed: a number above 0"),
    (["--cpus-per-worker", "nan"], "argument --cpus-per-worker: nan is not allowed"),
    (["--gpus-per-worker", "-1"], "argument --gpus-per-worker: -1 is not allowed: a number, 0 or"),
    (["--workers-per-trial", "0"], "argument --workers-per-trial: 0 is not allowed"),
    (
        ["--concurrency", "2y1"],
        "argument --concurrency: '2y1' is not allowed: auto, or CELLSxTHREADS",
    ),
    (
        ["--concurrency", "1x2", "--cpus-per-worker", "2"],
        "--concurrency 1x2 gives each trial one worker with THREADS CPUs",
    ),
    (["--points", "{tmp}/missing.json"], "missing.json: no such file"),
    (["--points", "{tmp}/bad.json"], "bad.json: not valid JSON"),
    (["--points", "{tmp}/object.json"], "expected a JSON list of {config key: value} objects"),
    (["--points", "{tmp}/ints.json"], "expected a JSON list of {config key: value} objects"),
    (["--points", "{tmp}/unknown.json"], "['model.nope'] are not searched keys"),
    (["--points", "{tmp}/badvalue.json"], "model.prototype_size = 40 is not allowed"),
    (["--storage", "{tmp}/a_file"], "a_file is a file: pass a folder (or an s3:// URI)"),
    (["--mlflow-uri", "file:///tmp/mlruns"], "'file:///tmp/mlruns' is not supported"),
    (["--mlflow-uri", "{tmp}/mlruns"], "mlruns is a folder, not an MLflow sqlite file"),
    (["--mlflow-uri", "{tmp}/text.db"], "text.db is not an SQLite database"),
    (["--mlflow-uri", "{http}"], "no MLflow server answers at http://127.0.0.1:"),
    (
        ["--data-root", "{tmp}/nodata", "--set", "data.download=false"],
        "CIFAR-100 not found: expected",
    ),
    (["--resume", "--name", "never"], "--resume: no sweep 'never' in"),
    (
        ["--resume", "--name", "old", "--set", "model.hyper_width=32"],
        "--resume: sweep 'old' was started with other config overrides (--set): "
        "model.hyper_width = 64 then, 32 now",
    ),
    (["--resume", "--name", "old", "--preset", "paper"], "was started with preset 'smoke'"),
    (
        ["--resume", "--name", "tuned", "--set", "model.hyper_width=64", "--ray-train", "always"],
        "--resume: sweep 'tuned' ran its trials under the 'tune' runner, and these flags give "
        "'train' (--workers-per-trial, --ray-train)",
    ),
    (["--ray-train", "never"], "argument --ray-train: invalid choice: 'never'"),
    (["--name", "old"], "sweep 'old' already exists in"),
    (["--name", "a'b\"c"], "holds both kinds of quote"),
    # issue #26: names that leave --storage or break outputs; damaged or foreign sweep state;
    # network addresses that do not answer (each a clear error within seconds).
    (["--name", "../escape"], "--name '../escape': a sweep name is one folder name"),
    (["--name", ".."], "--name '..': a sweep name is one folder name"),
    (["--name", "a\nb"], "--name 'a\\nb': a sweep name is one folder name"),
    (["--resume", "--name", "broken"], "pah_sweep.json is damaged (Expecting"),
    (["--resume", "--name", "listed"], "pah_sweep.json is damaged (a JSON list, not an object)"),
    (
        ["--resume", "--name", "old", "--set", "model.hyper_width=64"],
        "--resume: no MLflow store at",
    ),
    (["--resume", "--name", "x", "--storage", "s3://bucket/r"], "cannot be verified before Tune"),
    (["--address", "{deadray}"], "no Ray cluster answers at --address 127.0.0.1:"),
    (["--address", "nowhere"], "--address 'nowhere' is not a Ray address"),
    (["--mlflow-uri", "{http503}"], "answers 503 (Service Unavailable): it is not serving"),
    (["--mlflow-uri", "{stall}"], "no MLflow server answers at http://127.0.0.1:"),
]
BASELINES_CASES = [
    (["--methods", ""], "--methods '': name at least one, from"),
    (["--methods", "pah,nope"], "--methods: unknown ['nope']"),
    (["--seeds", ""], "--seeds '': give a comma-separated list of integers"),
    (["--max-concurrent", "0"], "argument --max-concurrent: 0 is not allowed"),
    (["--mlflow-uri", "{tmp}/text.db"], "text.db is not an SQLite database"),
    (["--name", "a'b\"c"], "holds both kinds of quote"),
    (["--name", "x/y"], "--name 'x/y': a sweep name is one folder name"),
    (["--address", "{deadray}"], "no Ray cluster answers at --address"),
    (["--mlflow-uri", "{http503}"], "answers 503"),
]
ABLATION_CASES = [
    (["--variants", ""], "--variants '': name at least one, from"),
    (["--variants", "full,nope"], "--variants: unknown ['nope']"),
    (["--from-sweep", "x", "--mlflow-uri", "file:///tmp/m"], "'file:///tmp/m' is not supported"),
    (["--from-sweep", "x", "--mlflow-uri", "{http}"], "no MLflow server answers at"),
    (["--gpus-per-worker", "-0.5"], "argument --gpus-per-worker: -0.5 is not allowed"),
    (["--from-sweep", "x", "--mlflow-uri", "{http503}"], "answers 503"),
    (["--address", "{deadray}"], "no Ray cluster answers at --address"),
]
REPRODUCE_CASES = [
    (["--parts", ""], "--parts '': name at least one, from main"),
    (["--seeds", "x"], "--seeds 'x': give a comma-separated list of integers"),
    (["--max-concurrent", "0"], "argument --max-concurrent: 0 is not allowed"),
    (["--cpus-per-worker", "-1"], "argument --cpus-per-worker: -1 is not allowed"),
    (["--mlflow-uri", "file:///tmp/mlruns"], "'file:///tmp/mlruns' is not supported"),
    (["--mlflow-uri", "{http}"], "no MLflow server answers at"),
    (["--mlflow-uri", "{tmp}/text.db"], "text.db is not an SQLite database"),
    (["--set", "model.hyper_widht=4"], "did you mean 'model.hyper_width'"),
    (
        ["--data-root", "{tmp}/nodata", "--set", "data.download=false"],
        "CIFAR-100 not found: expected",
    ),
]
COMPARE_CASES = [
    (["--protocols", ""], "--protocols '': name at least one, from end_of_training"),
    (["--protocols", "first_task,nope"], "--protocols: unknown ['nope']"),
    (["--num-samples", "0"], "argument --num-samples: 0 is not allowed"),
    (["--final-seeds", "-1"], "argument --final-seeds: -1 is not allowed"),
    (["--set", "model.hyper_widht=4"], "did you mean 'model.hyper_width'"),
    (["--set", "model.hyper_width"], "is not of the form key=value"),
]
ANALYSIS_CASES = [
    (["--experiment", "e", "--mlflow-uri", "{http}"], "no MLflow server answers at"),
    (["--experiment", "e", "--mlflow-uri", "{http503}"], "answers 503"),
    (["--experiment", "e", "--mlflow-uri", "{stall}"], "no MLflow server answers at"),
    (["--experiment", "e", "--mlflow-uri", "{tmp}/text.db"], "text.db is not an SQLite database"),
    (["--experiment", "e", "--mlflow-uri", "file:///tmp/mlruns"], "is not supported"),
    (["--experiment", "e", "--mlflow-uri", "{tmp}/mlruns"], "mlruns is a folder"),
    (["--experiment", "e", "--mlflow-uri", "{tmp}/absent.db"], "no MLflow store at"),
    (["--experiment", "nope", "--mlflow-uri", "{store}"], "no experiment 'nope' at"),
    (["--from-export", "{tmp}/no_export"], "no export at"),
]


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> str:
    """An MLflow store with no experiment of ours (created once: a new store's schema takes seconds)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    new_mlflow_store(path)
    return str(path)


@pytest.fixture(scope="module")
def bad_servers():
    """On 127.0.0.1: an HTTP server that answers 503 to everything, and one that accepts
    connections and never answers (a stalled server or proxy)."""
    import http.server
    import socket
    import threading

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(503)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    down = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=down.serve_forever, daemon=True).start()
    stall = socket.socket()
    stall.bind(("127.0.0.1", 0))
    stall.listen(16)  # accepted by the kernel, never read or answered
    yield {
        "http503": f"http://127.0.0.1:{down.server_address[1]}",
        "stall": f"http://127.0.0.1:{stall.getsockname()[1]}",
    }
    down.shutdown()
    stall.close()


@pytest.fixture
def workspace(tmp_path, monkeypatch, empty_store, bad_servers):
    """Bad files to point flags at, earlier sweeps' folders (name "old": started with --set
    model.hyper_width=64 and the smoke preset; "tuned": the same, its trials in Tune's
    processes), a port nothing listens on; and Ray that must not
    start."""
    import json
    import socket

    def no_ray(*args, **kwargs):
        raise AssertionError("a bad input started Ray")

    monkeypatch.setattr("pah_sweep.launch.init_ray", no_ray)
    (tmp_path / "text.db").write_text("not a database\n")
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "object.json").write_text('{"model.hyper_width": 16}')
    (tmp_path / "ints.json").write_text("[1, 2]")
    (tmp_path / "unknown.json").write_text('[{"model.nope": 1}]')
    (tmp_path / "badvalue.json").write_text('[{"model.prototype_size": 40}]')
    old = tmp_path / "ray" / "old"
    old.mkdir(parents=True)
    state = {
        "parent_run_id": "0" * 32,
        "mlflow_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "experiment": "pah-cifar100",
        "dataset": "cifar100",
        "preset": "smoke",
        "objectives": ["acc"],
        "kind": "search",
        "overrides": {"model.hyper_width": 64},
    }
    (old / "pah_sweep.json").write_text(json.dumps(state))
    tuned = tmp_path / "ray" / "tuned"  # one whose trials trained in Tune's own processes
    tuned.mkdir()
    (tuned / "pah_sweep.json").write_text(json.dumps({**state, "trial_runner": "tune"}))
    for name, text in (("broken", '{"parent_run_id": '), ("listed", "[1, 2]")):
        (tmp_path / "ray" / name).mkdir()
        (tmp_path / "ray" / name / "pah_sweep.json").write_text(text)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        http = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing answers there
    return {
        "tmp": str(tmp_path),
        "http": http,
        "deadray": http.removeprefix("http://"),
        "store": empty_store,
        **bad_servers,
    }


def _fill(argv: list[str], ws: dict[str, str]) -> list[str]:
    for key, value in ws.items():
        argv = [a.replace(f"{{{key}}}", value) for a in argv]
    return argv


def _exit_code(main, argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return e.code


def _check_nothing_written(tmp) -> None:
    from pathlib import Path

    tmp = Path(tmp)
    # No new folder, and nothing new in the earlier sweeps' (a lock taken is released again).
    assert sorted(p.name for p in (tmp / "ray").iterdir()) == ["broken", "listed", "old", "tuned"]
    assert [p.name for p in (tmp / "ray" / "old").iterdir()] == ["pah_sweep.json"]
    assert not (tmp / "mlflow.db").exists()  # no store, so no parent run either


def _sweep_argv(ws, argv, name="s"):
    store = ["--storage", f"{ws['tmp']}/ray", "--mlflow-uri", f"{ws['tmp']}/mlflow.db"]
    return [*store, *([] if "--name" in argv else ["--name", name]), *_fill(argv, ws)]


@pytest.mark.parametrize(
    ("argv", "message"), SWEEP_CASES, ids=[" ".join(c[0]) for c in SWEEP_CASES]
)
def test_search_bad_input(workspace, capsys, argv, message):
    from pah_sweep.search import main

    code = _exit_code(lambda a: main("cifar100", a), _sweep_argv(workspace, argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    _check_nothing_written(workspace["tmp"])


@pytest.mark.parametrize(
    ("argv", "message"), BASELINES_CASES, ids=[" ".join(c[0]) for c in BASELINES_CASES]
)
def test_baselines_bad_input(workspace, capsys, argv, message):
    from sweeps.baselines import main

    code = _exit_code(main, _sweep_argv(workspace, argv))
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    _check_nothing_written(workspace["tmp"])


@pytest.mark.parametrize(
    ("argv", "message"), ABLATION_CASES, ids=[" ".join(c[0]) for c in ABLATION_CASES]
)
def test_ablation_bad_input(workspace, capsys, argv, message):
    from sweeps.ablation import main

    code = _exit_code(main, _sweep_argv(workspace, argv))
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    _check_nothing_written(workspace["tmp"])


@pytest.mark.parametrize(
    ("argv", "message"), REPRODUCE_CASES, ids=[" ".join(c[0]) for c in REPRODUCE_CASES]
)
def test_reproduce_bad_input(workspace, capsys, argv, message):
    from pathlib import Path

    from sweeps.reproduce import main

    work = Path(workspace["tmp"]) / "work"
    base = ["--protocol", "tiny", "--workdir", str(work), "--out", f"{workspace['tmp']}/out"]
    code = _exit_code(main, [*base, *_fill(argv, workspace)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    # No sweep folder, no MLflow store. (A missing dataset is found after reproduce.py has
    # written its study.json: the order of its own steps is unchanged here.)
    assert not (work / "ray").exists() and not (work / "mlflow.db").exists()
    assert not (Path(workspace["tmp"]) / "out").exists()


@pytest.mark.parametrize(
    ("argv", "message"), COMPARE_CASES, ids=[" ".join(c[0]) for c in COMPARE_CASES]
)
def test_compare_protocols_bad_input(workspace, capsys, argv, message):
    from pathlib import Path

    from sweeps.compare_protocols import main

    work, out = Path(workspace["tmp"]) / "work", Path(workspace["tmp"]) / "out"
    code = _exit_code(main, ["--workdir", str(work), "--out", str(out), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (work / "ray").exists() and not (work / "mlflow.db").exists()
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"), ANALYSIS_CASES, ids=[" ".join(c[0]) for c in ANALYSIS_CASES]
)
def test_analysis_bad_input(workspace, capsys, argv, message):
    import time
    from pathlib import Path

    from analysis.paper_tables import main

    out = Path(workspace["tmp"]) / "report"
    started = time.perf_counter()
    code = _exit_code(main, [*_fill(argv, workspace), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert time.perf_counter() - started < 20  # not MLflow's minutes of retries
    assert not out.exists()
    assert not (Path(workspace["tmp"]) / "absent.db").exists()


# -- MLflow filter strings: names with quotes ----------------------------------------------------


def test_filter_string_quoting():
    from pah_core.tracking import TrackingError, quote

    assert quote("plain") == "'plain'"
    assert quote("it's") == '"it\'s"'
    assert quote('say "hi"') == "'say \"hi\"'"
    with pytest.raises(TrackingError, match="both kinds of quote"):
        quote('it\'s "x"')


def test_a_sweep_named_its_is_found_in_mlflow(tmp_path):
    """The places that search MLflow by a sweep name: the parent run of an earlier sweep
    (ablation.py --from-sweep) and a trial's run by its key (a resumed trial, the sweep's end)."""
    from mlflow.tracking import MlflowClient

    from pah_core.mlflow_reporter import RUN_KEY_TAG, find_run
    from pah_sweep.record import best_config_of_sweep

    uri = new_mlflow_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    for name in ("its", "it's"):  # a decoy first: the quoted search must tell them apart
        parent = client.create_run(exp, tags={"sweep": name, "pah.role": "sweep"}).info.run_id
        client.log_dict(parent, {"config": {"model.hyper_width": len(name)}}, "best_config.json")
        client.create_run(exp, tags={RUN_KEY_TAG: f"{name}/trial_1", "sweep": name})
    assert best_config_of_sweep(uri, "e", "it's") == {"model.hyper_width": 4}
    assert find_run(client, exp, "it's/trial_1").data.tags["sweep"] == "it's"
    assert find_run(client, exp, "it's/trial_2") is None


# -- network deadlines (issue #26) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({"RAY_ADDRESS": "{deadray}"}, [], "no Ray cluster answers at RAY_ADDRESS 127.0.0.1:"),
        ({}, ["--mlflow-uri", "{http503}"], "the MLflow server at http://127.0.0.1:"),
        ({}, ["--mlflow-uri", "{stall}"], "timed out"),
    ],
    ids=["RAY_ADDRESS dead", "MLflow 503", "MLflow stalled"],
)
def test_an_address_that_does_not_answer_fails_within_seconds(
    workspace, capsys, monkeypatch, env, argv, message
):
    import time

    from pah_sweep.search import main

    for key, value in env.items():
        monkeypatch.setenv(key, _fill([value], workspace)[0])
    started = time.perf_counter()
    code = _exit_code(lambda a: main("cifar100", a), _sweep_argv(workspace, argv))
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert seconds < 30, seconds
    _check_nothing_written(workspace["tmp"])
