"""percept.plugin is the whole surface plugin authors use: every name imports and is documented, and the
plugins in plugins/ (and CONTRIBUTING.md's examples) import nothing else of percept."""

from __future__ import annotations

import ast
import doctest
import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import percept
import percept.plugin

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_FILES = sorted(p for d in ("src", "tests") for p in ROOT.glob(f"plugins/*/{d}/**/*.py"))
ALLOWED = {"percept", "percept.plugin"}


def internal_imports(source: str, filename: str = "<string>") -> list[str]:
    """``"line N: module"`` for every import of a percept module other than ``percept`` and ``percept.plugin``:
    statements at any depth (inside functions too) and ``importlib.import_module``/``__import__`` of a literal."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] if node.level == 0 else []
        elif (
            isinstance(node, ast.Call)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            modules = [node.args[0].value]
        else:
            continue
        for module in modules:
            if (module == "percept" or module.startswith("percept.")) and module not in ALLOWED:
                found.append(f"line {node.lineno}: {module}")
    return found


@pytest.mark.parametrize("name", percept.plugin.__all__)
def test_every_public_name_imports_and_is_documented(name):
    namespace: dict = {}
    exec(f"from percept.plugin import {name}", namespace)  # the way plugin authors write it
    obj = namespace[name]
    assert obj is getattr(percept.plugin, name)
    assert inspect.getdoc(obj), f"percept.plugin.{name} has no docstring"
    assert re.search(rf"\b{re.escape(name)}\b", percept.plugin.__doc__), (
        f"percept.plugin's module docstring does not mention {name}"
    )


def test_the_names_are_the_objects_percept_uses():
    """isinstance checks in the registry and the pipeline hold for parts built from the re-exported classes."""
    from percept.backbones.base import Backbone
    from percept.distances.base import Distance
    from percept.errors import InputError
    from percept.readouts.base import Readout
    from percept.testing import check_distance

    assert percept.plugin.Backbone is Backbone and percept.plugin.Readout is Readout
    assert percept.plugin.Distance is Distance and percept.plugin.InputError is InputError
    assert percept.plugin.check_distance is check_distance
    assert percept.plugin.hookimpl is percept.hookimpl


def test_dir_lists_every_public_name():
    assert set(percept.plugin.__all__) <= set(dir(percept.plugin))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        percept.plugin.nothing_here  # noqa: B018


def test_importing_it_loads_neither_the_contract_kit_nor_the_toolkit():
    code = (
        "import sys, percept.plugin; "
        "print(sorted(m for m in sys.modules if m.startswith(('percept.eval', 'percept.testing'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_its_examples_run():
    result = doctest.testmod(percept.plugin)
    assert result.attempted >= 2 and result.failed == 0


def test_create_readout_and_distance_name_the_valid_choices():
    with pytest.raises(percept.SpecError, match="unknown distance 'l3'.*Did you mean.*'l2'"):
        percept.plugin.create_distance("l3")
    with pytest.raises(percept.SpecError, match="Valid readouts:"):
        percept.plugin.create_readout("no-such-readout", 8)
    assert percept.plugin.create_readout("raw", 8).__class__.__name__ == "Raw"


def test_plugins_import_only_percept_and_percept_plugin():
    packages = {p.relative_to(ROOT).parts[1] for p in PLUGIN_FILES}
    assert packages >= {"percept-stlpips", "percept-swd", "percept-template"}, packages
    offences = [
        f"{path.relative_to(ROOT)} {hit}"
        for path in PLUGIN_FILES
        for hit in internal_imports(path.read_text(), str(path))
    ]
    assert not offences, "plugins may import only percept and percept.plugin:\n" + "\n".join(offences)


def test_contributing_examples_import_only_percept_and_percept_plugin():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert any("from percept.plugin import" in block for block in blocks), "CONTRIBUTING.md shows no plugin import"
    offences = [hit for block in blocks for hit in internal_imports(textwrap.dedent(block), "CONTRIBUTING.md")]
    assert not offences, "CONTRIBUTING.md's examples import internal modules:\n" + "\n".join(offences)


@pytest.mark.parametrize(
    "source",
    [
        "from percept.errors import InputError",
        "import percept.registry",
        "def f():\n    from percept.backbones.base import Backbone",
        "import importlib\nimportlib.import_module('percept.eval.contract')",
    ],
)
def test_the_import_check_catches_internal_imports(source):
    assert internal_imports(source)


@pytest.mark.parametrize(
    "source",
    [
        "import percept",
        "from percept import PerceptualLoss",
        "from percept.plugin import Distance",
        "import percept_swd",
        "from percept_stlpips.networks import NETS",
    ],
)
def test_the_import_check_lets_the_public_surface_through(source):
    assert internal_imports(source) == []
