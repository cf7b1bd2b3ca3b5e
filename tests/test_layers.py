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

And the sizes and names, so that every definition can be held in one's head and every shared helper has
a public name (:func:`size_findings`, :func:`private_import_findings`):

(e) no module in percept/ over 500 lines;
(f) no function over 60 lines of code: from its ``def`` line to its last, its docstring aside (decorators
    aside too; a long parameter list counts; a nested function counts in its own and its outer function).
    Triton kernels (functions decorated ``@triton.jit``, ``@triton.autotune`` or ``@triton.heuristics``)
    are exempt: Triton needs one function per kernel;
(g) no class over 200 lines, from its ``class`` line to its last, everything in it;
(h) no module of percept imports another module's private name: ``from percept.x import _y`` (relative
    forms too, at any depth) fails wherever ``_y`` is a name and not a submodule; a helper shared by
    modules gets a public name in a module that says what it is. A private *module* (``percept.builtin._maps``)
    is private to its package: modules inside that package (``percept.builtin.*``) may import it, others
    may not. Dunder names (``__version__``) are not private; strings naming a module (``"percept.x:f"``)
    are not imports here; shims (rule (c)) are exempt; names from other projects (``torch``) are not
    percept's to rename.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from _imports import Reference, entry_points, references

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
    "percept.registry_tables": CONTRACTS,
    "percept.plugin_loader": CONTRACTS,
    "percept.spec": CONTRACTS,
    "percept.backbones.base": CONTRACTS,
    "percept.backbones.weights": CONTRACTS,
    "percept.backbones.preprocessing": CONTRACTS,
    "percept.backbones.runner": CONTRACTS,
    "percept.backbones.probe": CONTRACTS,
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
MAX_FUNCTION_LINES = 60  # lines of code: from `def` to the last line, the docstring aside
MAX_CLASS_LINES = 200  # from `class` to the last line
KERNEL_DECORATORS = ("triton.jit", "triton.autotune", "triton.heuristics")  # Triton kernels: exempt from (f)

# The checks run on percept and on copies of it with one file planted: each file's text is parsed once per run.
_REFERENCES: dict[tuple[str, str, bool], list[Reference]] = {}
_SIZES: dict[tuple[str, str], list[Finding]] = {}


def references_in(path: Path, module: str) -> list[Reference]:
    """:func:`references` of the module ``module`` at ``path``, read once per text (copies share the work)."""
    text = path.read_text(encoding="utf-8")
    key = (text, module, path.name == "__init__.py")
    if key not in _REFERENCES:
        _REFERENCES[key] = references(text, str(path), module=module, is_package=key[2])
    return _REFERENCES[key]


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
    where = str(path.relative_to(root.parent))
    found = []
    for ref in references_in(path, module):
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


@dataclass(frozen=True)
class Finding:
    """Rule ``rule`` (``"e"`` .. ``"h"``) broken at ``path:line`` by ``name`` (a function, class, module or imported
    name); ``text`` says how and what to do."""

    rule: str
    path: str
    line: int
    name: str
    text: str

    def __str__(self) -> str:
        return f"({self.rule}) {self.path}:{self.line}: {self.text}"


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return (first.end_lineno or first.lineno) - first.lineno + 1
    return 0


