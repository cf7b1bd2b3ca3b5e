"""Plugins installed the way users install them: pip, entry points, ``percept plugins``, broken ones.

The packages in ``plugins/`` are built and installed with pip into temporary ``--target`` folders
(no network: ``--no-build-isolation --no-deps``), then a fresh Python process with that folder on
its path discovers them through their distributions' entry points. A deliberately broken plugin
package is installed the same way to show that the rest still load and the warning names it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ("percept-stlpips", "percept-swd", "percept-template")
BROKEN_PYPROJECT = """
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "percept-broken-demo"
version = "0.0.1"

[project.entry-points.percept]
broken_demo = "percept_broken_demo"
"""
BROKEN_MODULE = """
raise ImportError("percept-broken-demo is broken on purpose")
"""


def pip_install(target: Path, *sources: Path) -> None:
    """``pip install --target`` without network; fails the test with pip's output if pip fails."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    cmd += ["--target", str(target), *map(str, sources)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip failed:\n{done.stdout}\n{done.stderr}"


def copy_source(name: str, dest: Path) -> Path:
    """A clean copy of ``plugins/<name>`` (so building writes nothing into the repository)."""
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache")
    return Path(shutil.copytree(ROOT / "plugins" / name, dest / name, ignore=ignore))


def run_python(site: list[Path], *args: str) -> subprocess.CompletedProcess:
    """Run ``python *args`` in a fresh process with ``site`` folders first on its path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PERCEPT_PLUGINS", "PERCEPT_DISABLE_PLUGIN_AUTOLOAD")}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> dict[str, Path]:
    """Two install targets: the three example plugins, and a broken plugin package."""
    sources = tmp_path_factory.mktemp("sources")
    good = tmp_path_factory.mktemp("site-good")
    pip_install(good, *(copy_source(name, sources) for name in PLUGINS))
    broken_src = sources / "percept-broken-demo"
    broken_src.mkdir()
    (broken_src / "pyproject.toml").write_text(textwrap.dedent(BROKEN_PYPROJECT))
    (broken_src / "percept_broken_demo.py").write_text(BROKEN_MODULE)
    broken = tmp_path_factory.mktemp("site-broken")
    pip_install(broken, broken_src)
    return {"good": good, "broken": broken}


def test_pip_installs_real_distributions(sites):
    found = sorted(p.name for p in sites["good"].glob("*.dist-info"))
    assert found == [
        "percept_stlpips-0.1.0.dist-info",
        "percept_swd-0.1.0.dist-info",
        "percept_template-0.1.0.dist-info",
    ]
    entry_points = (sites["good"] / "percept_swd-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "[percept]" in entry_points and "swd = percept_swd.plugin" in entry_points


def test_discovery_through_installed_entry_points(sites):
    done = run_python([sites["good"]], "-m", "percept", "plugins")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "stlpips  (plugin, percept-stlpips 0.1.0)" in out
    assert "backbones: stlpips.alexnet, stlpips.vgg16" in out and "presets: stlpips-alex, stlpips-vgg" in out
    assert "swd  (plugin, percept-swd 0.1.0)" in out
    assert "readouts: sliced" in out and "distances: swd" in out
    assert "template  (plugin, percept-template 0.1.0)" in out and "distances: charbonnier" in out
    assert "percept.builtin.vgg  (built-in" in out  # built-ins still there
    # The plugin's code was imported from the pip-installed copy, its names work in spec strings, and
    # the registry knows which plugin owns each name.
    code = (
        "import percept_swd, percept\n"
        "from percept.registry import get_registry\n"
        "print(percept_swd.__file__)\n"
        "print(percept.parse_spec('alexnet:conv1/sliced/swd'))\n"
        "print({n: get_registry().get('distance', n).plugin for n in ('swd', 'charbonnier', 'l2')})\n"
    )
    done = run_python([sites["good"]], "-c", code)
    assert done.returncode == 0, done.stderr
    path, spec, owners = done.stdout.splitlines()
    assert Path(path).is_relative_to(sites["good"])
    assert spec == "alexnet:conv1/sliced/swd"
    assert owners == "{'swd': 'swd', 'charbonnier': 'template', 'l2': 'percept.builtin.distances'}"


def test_broken_plugin_is_skipped_with_a_warning_naming_it(sites):
    code = (
        "import warnings, percept\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    names = percept.list_distances()\n"
        "print(sorted(set(names) & {'swd', 'charbonnier', 'l2'}))\n"
        "for w in caught:\n"
        "    print(w.category.__name__, w.message)\n"
    )
    done = run_python([sites["broken"], sites["good"]], "-c", code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "['charbonnier', 'l2', 'swd']"  # the rest still load
    warned = [line for line in lines[1:] if line.startswith("PluginWarning")]
    assert len(warned) == 1, lines
    assert "skipped plugin 'broken_demo'" in warned[0]
    assert "percept-broken-demo is broken on purpose" in warned[0]


def test_percept_plugins_reports_the_broken_one(sites):
    done = run_python([sites["broken"], sites["good"]], "-m", "percept", "plugins")
    assert done.returncode == 1  # documented: a skipped plugin makes `percept plugins` exit 1
    assert "broken_demo  (plugin, percept-broken-demo 0.0.1)" in done.stdout
    assert "SKIPPED: failed to import 'percept_broken_demo': ImportError: percept-broken-demo is broken on purpose" in (
        done.stdout
    )
    assert "swd  (plugin, percept-swd 0.1.0)" in done.stdout


def test_plugins_can_be_limited_and_disabled(sites):
    code = (
        "import os, warnings, percept\n"
        "from percept.registry import reset_registry\n"
        "warnings.simplefilter('error', percept.PluginWarning)\n"  # the broken plugin is not even imported
        "os.environ['PERCEPT_PLUGINS'] = 'swd,template'\n"
        "print(sorted(set(percept.list_distances()) & {'swd', 'charbonnier'}), percept.list_presets('stlpips*'))\n"
        "reset_registry()\n"
        "os.environ['PERCEPT_DISABLE_PLUGIN_AUTOLOAD'] = '1'\n"
        "print(sorted(set(percept.list_distances()) & {'swd', 'charbonnier'}), percept.list_presets('stlpips*'))\n"
    )
    done = run_python([sites["broken"], sites["good"]], "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['charbonnier', 'swd'] []", "[] []"]
