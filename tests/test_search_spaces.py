"""Each method owns its search space (in its file under pah_core/methods/), and the sweep reads it
from there; a protocol never searches what it cannot identify, and ASHA waits until every searched
parameter has acted."""

import pytest

from pah_core.methods import base, registered_methods
from pah_core.search_space import Param, loguniform
from sweeps.cli import SweepError
from sweeps.search import check_grace
from sweeps.space import method_space, published_defaults, searchable


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