def _is_kernel(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether ``node`` is a Triton kernel (decorated with one of :data:`KERNEL_DECORATORS`, called or not)."""
    return any(ast.unparse(d.func if isinstance(d, ast.Call) else d) in KERNEL_DECORATORS for d in node.decorator_list)


def size_findings(root: Path = PACKAGE) -> list[Finding]:
    """Rules (e), (f) and (g) in the package at ``root``: modules, functions and classes too long, one each."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        key = (text, str(path.relative_to(root.parent)))
        if key not in _SIZES:
            _SIZES[key] = _sizes_of(text, path, key[1])
        found += _SIZES[key]
    return found


def _sizes_of(text: str, path: Path, where: str) -> list[Finding]:
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(
            Finding("e", where, 1, where, f"{lines} lines, over {MAX_MODULE_LINES}; split the module by concern")
        )
    for node in ast.walk(ast.parse(text, str(path))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        span = (node.end_lineno or node.lineno) - node.lineno + 1
        if isinstance(node, ast.ClassDef):
            if span > MAX_CLASS_LINES:
                text_ = f"class {node.name} is {span} lines, over {MAX_CLASS_LINES}; split it along its concerns"
                found.append(Finding("g", where, node.lineno, node.name, text_))
            continue
        code = span - _docstring_lines(node)
        if code > MAX_FUNCTION_LINES and not _is_kernel(node):
            text_ = (
                f"function {node.name} is {code} lines of code (its docstring aside), over {MAX_FUNCTION_LINES}; "
                "split it"
            )
            found.append(Finding("f", where, node.lineno, node.name, text_))
    return found


def size_violations(root: Path = PACKAGE) -> list[str]:
    """:func:`size_findings` as messages."""
    return [str(f) for f in size_findings(root)]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_owner(module: str) -> str | None:
    """The package a private module is private to (``percept.builtin`` for ``percept.builtin._maps``), or None."""
    parts = module.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if _private(part):
            return ".".join(parts[:i])
    return None


def private_import_findings(root: Path = PACKAGE) -> list[Finding]:
    """Rule (h) in the package at ``root``: every private name, or private module outside its package, imported."""
    modules = module_files(root)
    exempt = shims()
    found = []
    for module, path in modules.items():
        if module in exempt:
            continue
        where = str(path.relative_to(root.parent))
        for ref in references_in(path, module):
            target = ref.target
            if ref.how == "by name":
                continue
            if ref.how == "import from" and target not in modules:  # a name, not a submodule
                base, _, name = target.rpartition(".")
                if _private(name):
                    text_ = (
                        f"{module} imports {name}, a private name of {base}; a helper shared by modules gets a "
                        "public name in a module that says what it is"
                    )
                    found.append(Finding("h", where, ref.line, name, text_))
                    continue
                target = base
            owner = private_owner(target)
            if owner is not None and module != owner and not module.startswith(owner + "."):
                text_ = (
                    f"{module} imports {target}, a module private to {owner}; give what it needs a public name "
                    "(or a public module)"
                )
                found.append(Finding("h", where, ref.line, target, text_))
    return found


# -- the rules on percept itself -------------------------------------------------------------------


def test_no_upward_import_and_no_cycle():
    problems = layer_violations()
    assert not problems, "percept's layers are broken:\n" + "\n".join(problems)


def test_no_module_over_500_lines_no_function_over_60_no_class_over_200():
    problems = size_violations()
    assert not problems, "too large:\n" + "\n".join(problems)


def test_no_private_name_imported_from_another_module():
    problems = [str(f) for f in private_import_findings()]
    assert not problems, "private names imported:\n" + "\n".join(problems)


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


def test_the_copy_holds_as_the_original_in_sizes_and_names(copy):
    assert size_violations(copy) == size_violations()
    assert [str(f) for f in private_import_findings(copy)] == [str(f) for f in private_import_findings()]


def _new_sizes(root: Path) -> list[str]:
    return sorted(set(size_violations(root)) - set(size_violations()))


def _function(name: str, code_lines: int, doc_lines: int = 0, decorator: str = "") -> str:
    """A function of ``code_lines`` lines of code (its ``def`` line included) after a docstring of ``doc_lines``."""
    doc = ['    """One line."""'] if doc_lines == 1 else []
    if doc_lines > 1:
        doc = ['    """A docstring.', *(["    More of it."] * (doc_lines - 2)), '    """']
    body = [f"    x{i} = {i}" for i in range(code_lines - 1)]
    return "\n".join([f"@{decorator}" if decorator else "", f"def {name}():", *doc, *body])


def test_a_planted_long_function_fails_naming_file_line_and_rule(copy):
    line = _plant(copy / "errors.py", "\n\n" + _function("_long", 61))
    assert _new_sizes(copy) == [
        f"(f) percept/errors.py:{line + 3}: function _long is 61 lines of code (its docstring aside), over 60; split it"
    ]


def test_a_function_of_60_lines_of_code_passes_however_long_its_docstring(copy):
    (copy / "planted.py").write_text(_function("_documented", 60, doc_lines=30))
    (copy / "planted_too.py").write_text(_function("_one_line_doc", 60, doc_lines=1))
    assert _new_sizes(copy) == []


def test_a_long_method_and_a_nested_function_count(copy):
    inner = "\n".join("    " + line for line in _function("inner", 61).splitlines())
    (copy / "planted.py").write_text(f"class _Holder:\n{inner}\n")
    assert _new_sizes(copy) == [
        "(f) percept/planted.py:3: function inner is 61 lines of code (its docstring aside), over 60; split it"
    ]


def test_triton_kernels_are_exempt_and_nothing_else(copy):
    _plant(copy / "ops" / "reference.py", "\n\n" + _function("_kernel", 90, decorator="triton.jit"))
    _plant(copy / "ops" / "reference.py", "\n\n" + _function("_tuned", 90, decorator="triton.autotune(configs=[])"))
    assert _new_sizes(copy) == []
    line = _plant(copy / "ops" / "reference.py", "\n\n" + _function("_cached", 61, decorator="functools.cache"))
    assert _new_sizes(copy) == [
        f"(f) percept/ops/reference.py:{line + 3}: function _cached is 61 lines of code (its docstring aside), "
        "over 60; split it"
    ]


def test_a_planted_long_class_fails_naming_file_line_and_rule(copy):
    fields = "\n".join(f"    x{i} = {i}" for i in range(199))
    (copy / "planted.py").write_text(f"class _Fits:\n{fields}\n")  # 200 lines
    assert _new_sizes(copy) == []
    (copy / "planted_too.py").write_text(f"x = 0\n\n\nclass _Long:\n{fields}\n    y = 0\n")  # 201 lines
    assert _new_sizes(copy) == [
        "(g) percept/planted_too.py:4: class _Long is 201 lines, over 200; split it along its concerns"
    ]


def test_a_long_module_fails(copy):
    (copy / "big.py").write_text("x = 1\n" * 501)
    assert "(e) percept/big.py:1: 501 lines, over 500; split the module by concern" in _new_sizes(copy)


def _new_private(root: Path) -> list[str]:
    return sorted(set(map(str, private_import_findings(root))) - set(map(str, private_import_findings())))


def test_a_planted_private_import_fails_naming_file_line_and_rule(copy):
    line = _plant(copy / "io.py", "\n\ndef _planted():\n    from percept.errors import _hidden, install_hint  # noqa\n")
    assert _new_private(copy) == [
        f"(h) percept/io.py:{line + 3}: percept.io imports _hidden, a private name of percept.errors; a helper "
        "shared by modules gets a public name in a module that says what it is"
    ]


def test_a_relative_private_import_fails(copy):
    line = _plant(copy / "eval" / "datasets" / "kadid.py", "from .tables import _normalise  # noqa")
    assert _new_private(copy) == [
        f"(h) percept/eval/datasets/kadid.py:{line}: percept.eval.datasets.kadid imports _normalise, a private name "
        "of percept.eval.datasets.tables; a helper shared by modules gets a public name in a module that says what "
        "it is"
    ]


def test_a_private_module_is_private_to_its_package(copy):
    inside = "from percept.builtin._maps import channels_last_to_map  # noqa\nfrom . import _maps  # noqa"
    _plant(copy / "builtin" / "vgg.py", inside)  # inside percept.builtin: allowed
    _plant(copy / "errors.py", "from percept import __version__  # noqa")  # a dunder is no private name
    assert _new_private(copy) == []
    line = _plant(
        copy / "cli" / "app.py", "import percept.builtin._maps  # noqa\nfrom percept.builtin import _maps  # noqa"
    )
    message = (
        "percept.cli.app imports percept.builtin._maps, a module private to percept.builtin; give what it needs a "
        "public name (or a public module)"
    )
    assert _new_private(copy) == [
        f"(h) percept/cli/app.py:{line}: {message}",
        f"(h) percept/cli/app.py:{line + 1}: {message}",
    ]


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
