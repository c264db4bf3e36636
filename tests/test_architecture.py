"""The package's shape: methods are discovered and own their options, and no import forms a cycle."""

import ast
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

import pah_core.methods
import pah_core.methods.base
from pah_core.config import ConfigError
from pah_core.engine import Engine
from pah_core.methods import registered_methods
from pah_core.train import main as cli_main
from tests.helpers import tiny_config, tiny_stream

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pah_core"


def test_importing_config_imports_no_method_and_no_torch():
    code = (
        "import json, sys\n"
        "def loaded(): return sorted(m for m in sys.modules if m.split('.')[0] in ('pah_core', 'torch'))\n"
        "import pah_core.config\n"
        "print(json.dumps(loaded()))\n"
        "pah_core.config.load_config()\n"
        "print(json.dumps('pah_core.methods' in loaded()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert json.loads(out[0]) == [
        "pah_core",
        "pah_core.checks",
        "pah_core.config",
        "pah_core.typed_dicts",
    ]
    # Loading a config finds the methods' options: config imports the methods then, late.
    assert json.loads(out[1]) is True


# ---------------------------------------------------------------------------------------------
# The import graph, read from the source


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, type_only: bool) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, module level or inside functions; those under ``if TYPE_CHECKING:``
    only with ``type_only`` (they never run)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_only:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(type_only: bool = False) -> dict[str, set[str]]:
    """pah_core module -> the pah_core modules it imports (running it imports them too)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text()), type_only):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                stem = node.module or ""
                if node.level:  # relative: from the package, up level - 1 packages
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    stem = ".".join([*up, stem] if stem else up)
                targets = [stem, *(f"{stem}.{a.name}" for a in node.names)]
            for target in targets:
                # Importing a.b.c runs the packages a and a.b first, unless the importer is inside them.
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    name = ".".join(parts[:i])
                    if name in files and name != module and not module.startswith(f"{name}."):
                        graph[module].add(name)
    # registered_methods() imports every module of pah_core.methods by scanning the package.
    graph["pah_core.methods"] |= {m for m in files if m.startswith("pah_core.methods.")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_pah_core_imports_form_no_cycle():
    graph = import_graph()
    # The walk sees late imports (inside functions) and the methods package's scan:
    assert "pah_core.engine" in graph["pah_core.train"]
    assert "pah_core.methods" in graph["pah_core.config"]
    assert "pah_core.methods.lwf" in graph["pah_core.methods"]
    # Nothing else imports by name at run time, which the walk would not see.
    dynamic = {_module_name(p) for p in PACKAGE.rglob("*.py") if "import_module(" in p.read_text()}
    assert dynamic == {"pah_core.methods"}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    # The walk finds cycles: counting type-only imports, config's types close one.
    assert "pah_core.config" in find_cycle(import_graph(type_only=True))


def test_libraries_never_import_the_entry_points():
    """The layers: pah_core (no sweep, no analysis), then pah_sweep and analysis, then the scripts
    in sweeps/; a library that imported a script would make the script a library."""
    allowed = {
        "pah_core": {"pah_core"},
        "pah_sweep": {"pah_core", "pah_sweep", "analysis"},
        "analysis": {"pah_core", "pah_sweep", "analysis"},
    }
    ours = {"pah_core", "pah_sweep", "analysis", "sweeps", "tests", "benchmarks"}
    wrong = []
    for package, ok in allowed.items():
        for path in (ROOT / package).rglob("*.py"):
            for node in _imports(ast.parse(path.read_text()), type_only=True):
                if isinstance(node, ast.ImportFrom) and node.level:
                    continue  # relative: inside its own package
                names = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                for top in {n.split(".")[0] for n in names if n}:
                    if top in ours and top not in ok:
                        wrong.append(f"{path.relative_to(ROOT)} imports {top}")
    assert not wrong, wrong
    # The check sees what it should: a script imports the library.
    scripts = (ROOT / "sweeps" / "compare_methods.py").read_text()
    assert "from pah_sweep" in scripts


def test_methods_data_and_models_import_config_for_types_only():
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith(("pah_core.methods", "pah_core.models", "pah_core.data")):
            assert "pah_core.config" not in targets, module


# ---------------------------------------------------------------------------------------------
# Methods own their options


def test_each_method_owns_its_section():
    methods = registered_methods()
    cfg = tiny_config()
    sections = {f.name for f in dataclasses.fields(cfg.method)} - {"name"}
    assert sections == {n for n, cls in methods.items() if cls.options is not None}
    # A run records its own method's section only (Config.to_dict).
    assert {k.split(".")[1] for k in cfg.flat() if k.count(".") == 2} == {"pah"}
    assert {"finetune", "joint"} <= set(methods) - sections  # no options, no section
    for name in sections:
        assert type(getattr(cfg.method, name)) is methods[name].options


TOY = '''"""Toy: fine-tuning with its cross-entropy scaled by alpha; a whole method in one file."""

from __future__ import annotations

from dataclasses import dataclass

from pah_core.checks import require

from .base import register
from .multihead import MultiHeadMethod


@dataclass
class ToyOptions:
    alpha: float = 1.0

    def check(self) -> None:
        require(self.alpha > 0, "method.toy.alpha", self.alpha, "a number > 0")


@register
class Toy(MultiHeadMethod):
    name = "toy"
    label = "Toy"
    summary = "Toy: scaled cross-entropy"
    options = ToyOptions

    def task_loss(self, x, y, t):
        loss, stats = super().task_loss(x, y, t)
        return self.cfg.method.toy.alpha * loss, stats
'''


@pytest.fixture
def toy_file(tmp_path, monkeypatch):
    """tmp_path/toy.py as a module of pah_core.methods (a folder on the package's path), with the
    registry restored afterwards so that no other test sees the toy."""
    (tmp_path / "toy.py").write_text(TOY)
    monkeypatch.setattr(pah_core.methods, "__path__", [*pah_core.methods.__path__, str(tmp_path)])
    monkeypatch.setattr(pah_core.methods.base, "_REGISTRY", dict(pah_core.methods.base._REGISTRY))
    yield tmp_path / "toy.py"
    sys.modules.pop("pah_core.methods.toy", None)
    if hasattr(pah_core.methods, "toy"):
        delattr(pah_core.methods, "toy")


def test_a_new_method_is_one_new_file(toy_file, capsys):
    cfg = tiny_config(
        "method.name=toy",
        "method.toy.alpha=0.5",
        "schedule.epochs_per_task=1",
        "schedule.max_tasks=2",
    )
    assert cfg.method.toy.alpha == 0.5 and cfg.flat()["method.toy.alpha"] == 0.5
    assert tiny_config().method.toy.alpha == 1.0
    with pytest.raises(
        ConfigError, match=r"method\.toy\.alpha = -1\.0 is not allowed: a number > 0"
    ):
        tiny_config("method.name=toy", "method.toy.alpha=-1")
    with pytest.raises(ConfigError, match=r"method\.toy\.alpha = 'big' is not allowed: a number"):
        tiny_config("method.toy.alpha=big")
    with pytest.raises(ConfigError, match=r"did you mean 'method\.toy\.alpha'"):
        tiny_config("method.toy.alpah=1")

    assert cli_main(["--list-methods"]) == 0
    listed = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert listed["toy"] == "Toy: scaled cross-entropy"

    engine = Engine(cfg, tiny_stream(cfg))
    assert type(engine.method).__name__ == "Toy"
    results = engine.run()
    assert results["status"] == "finished" and results["tasks_completed"] == 2
    assert len(results["accuracy_matrix"]) == 2

    # The sweeps offer it and the analysis names it, from the registry.
    from analysis.tables import method_name
    from sweeps.baselines import main as baselines_main

    with pytest.raises(SystemExit):
        baselines_main(["--help"])
    assert "toy" in capsys.readouterr().out.split("--methods METHODS")[-1]
    assert method_name("toy") == "Toy" and method_name("pah") == "PAH"


# Modules longer than this say why here; everything else stays a screenful of jobs or fewer.
MODULE_LINES = 400
# Modules allowed over MODULE_LINES, each with its reason (none today).
LONG_MODULES: dict[str, str] = {}


def test_no_module_is_longer_than_a_few_screens_without_a_reason():
    long = {
        str(p.relative_to(ROOT)): n
        for folder in ("pah_core", "pah_sweep", "sweeps", "analysis", "benchmarks")
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MODULE_LINES
    }
    assert set(long) <= set(LONG_MODULES), f"modules over {MODULE_LINES} lines: {long}"
    assert all(long.get(k, 0) < 1.25 * MODULE_LINES for k in LONG_MODULES)


def test_grep_finds_the_producer_of_every_metric_name_the_tables_read():
    """Every metric name in analysis/ (a string such as "final_avg_acc", "val/final_forgetting",
    "compute/trial_tasks") is written literally where it is produced, in pah_core/, pah_sweep/ or sweeps/."""
    import re

    pattern = re.compile(r"[\"']((?:final_|val/final_|compute/)[a-z_/]+)[\"']")
    read = {m for p in (ROOT / "analysis").rglob("*.py") for m in pattern.findall(p.read_text())}
    produced = "\n".join(
        p.read_text()
        for folder in ("pah_core", "pah_sweep", "sweeps")
        for p in (ROOT / folder).rglob("*.py")
    )
    assert read, "no metric names found in analysis/"
    missing = sorted(k for k in read if f'"{k}"' not in produced)
    assert not missing, f"no literal producer of {missing} in pah_core/, pah_sweep/ or sweeps/"


# A function longer than this is several jobs: split it (issue #25).
FUNCTION_LINES = 60


def test_no_function_is_longer_than_a_screen():
    long = []
    for folder in ("pah_core", "pah_sweep", "sweeps", "analysis", "benchmarks"):
        for p in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > FUNCTION_LINES:
                        long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, f"functions over {FUNCTION_LINES} lines: {long}"


def test_the_cluster_image_copies_every_package_the_project_installs():
    """A package added to pyproject.toml but not to cluster/Dockerfile installs here and is
    missing on the cluster (pah_sweep was, for a commit)."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = [p.rstrip("*") for p in include["packages"]["find"]["include"]]
    assert "pah_sweep" in packages
    dockerfile = (ROOT / "cluster" / "Dockerfile").read_text()
    missing = [p for p in packages if f"COPY {p} ./{p}" not in dockerfile]
    assert not missing, f"cluster/Dockerfile does not COPY {missing}"
