"""The layers of percept hold: nothing reaches upward, nothing imports in a circle, nothing grows too big.

Everything that reaches a module counts (tests/_imports.py, the suite's one scanner): ``import`` and
``from ... import`` statements at any depth (also under ``if TYPE_CHECKING:``), ``import_module`` /
``__import__`` of a literal, every string naming a module (the lazy tables behind ``__getattr__``,
the lists of modules loaded by name, ``"module:function"`` references), and the entry points of
``pyproject.toml``, which the registry (``percept.registry``) loads. ``from percept import x`` is an
import of ``percept.x`` when ``x`` is a submodule, else of the package ``percept`` (the public API
layer). The layers, from the ground up (docs/architecture.md draws them):

0 base, 1 ops, 2 contracts, 3 builders, 4 builtin, 5 api, 6 apps (see :data:`LAYERS`).

Rules, each failure naming the file and line:

(a) a module reaches only its own layer or lower ones, except the references of :data:`ALLOWED_UPWARD`,
    the one allow-list;
(b) no import cycle between modules, inside a layer too (the message gives the cycle's path);
(c) no module of percept imports an old path kept as a shim (``percept._deprecated.SHIMS``): shims
    are exempt from (a) and (b), and only users outside percept should still reach them;
(d) every module of percept is in a layer (a new module is placed on purpose), and every entry point
    names one.

And the sizes: no module in percept/ over 500 lines, no function over 80 lines (the Triton kernels
of percept/ops/triton_kernels.py excepted).
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from _imports import entry_points, references

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "percept"

BASE, OPS, CONTRACTS, BUILDERS, BUILTIN, API, APPS = range(7)
LAYER_NAMES = ("base", "ops", "contracts", "builders", "builtin", "api", "apps")

# Modules named exactly (a package's __init__ included).
LAYERS: dict[str, int] = {
    "percept._version": BASE,
    "percept._deprecated": BASE,
    "percept.errors": BASE,
    "percept.validation": BASE,
    "percept.io": BASE,
    "percept.images": BASE,
    "percept.memory": BASE,
    "percept.hookspecs": CONTRACTS,
    "percept.discovery": CONTRACTS,
    "percept.registry": CONTRACTS,
    "percept.registration": CONTRACTS,
    "percept.spec": CONTRACTS,
    "percept.backbones.base": CONTRACTS,
    "percept.backbones.weights": CONTRACTS,
    "percept.readouts": CONTRACTS,
    "percept.readouts.base": CONTRACTS,
    "percept.distances": CONTRACTS,
    "percept.distances.base": CONTRACTS,
    "percept.pipeline": BUILDERS,
    "percept.pipeline_keywords": BUILDERS,  # the one constructor of loss, metric and functional form
    "percept.ensemble": BUILDERS,
    "percept.backbones": BUILDERS,  # its __init__ re-exports create_backbone
    "percept.backbones.factory": BUILDERS,
    "percept.backbones.catalogue": BUILDERS,
    "percept": API,
    "percept.functional": API,
    "percept.loss": API,
    "percept.metric": API,
    "percept.metric_compat": API,  # what PerceptualMetric needs from torchmetrics beyond its public API
    "percept.signature": API,
    "percept.plugin": API,
    "percept.__main__": APPS,
}
# Packages whose every module shares one layer.
PACKAGE_LAYERS: dict[str, int] = {
    "percept.ops": OPS,
    "percept.builtin": BUILTIN,
    "percept.testing": API,
    "percept.cli": APPS,
    "percept.demo": APPS,
    "percept.eval": APPS,
}
# The one allow-list: references that point upward on purpose, (source module, target module or package).
# Each is a name the registry loads when it is used, never an import at its own import time.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {
    # The registry loads the built-in families by name at discovery (BUILTIN_MODULES): built-ins are plugins.
    ("percept.registry", "percept.builtin"): "BUILTIN_MODULES, imported by name at discovery",
    # ... the core's commands by name, only when the percept command asks for commands (COMMAND_MODULES).
    ("percept.registry", "percept.cli"): "COMMAND_MODULES, imported by name when commands are collected",
    # ... and percept's own applications through their entry points (pyproject.toml), declared in
    # APPLICATION_PRESETS and imported only when one of their presets or commands is used.
    ("percept.registry", "percept.eval.plugin"): "the entry point toolkit, loaded when used",
    ("percept.registry", "percept.demo.plugin"): "the entry point demo, loaded when used",
}
ENTRY_POINT_LOADER = "percept.registry"  # who imports the modules pyproject.toml's entry points name
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
SIZE_EXEMPT_FILES = ("ops/triton_kernels.py",)  # Triton kernels: one function per kernel, as Triton needs


def shims() -> frozenset[str]:
    """``percept._deprecated.SHIMS``, or nothing while that module does not exist."""
    if importlib.util.find_spec("percept._deprecated") is None:
        return frozenset()
    from percept._deprecated import SHIMS

    return frozenset(SHIMS)


def layer_of(module: str) -> int | None:
    """The layer of ``module`` (:data:`LAYERS`, else the innermost package of :data:`PACKAGE_LAYERS`), or None."""
    if module in LAYERS:
        return LAYERS[module]
    for package in sorted(PACKAGE_LAYERS, key=len, reverse=True):
        if module == package or module.startswith(package + "."):
            return PACKAGE_LAYERS[package]
    return None


@dataclass(frozen=True)
class Import:
    """``source`` (a module of percept) imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: str
    line: int
    how: str = "import"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py under ``root`` (the folder of the package ``percept``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _nearest(target: str, modules: dict[str, Path]) -> str:
    """``percept.a.b`` whose file is missing (a name the package defines): its nearest module."""
    while target not in modules and "." in target:
        target = target.rpartition(".")[0]
    return target


def imports_of(module: str, path: Path, modules: dict[str, Path], root: Path) -> list[Import]:
    """Every reference of a percept module in ``path`` to another (tests/_imports.py says which count)."""
    text = path.read_text(encoding="utf-8")
    where = str(path.relative_to(root.parent))
    found = []
    for ref in references(text, str(path), module=module, is_package=path.name == "__init__.py"):
        target = _nearest(ref.target, modules)
        if target != module:
            found.append(Import(module, target, where, ref.line, ref.how))
    return found


def entry_point_edges(root: Path, modules: dict[str, Path]) -> tuple[list[Import], list[str]]:
    """The entry points of ``pyproject.toml`` beside ``root``, as references of the registry; and (d) failures."""
    edges, problems = [], []
    for name, target, line in entry_points(root.parent / "pyproject.toml"):
        where = f"pyproject.toml:{line}"
        if target not in modules or layer_of(target) is None:
            problems.append(f"(d) {where}: entry point {name} names {target}, which is no module of percept in a layer")
            continue
        edges.append(Import(ENTRY_POINT_LOADER, target, where, line, "entry point"))
    return edges, problems


def allowed_upward(edge: Import) -> bool:
    """Whether ``edge`` is on :data:`ALLOWED_UPWARD` (a reference by name or an entry point, never a statement)."""
    if edge.how in ("import", "import from"):
        return False
    return any(
        edge.source == source and (edge.target == target or edge.target.startswith(target + "."))
        for source, target in ALLOWED_UPWARD
    )


def _cycle_through(start: str, graph: dict[str, dict[str, Import]], members: set[str]) -> list[Import]:
    """One cycle of imports from ``start`` back to it, inside the strongly connected ``members``."""
    parents: dict[str, Import] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target, edge in sorted(graph.get(node, {}).items()):
            if target not in members:
                continue
            if target == start:
                path = [edge]
                while path[0].source != start:
                    path.insert(0, parents[path[0].source])
                return path
            if target not in parents:
                parents[target] = edge
                queue.append(target)
    return []


def _components(graph: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def layer_violations(root: Path = PACKAGE) -> list[str]:
    """Every broken layer rule in the package at ``root``, one message each (empty: the layers hold)."""
    modules = module_files(root)
    exempt = shims()
    problems = []
    graph: dict[str, dict[str, Import]] = {}
    edges, problems = entry_point_edges(root, modules)
    for module, path in modules.items():
        if module in exempt:
            continue
        if layer_of(module) is None:
            problems.append(
                f"(d) {path.relative_to(root.parent)}: module {module} is in no layer; add it to LAYERS or "
                "PACKAGE_LAYERS of tests/test_layers.py (and to docs/architecture.md)"
            )
            continue
        edges += imports_of(module, path, modules, root)
    for edge in edges:
        layer, target_layer = layer_of(edge.source), layer_of(edge.target)
        if edge.target in exempt:
            if edge.how != "by name":  # _deprecated lists the shims by name; nothing may import one
                problems.append(
                    f"(c) {edge.where}: {edge.source} imports {edge.target}, an old path kept as a shim for users; "
                    "import the module it moved to"
                )
            continue
        if allowed_upward(edge) or layer is None:
            continue
        graph.setdefault(edge.source, {}).setdefault(edge.target, edge)
        if target_layer is not None and target_layer > layer:
            verb = {"import": "imports", "import from": "imports"}.get(edge.how, f"reaches ({edge.how})")
            problems.append(
                f"(a) {edge.where}: {edge.source} (layer {layer} {LAYER_NAMES[layer]}) {verb} {edge.target} (layer "
                f"{target_layer} {LAYER_NAMES[target_layer]}); a module reaches only its own layer or lower"
            )
    for component in _components(graph):
        cycle = _cycle_through(min(component), graph, component)
        path = " -> ".join([cycle[0].source, *(e.target for e in cycle)])
        lines = "; ".join(f"{e.where} imports {e.target}" for e in cycle)
        problems.append(f"(b) import cycle {path} ({lines}); no two modules may import each other, even in one layer")
    return problems


def size_violations(root: Path = PACKAGE) -> list[str]:
    """Modules over :data:`MAX_MODULE_LINES` lines and functions over :data:`MAX_FUNCTION_LINES`, one message each."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent)
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            problems.append(f"{where}: {lines} lines, over {MAX_MODULE_LINES}; split it by concern")
        if str(path.relative_to(root)) in SIZE_EXEMPT_FILES:
            continue
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(
                        f"{where}:{node.lineno}: function {node.name} is {length} lines, over {MAX_FUNCTION_LINES}"
                    )
    return problems


# -- the rules on percept itself -------------------------------------------------------------------


def test_no_upward_import_and_no_cycle():
    problems = layer_violations()
    assert not problems, "percept's layers are broken:\n" + "\n".join(problems)


def test_no_module_over_500_lines_and_no_function_over_80():
    problems = size_violations()
    assert not problems, "too large:\n" + "\n".join(problems)


# -- the checker catches what it should ------------------------------------------------------------


@pytest.fixture
def copy(tmp_path):
    """A copy of percept/ to plant imports in (the real one stays untouched)."""
    target = tmp_path / "percept"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")  # its entry points count too
    return target


def _plant(path: Path, text: str) -> int:
    """Append ``text`` to the module at ``path``; the line number of its first line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*lines, text]) + "\n", encoding="utf-8")
    return len(lines) + 1


