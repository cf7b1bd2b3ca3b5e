"""The sdist and wheel as users get them: built offline, checked, installed with a plugin that needs them.

A copy of the source tree (without caches, build outputs and virtual environments) is built with
``python -m build --no-isolation`` (the sdist, then the wheel from it), so nothing is written into the
repository. The wheel must hold ``percept/py.typed`` and nothing but the ``percept`` package and its
metadata (no tests, benchmarks, examples or plugins, no file over 1 MB); ``twine check --strict``
must pass on both; pip's resolver must satisfy the template plugin's ``percept-torch>=0.1`` with the
wheel (offline, as a dry run); and the wheel, installed next to that plugin, must import, report its
version from its metadata and discover the plugin.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIST = "percept-torch"
VERSION = "0.1.0"
MAX_BYTES = 1_000_000
LOCAL = ("build", "dist", "*.egg-info", "__pycache__", ".git", ".venv", ".ci-venv", "*_cache", ".hypothesis")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="needs build (the dev extra)")


def run(*cmd: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The built sdist and wheel, and a clean copy of the template plugin's source."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = Path(shutil.copytree(ROOT, tmp / "src", ignore=shutil.ignore_patterns(*LOCAL)))
    out = tmp / "dist"
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source))
    wheel, sdist = out / f"percept_torch-{VERSION}-py3-none-any.whl", out / f"percept_torch-{VERSION}.tar.gz"
    assert sorted(out.iterdir()) == sorted([wheel, sdist])
    return {"wheel": wheel, "sdist": sdist, "plugin": source / "plugins" / "percept-template", "tmp": tmp}


def test_wheel_holds_the_package_its_types_and_nothing_else(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        infos = wheel.infolist()
        names = [i.filename for i in infos]
        metadata = Parser().parsestr(wheel.read(f"percept_torch-{VERSION}.dist-info/METADATA").decode())
        entry_points = wheel.read(f"percept_torch-{VERSION}.dist-info/entry_points.txt").decode()
    assert "percept/py.typed" in names and "percept/__init__.py" in names
    assert {n.split("/")[0] for n in names} == {"percept", f"percept_torch-{VERSION}.dist-info"}, names
    assert not [n for n in names if n.endswith((".pyc", ".pth", ".pt", ".npz"))]
    assert not [(i.filename, i.file_size) for i in infos if i.file_size > MAX_BYTES]
    assert (metadata["Name"], metadata["Version"], metadata["License-Expression"]) == (DIST, VERSION, "MIT")
    assert "percept = percept.cli:main" in entry_points


def test_sdist_has_no_large_files(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        members = sdist.getmembers()
    assert any(m.name.endswith("/percept/py.typed") for m in members)
    assert not [(m.name, m.size) for m in members if m.size > MAX_BYTES]


@pytest.mark.skipif(importlib.util.find_spec("twine") is None, reason="needs twine (the dev extra)")
def test_twine_check(dists):
    done = run(sys.executable, "-m", "twine", "check", "--strict", str(dists["wheel"]), str(dists["sdist"]))
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_a_plugin_requiring_percept_torch_resolves_to_the_wheel(dists):
    """Offline, pip finds ``percept-torch>=0.1`` (the plugin's requirement) in the wheel; a plugin still
    requiring ``percept>=0.1`` would fail here, as that name is nowhere to be found."""
    report = dists["tmp"] / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-index", "--no-build-isolation"]
    cmd += ["--find-links", str(dists["wheel"].parent), "--report", str(report), str(dists["wheel"])]
    run(*cmd, str(dists["plugin"]))
    planned = {i["metadata"]["name"]: i["download_info"]["url"] for i in json.loads(report.read_text())["install"]}
    assert planned.keys() == {DIST, "percept-template"}
    assert planned[DIST].endswith(dists["wheel"].name)


def test_installed_wheel_imports_with_its_version_and_finds_the_plugin(dists):
    site = dists["tmp"] / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation"]
    run(*cmd, "--target", str(site), str(dists["wheel"]), str(dists["plugin"]))
    assert (site / "percept" / "py.typed").is_file()
    env = {k: v for k, v in os.environ.items() if k not in ("PERCEPT_PLUGINS", "PERCEPT_DISABLE_PLUGIN_AUTOLOAD")}
    env["PYTHONPATH"] = str(site)  # first on the path: the wheel's percept, not this checkout's
    code = "import percept, importlib.metadata as m\n"
    code += "print(percept.__file__, percept.__version__, m.requires('percept-template'))"
    path, version, requires = run(sys.executable, "-c", code, cwd=dists["tmp"], env=env).stdout.split(" ", 2)
    assert Path(path).is_relative_to(site) and version == VERSION
    assert "percept-torch>=0.1" in requires
    out = run(sys.executable, "-m", "percept", "plugins", cwd=dists["tmp"], env=env).stdout
    assert f"percept.builtin.vgg  (built-in, {DIST} {VERSION})" in out
    assert "template  (plugin, percept-template 0.1.0)" in out and "distances: charbonnier" in out
