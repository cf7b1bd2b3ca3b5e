"""The plugin host: built-ins through pluggy, entry points, isolation of broken plugins, clashes."""

from __future__ import annotations

import textwrap
import threading

import pytest

import percept
from percept.errors import PluginWarning, RegistrationError, SpecError
from percept.registry import Registry


def make_distribution(root, dist_name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Write an installed distribution (a ``.dist-info`` folder and its modules) into ``root``."""
    info = root / f"{dist_name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.2.3\n")
    lines = ["[percept]", *(f"{name} = {target}" for name, target in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


GOOD = """
import percept
from percept.builtin.distances import L1

@percept.hookimpl
def register_distances(register):
    register("fake-l1", lambda **kw: L1(), description="an L1 from a test plugin")
"""
BROKEN_IMPORT = "raise ImportError('this plugin is broken on purpose')\n"
BROKEN_REGISTER = """
import percept

@percept.hookimpl
def register_readouts(register):
    register("half-done", lambda **kw: None)
    raise RuntimeError("failed halfway")
"""
CLASH = """
import percept

@percept.hookimpl
def register_distances(register):
    register("l2", lambda **kw: None)
"""
NOT_CALLABLE = """
import percept

@percept.hookimpl
def register_backbones(register):
    register("not-callable", 42)
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PERCEPT_PLUGINS", raising=False)
    return tmp_path


def test_builtins_register_through_the_plugin_manager():
    registry = Registry()
    registry.ensure_loaded()
    names = {p.name for p in registry.plugins()}
    assert {"percept.builtin.vgg", "percept.builtin.readouts", "percept.builtin.distances"} <= names
    assert registry.pm.get_plugin("percept.builtin.distances") is not None
    assert registry.get("distance", "l2").plugin == "percept.builtin.distances"
    assert {"vgg16", "alexnet", "squeezenet1_1", "resnet50", "mobilenet_v2", "vgg19_bn"} <= set(
        registry.names("backbone")
    )
    assert registry.names("backbone", "vgg1[16]") == ["vgg11", "vgg16"]


def test_entry_point_plugin_is_discovered_with_its_version(site):
    make_distribution(site, "percept-fake", {"fake": "fake_good"}, {"fake_good": GOOD})
    registry = Registry()
    entry = registry.get("distance", "fake-l1")
    assert entry.plugin == "fake"
    info = next(p for p in registry.plugins() if p.name == "fake")
    assert (info.version, info.distribution, info.builtin) == ("1.2.3", "percept-fake", False)
    assert info.registered == {"distance": ["fake-l1"]}


def test_broken_plugins_are_skipped_with_a_warning_and_the_rest_load(site):
    make_distribution(
        site,
        "percept-mixed",
        {"good": "mixed_good", "bad_import": "mixed_bad", "bad_register": "mixed_half", "clash": "mixed_clash"},
        {"mixed_good": GOOD, "mixed_bad": BROKEN_IMPORT, "mixed_half": BROKEN_REGISTER, "mixed_clash": CLASH},
    )
    registry = Registry()
    with pytest.warns(PluginWarning) as record:
        registry.ensure_loaded()
    messages = "\n".join(str(w.message) for w in record)
    assert "'bad_import'" in messages and "broken on purpose" in messages
    assert "'bad_register'" in messages and "failed halfway" in messages
    assert "'clash'" in messages and "percept.builtin.distances" in messages
    assert registry.has("distance", "fake-l1")
    assert not registry.has("readout", "half-done")  # nothing half-registered
    assert registry.get("distance", "l2").plugin == "percept.builtin.distances"  # built-in untouched
    errors = {p.name: p.error for p in registry.plugins() if p.error}
    assert set(errors) == {"bad_import", "bad_register", "clash"}


def test_non_callable_factory_is_reported(site):
    make_distribution(site, "percept-nc", {"nc": "nc_plugin"}, {"nc_plugin": NOT_CALLABLE})
    registry = Registry()
    with pytest.warns(PluginWarning, match="'nc'.*must be callable"):
        registry.ensure_loaded()
    assert not registry.has("backbone", "not-callable")


def test_autoload_can_be_disabled(site, monkeypatch):
    make_distribution(site, "percept-fake", {"fake": "fake_good2"}, {"fake_good2": GOOD})
    monkeypatch.setenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = Registry()
    assert not registry.has("distance", "fake-l1")
    assert registry.has("distance", "l2")


def test_autoload_can_be_limited(site, monkeypatch):
    make_distribution(site, "percept-two", {"one": "two_a", "two": "two_b"}, {"two_a": GOOD, "two_b": BROKEN_IMPORT})
    monkeypatch.setenv("PERCEPT_PLUGINS", "one")
    registry = Registry()
    registry.ensure_loaded()  # 'two' is never imported, so no warning
    assert registry.has("distance", "fake-l1")
    assert "two" not in {p.name for p in registry.plugins()}


def test_duplicate_name_fails_naming_both_plugins():
    registry = Registry()

    class First:
        @percept.hookimpl
        def register_distances(self, register):
            register("twin", lambda **kw: None)

    class Second:
        @percept.hookimpl
        def register_distances(self, register):
            register("twin", lambda **kw: None)

    registry.register_plugin(First(), "first")
    with pytest.raises(RegistrationError, match="'twin' registered twice: by plugin 'first' and by plugin 'second'"):
        registry.register_plugin(Second(), "second")
    registry.unregister_plugin("first")
    assert not registry.has("distance", "twin")


def test_bad_names_are_rejected():
    registry = Registry()

    class Bad:
        @percept.hookimpl
        def register_distances(self, register):
            register("has space", lambda **kw: None)

    with pytest.raises(RegistrationError, match="name must match"):
        registry.register_plugin(Bad(), "bad")


def test_unknown_lookup_lists_choices(monkeypatch):
    monkeypatch.setenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", "1")  # the built-ins alone: installed plugins add names
    with pytest.raises(SpecError, match=r"Valid distances: cosine, .*l1, l2, mse"):
        Registry().get("distance", "nope")


def test_discovery_happens_once_under_concurrency(monkeypatch):
    registry = Registry()
    calls = []
    original = registry._entry_points

    def counted():
        calls.append(1)
        return original()

    monkeypatch.setattr(registry, "_entry_points", counted)
    threads = [threading.Thread(target=registry.ensure_loaded) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1


def test_discovery_is_lazy():
    import subprocess
    import sys

    code = (
        "import percept, percept.registry as r; print(r._registry is None, 'torchvision' in __import__('sys').modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True"