def test_the_copy_holds_as_the_original(copy):
    assert layer_violations(copy) == layer_violations()


def test_a_planted_upward_import_fails_naming_file_line_and_rule(copy):
    line = _plant(copy / "errors.py", "\n\ndef _planted():\n    from percept.cli import main  # noqa\n")
    problems = set(layer_violations(copy)) - set(layer_violations())
    assert any(
        p.startswith(f"(a) percept/errors.py:{line + 3}: percept.errors (layer 0 base) imports percept.cli")
        and "(layer 6 apps)" in p
        for p in problems
    ), problems


def test_from_percept_import_counts_as_the_package_or_its_submodule(copy):
    line = _plant(
        copy / "spec.py", "from percept import functional  # noqa\nfrom percept import PerceptualLoss  # noqa"
    )
    problems = "\n".join(set(layer_violations(copy)) - set(layer_violations()))
    assert f"percept/spec.py:{line}: percept.spec (layer 2 contracts) imports percept.functional (layer 5" in problems
    assert f"percept/spec.py:{line + 1}: percept.spec (layer 2 contracts) imports percept (layer 5" in problems


def test_a_relative_import_is_resolved(copy):
    line = _plant(copy / "ops" / "reference.py", "from ..pipeline import Pipeline  # noqa")
    problems = "\n".join(set(layer_violations(copy)) - set(layer_violations()))
    assert f"percept/ops/reference.py:{line}: percept.ops.reference (layer 1 ops) imports percept.pipeline" in problems


