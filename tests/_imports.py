"""The test suite's one import scanner: every way source text reaches a module of percept.

Used by tests/test_layers.py (the layers of percept itself) and tests/test_plugin_api.py (what the
plugins of plugins/ and CONTRIBUTING's examples import). It reads, at any depth (inside functions,
under ``if TYPE_CHECKING:``):

- ``import`` and ``from ... import`` statements (``how="import"``), relative ones resolved against
  the importing module's package;
- ``importlib.import_module("percept.x")`` and ``__import__("percept.x")`` of a literal
  (``how="import_module"``);
- every other string that names a dotted module of percept, ``"percept.x"`` or ``"percept.x:attr"``
  (``how="by name"``): the lazy tables behind a module's ``__getattr__``, lists of modules loaded by
  name, ``"module:function"`` references. Docstrings do not count, nor the bare word ``"percept"``
  (also the entry-point group, the hook project and the program's name);
- the entry points of a ``pyproject.toml`` (:func:`entry_points`, ``how="entry point"``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

BY_NAME = re.compile(r"^(percept(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?::[A-Za-z_][A-Za-z0-9_.]*)?$")


@dataclass(frozen=True)
class Reference:
    """Source text reaches module ``target`` (as written; relative imports resolved) at ``line``, ``how``."""

    target: str
    line: int
    how: str


def _resolve(node: ast.ImportFrom, module: str | None, is_package: bool) -> str:
    """The absolute module a ``from`` import names (relative levels resolved against ``module``'s package)."""
    if not node.level:
        return node.module or ""
    if module is None:  # a file outside percept: a relative import stays inside its own package
        return ""
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _is_import_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not node.args:
        return False
    name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
    return name in ("import_module", "__import__") and isinstance(node.args[0], ast.Constant)


def references(
    source: str, filename: str = "<string>", *, module: str | None = None, is_package: bool = False
) -> list[Reference]:
    """Every reference to a module of percept in ``source`` (see the module docstring), in line order.

    ``from percept import x`` gives ``percept.x`` (the caller decides whether that is a submodule);
    ``module``/``is_package`` name the file's own module, for relative imports.
    """
    tree = ast.parse(source, filename)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Reference(alias.name, node.lineno, "import") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            found += [Reference(f"{base}.{alias.name}", node.lineno, "import from") for alias in node.names]
        elif _is_import_call(node):
            assert isinstance(node, ast.Call)
            literal = node.args[0]
            assert isinstance(literal, ast.Constant)
            skip.add(id(literal))
            if isinstance(literal.value, str):
                found.append(Reference(literal.value, node.lineno, "import_module"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            match = BY_NAME.match(node.value)
            if match:
                found.append(Reference(match.group(1), node.lineno, "by name"))
    found = [r for r in found if r.target == "percept" or r.target.startswith("percept.")]
    return sorted(found, key=lambda r: (r.line, r.target))


def entry_points(pyproject: Path, group: str = "percept") -> list[tuple[str, str, int]]:
    """``(name, module, line)`` for each entry point of ``[project.entry-points.<group>]`` in ``pyproject``.

    Read line by line (``name = "module[:attr]"`` up to the next table), as Python 3.10 has no tomllib.
    """
    if not pyproject.is_file():
        return []
    found, inside = [], False
    for number, line in enumerate(pyproject.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if text.startswith("["):
            inside = text.replace('"', "").replace(" ", "") == f"[project.entry-points.{group}]"
            continue
        match = re.match(r"""^([A-Za-z0-9_.\-]+)\s*=\s*["']([^"']+)["']$""", text) if inside else None
        if match:
            found.append((match.group(1), match.group(2).partition(":")[0].strip(), number))
    return found
