"""percept.plugin is the whole surface plugin authors use: every name imports and is documented, and the
plugins in plugins/ (and CONTRIBUTING.md's examples) import nothing else of percept."""

from __future__ import annotations

import doctest
import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _imports import references

import percept
import percept.plugin

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_FILES = sorted(p for d in ("src", "tests") for p in ROOT.glob(f"plugins/*/{d}/**/*.py"))
ALLOWED = {
    "percept",
    "percept.plugin",
    # The research toolkit's contract (check_toolkit), for a plugin's tests: its own public home, in the
    # toolkit (percept.plugin, a layer below, does not reach it).
    "percept.eval.contract",
}
MODULES = {
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in ROOT.glob("percept/**/*.py")
}


def internal_imports(source: str, filename: str = "<string>") -> list[str]:
    """``"line N: module"`` for every reference to a percept module other than :data:`ALLOWED`, as the one
    scanner of the suite (tests/_imports.py) reads them: statements at any depth, ``import_module`` /
    ``__import__`` of a literal, and strings naming a module (lazy tables, ``"module:function"``)."""
    found = []
    for ref in references(source, filename):
        module = ref.target
        while module not in MODULES and "." in module:  # `from percept.plugin import Distance`: the module
            module = module.rpartition(".")[0]
        if module not in ALLOWED:
            found.append(f"line {ref.line}: {module}")
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


def test_it_imports_no_builtin_family_and_still_reads_lpips_heads(tmp_path):
    code = (
        "import sys, torch, percept.plugin as p; "
        "torch.save({'lin0.model.1.weight': torch.ones(1, 3, 1, 1)}, sys.argv[1]); "
        "print(p.load_lpips_heads(sys.argv[1], [3])[0].tolist()); "
        "print(sorted(m for m in sys.modules if m.startswith('percept.builtin')))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "h.pth")], capture_output=True, text=True)
    assert done.stdout.splitlines() == ["[1.0, 1.0, 1.0]", "[]"], done.stderr


def test_check_toolkit_has_its_own_home_and_the_old_name_says_where():
    from percept.eval.contract import check_toolkit

    assert check_toolkit.__doc__
    with pytest.raises(AttributeError, match=r"from percept\.eval\.contract import check_toolkit"):
        percept.plugin.check_toolkit  # noqa: B018


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
        "import importlib\nimportlib.import_module('percept.eval.cli')",
        "_LAZY = {'Entry': 'percept.registry'}",
        "RUN = 'percept.cli.score:run'",
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
        "from percept.eval.contract import check_toolkit",
        '"""Built on percept.registry."""',
    ],
)
def test_the_import_check_lets_the_public_surface_through(source):
    assert internal_imports(source) == []