def test_a_planted_cycle_inside_one_layer_fails_with_its_path(copy):
    _plant(copy / "io.py", "import percept.memory  # noqa")
    _plant(copy / "memory.py", "\n\ndef _planted():\n    import percept.io  # noqa\n")
    problems = [p for p in layer_violations(copy) if p.startswith("(b)")]
    assert any("percept.io -> percept.memory -> percept.io" in p and "percept/memory.py:" in p for p in problems), (
        problems
    )


def test_a_module_in_no_layer_fails(copy):
    (copy / "stray.py").write_text('"""A module nobody placed."""\n')
    assert any(p.startswith("(d) percept/stray.py") for p in layer_violations(copy))


def test_sizes_are_measured(copy):
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    _plant(copy / "errors.py", f"\n\ndef _long():\n{body}\n")
    problems = "\n".join(size_violations(copy))
    assert "function _long is 82 lines, over 80" in problems
    (copy / "big.py").write_text("x = 1\n" * 501)
    assert "percept/big.py: 501 lines, over 500" in "\n".join(size_violations(copy))


def _new(problems_after: list[str]) -> str:
    return "\n".join(set(problems_after) - set(layer_violations()))


def test_a_planted_lazy_import_module_fails(copy):
    body = "\n\ndef _planted():\n    import importlib\n\n    importlib.import_module('percept.eval.cli')\n"
    line = _plant(copy / "spec.py", body)
    problems = _new(layer_violations(copy))
    expected = (
        f"(a) percept/spec.py:{line + 5}: percept.spec (layer 2 contracts) reaches (import_module) percept.eval.cli"
    )
    assert expected in problems, problems
    line = _plant(copy / "errors.py", "\n\ndef _planted():\n    return __import__('percept.demo.run')\n")
    expected = f"percept/errors.py:{line + 3}: percept.errors (layer 0 base) reaches (import_module) percept.demo.run"
    assert expected in _new(layer_violations(copy))


