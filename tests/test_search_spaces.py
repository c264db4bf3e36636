"""Each method owns its search space (in its file under pah_core/methods/), and the sweep reads it
from there; a protocol never searches what it cannot identify, and ASHA waits until every searched
parameter has acted."""

import pytest

from pah_core.methods import base, registered_methods
from pah_core.search_space import Param, loguniform
from pah_sweep.errors import SweepError
from pah_sweep.search import check_grace
from pah_sweep.space import method_space, published_defaults, searchable


def test_the_sweep_reads_each_space_from_its_method_file():
    methods = registered_methods()
    for name in ("pah", "lwf", "ewc"):
        assert method_space(name) == methods[name].search_space
    assert set(method_space("lwf")) >= {"method.lwf.lambda_kd", "method.lwf.temperature"}
    ewc = method_space("ewc")["method.ewc.lambda_ewc"]
    assert ewc.kind == "loguniform" and ewc.low < 5000 < ewc.high  # FACIL's default inside
    # Published defaults: the options dataclasses' and the config's, one definition.
    assert published_defaults("lwf") == {
        "optim.lr_backbone": 1e-4,
        "optim.lr_head": 1e-3,
        "method.lwf.lambda_kd": 1.0,
        "method.lwf.temperature": 2.0,
    }
    assert published_defaults("pah")["method.pah.lambda_sm"] == 0.5
    for name, cls in methods.items():  # every declared default lies inside its own range
        for key, value in published_defaults(name, list(cls.search_space)).items():
            assert cls.search_space[key].contains(value), (name, key, value)


@pytest.fixture
def new_method():
    """A method with one option and its space, registered as a new file under methods/ would be."""
    from dataclasses import dataclass

    from pah_core.methods.finetune import Finetune

    @dataclass
    class Options:
        beta: float = 0.3

        def check(self) -> None:
            pass

    class Toy(Finetune):
        name = "toy_method"
        summary = "a test's"
        options = Options
        search_space = {"method.toy_method.beta": loguniform(0.01, 1.0, acts_from=2)}

    base.register(Toy)
    yield Toy
    base._REGISTRY.pop("toy_method")


def test_a_new_methods_space_is_its_own_file(new_method):
    assert method_space("toy_method") == {
        "method.toy_method.beta": new_method.search_space["method.toy_method.beta"]
    }
    assert published_defaults("toy_method") == {"method.toy_method.beta": 0.3}
    with pytest.raises(SweepError, match="every parameter of toy_method's space acts only after"):
        searchable("toy_method", 1, "first_task")
    new_method.search_space = {}
    with pytest.raises(SweepError, match="declares no search space"):
        method_space("toy_method")


def test_first_task_fixes_what_acts_only_later_and_says_so(capsys):
    space, fixed = searchable("pah", 1, "first_task")
    assert fixed == {
        "method.pah.lambda_sm": 0.5,
        "method.pah.lambda_sp": 1.0,
        "method.pah.temperature": 2.0,
    }
    assert not set(fixed) & set(space) and "optim.lr_backbone" in space
    out = capsys.readouterr().out
    assert "not searched, fixed at the defaults" in out and "method.pah.lambda_sm=0.5" in out
    space, fixed = searchable("pah", 3, "first_k")
    assert not fixed and len(space) == 10
    with pytest.raises(SweepError, match="not a registered method"):
        method_space("nope")


def test_asha_grace_covers_the_first_task_where_every_searched_parameter_acts():
    pah = method_space("pah")
    assert check_grace(None, pah, 3) == 2
    assert check_grace(None, pah, 1) == 1  # a one-task trial: nothing later to wait for
    assert check_grace(3, pah, 3) == 3
    with pytest.raises(SweepError, match="act only from task 2, so ASHA would stop trials"):
        check_grace(1, pah, 3)
    with pytest.raises(SweepError, match="a trial runs 3 task"):
        check_grace(4, pah, 3)
    lr_only = {"optim.lr_head": Param("loguniform", 1e-4, 1e-2)}
    assert check_grace(None, lr_only, 5) == 1


def test_a_search_report_shows_the_keys_its_method_searched():
    """The sensitivity tables of an LwF search show LwF's own parameters, labelled; a search
    made before sweeps recorded their method (no ``method`` tag) tuned PAH."""
    from analysis.sensitivity import search_keys, sensitivity_tables
    from analysis.store import Experiment, RunRecord

    def record(run_id: str, tags: dict[str, str], params: dict[str, str], acc: float | None = None):
        metrics = {} if acc is None else {"val/final_avg_acc": acc, "val/final_forgetting": 0.1}
        return RunRecord(run_id, run_id, "FINISHED", params, metrics, tags, "")

    lwf = record("p", {"method": "lwf", "sweep": "s"}, {})
    trials = [
        record(f"t{i}", {"mlflow.parentRunId": "p"}, {"method.lwf.lambda_kd": str(lam),
               "method.lwf.temperature": "2.0", "optim.lr_head": "0.001"}, acc)
        for i, (lam, acc) in enumerate([(0.5, 0.4), (1.0, 0.5), (4.0, 0.45)])
    ]  # fmt: skip
    keys = search_keys(lwf, trials)
    assert keys == ["optim.lr_head", "method.lwf.lambda_kd", "method.lwf.temperature"]
    exp = Experiment("sqlite:///x.db", "e", "1", trials, {"p": lwf})
    summary, detail = sensitivity_tables(exp, "s", trials, None, "none", keys)

    def shown(v) -> str:
        return v if isinstance(v, str) else v.shown()

    assert [shown(r["param"]) for r in summary.rows] == ["lr_head", "lambda_kd", "temperature"]
    assert shown(summary.rows[1]["range"]) == "0.5 – 4"
    assert [c.header for c in detail.columns][2:5] == ["lr_head", "lambda_kd", "temperature"]
    pah = [record("u", {}, {"model.hyper_width": "16", "method.pah.lambda_sm": "0.5"})]
    assert search_keys(record("q", {"sweep": "old"}, {}), pah) == [
        "model.hyper_width",
        "method.pah.lambda_sm",
    ]
    _, detail = sensitivity_tables(exp, "old", pah, None, "none", ["model.hyper_width"])
    assert [c.header for c in detail.columns][2] == "HN width"


def test_ablation_variants_are_the_methods_and_tables_group_them_by_the_keys_they_change():
    """PAH's file declares its ablation variants; the ablation sweep offers exactly those, and a
    table's dedicated variants are the ones that change only its keys (no name parsing)."""
    from analysis.ablations import ABLATIONS, variants_changing
    from sweeps.ablation import DEFAULT_VARIANTS, VARIANTS

    pah = registered_methods()["pah"]
    assert VARIANTS is pah.ablation_variants and set(DEFAULT_VARIANTS) <= set(VARIANTS)
    dedicated = {name: variants_changing(spec["params"]) for name, spec in ABLATIONS.items()}
    assert dedicated == {
        "prototype_size": {"proto_5", "proto_10", "proto_16", "proto_20"},
        "prototype_init": {"init_random", "init_resize"},
        "loss_terms": {"ce_only", "ce+sm", "ce+sp"},
    }