def test_a_planted_lazy_table_behind_getattr_fails(copy):
    table = (
        "_LAZY = {'check_toolkit': 'percept.eval.contract'}\n\n\ndef __getattr__(name):\n"
        "    import importlib\n\n    return getattr(importlib.import_module(_LAZY[name]), name)\n"
    )
    line = _plant(copy / "functional.py", table)
    problems = _new(layer_violations(copy))
    expected = f"(a) percept/functional.py:{line}: percept.functional (layer 5 api) reaches (by name) percept.eval"
    assert expected + ".contract" in problems, problems


def test_a_module_function_reference_counts_as_its_module(copy):
    line = _plant(copy / "pipeline.py", "_RUN = 'percept.cli.score:run'")
    assert f"percept/pipeline.py:{line}: percept.pipeline (layer 3 builders) reaches (by name) percept.cli.score" in (
        _new(layer_violations(copy))
    )


def test_the_allow_list_covers_names_not_statements(copy):
    line = _plant(copy / "registry.py", "\n\ndef _planted():\n    import percept.cli.score  # noqa\n")
    problems = _new(layer_violations(copy))
    assert f"(a) percept/registry.py:{line + 3}: percept.registry (layer 2 contracts) imports percept.cli.score" in (
        problems
    ), problems
    line = _plant(copy / "registry.py", "_MORE = ('percept.eval.sweep',)")  # not on the allow-list
    assert f"percept/registry.py:{line}: percept.registry (layer 2 contracts) reaches (by name) percept.eval.sweep" in (
        _new(layer_violations(copy))
    )


def test_entry_points_are_read(copy):
    pyproject = copy.parent / "pyproject.toml"
    text = pyproject.read_text().replace(
        "[project.entry-points.percept]\n", '[project.entry-points.percept]\nsweeper = "percept.eval.sweep.run"\n'
    )
    pyproject.write_text(text)
    problems = _new(layer_violations(copy))
    assert "pyproject.toml:" in problems and "percept.registry (layer 2 contracts) reaches (entry point) " in problems
    assert "percept.eval.sweep.run (layer 6 apps)" in problems
    pyproject.write_text(text.replace("percept.eval.sweep.run", "percept.no_such_module"))
    assert "entry point sweeper names percept.no_such_module, which is no module of percept" in "\n".join(
        layer_violations(copy)
    )


def test_docstrings_and_the_bare_package_name_are_not_references():
    text = '"""See percept.eval.cli."""\nPROJECT = "percept"\n\n\ndef f():\n    """percept.cli.app"""\n'
    assert references(text) == []
