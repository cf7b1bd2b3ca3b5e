"""The plugin host: built-ins through pluggy, entry points, isolation of broken plugins, clashes."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from _distributions import make_distribution

import percept
from percept.errors import PluginWarning, RegistrationError, SpecError
from percept.registry import Registry

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


# -- one host: commands are a kind; percept's own applications load when used ----------------------


def test_building_a_metric_imports_no_application():
    """Issue 24.2: the core loads no application unless a toolkit preset is named."""
    code = (
        "import sys, warnings, torch\n"
        "warnings.simplefilter('ignore')\n"
        "from percept import PerceptualLoss, PerceptualMetric, perceptual_distance\n"
        "x = torch.rand(1, 3, 16, 16)\n"
        "PerceptualLoss('pixel:all/raw/l1')(x, x)\n"
        "PerceptualMetric('alexnet:conv1/unit/l2', weights=None).update(x, x)\n"
        "perceptual_distance(x, x, 'pixel:all/unit/mse')\n"
        "apps = ('percept.cli', 'percept.demo', 'percept.eval')\n"
        "print(sorted(m for m in sys.modules if m.startswith(apps)))\n"
        "try:\n"
        "    PerceptualLoss('map-selection')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "print('percept.eval.presets' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    apps, error, toolkit = out.splitlines()
    assert apps == "[]"
    assert error.startswith("SpecError preset 'map-selection' needs selection=")  # found by name, built
    assert toolkit == "True"


def test_every_preset_the_toolkit_registers_is_declared():
    from percept.eval.presets import register_presets

    names: list[str] = []
    register_presets(lambda name, factory, **kw: names.append(name))
    declared = set(percept.registry.APPLICATION_PRESETS["toolkit"])
    assert names and set(names) <= declared, (
        f"add {sorted(set(names) - declared)} to percept.registry.APPLICATION_PRESETS['toolkit'] (its light "
        "declaration: the registry knows the name without importing the toolkit)"
    )


def test_a_declared_preset_is_known_before_its_application_loads():
    registry = Registry()
    assert registry.has("preset", "map-selection")
    assert "map-selection" in registry.names("preset")
    assert "toolkit" in registry._deferred  # declared, not imported
    assert registry.get("preset", "map-selection").plugin == "toolkit"
    assert "toolkit" not in registry._deferred


COMMANDS = """
import percept

@percept.hookimpl
def register_commands(register):
    register("lazy-hello", "lazy_hello_impl:configure", "lazy_hello_impl:run", help="registered by name")
"""
COMMAND_IMPL = """
def configure(parser):
    parser.add_argument("who")

def run(args):
    print("hello", args.who)
    return 0
"""


def test_commands_are_a_kind_of_the_registry_and_may_be_named_lazily(site, capsys):
    make_distribution(
        site, "lazy-hello", {"lazy": "lazy_hello"}, {"lazy_hello": COMMANDS, "lazy_hello_impl": COMMAND_IMPL}
    )
    registry = Registry()
    entry = registry.get("command", "lazy-hello")
    assert entry.plugin == "lazy" and entry.description == "registered by name"
    assert "lazy_hello_impl" not in sys.modules  # nothing imported until the command is used
    assert [e.name for e in registry.entries("command")][:4] == ["score", "list", "taps", "plugins"]
    import percept.registry as module
    from percept.cli import main

    module._registry = registry
    try:
        assert main(["lazy-hello", "world"]) == 0
    finally:
        module.reset_registry()
    assert capsys.readouterr().out == "hello world\n"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("register('-x', print, print)", "command name must match"),
        ("register('x', 42, print)", "configure must be callable or 'module:function', got int"),
        ("register('x', print, 'no_colon')", "a reference must read 'module:function'"),
        ("register('x', print, print, help=123)", "help must be a string, got int"),
        ("register('x', print, print, requires='pandas')", "requires must be module names"),
        ("register('score', print, print)", "command 'score' registered twice: by plugin 'percept.cli.score'"),
    ],
)
def test_command_registrations_are_checked(call, message):
    namespace: dict = {}
    hook = "    @percept.hookimpl\n    def register_commands(self, register):\n"
    exec(f"import percept\nclass Bad:\n{hook}        {call}\n", namespace)
    registry = Registry()
    registry.ensure_commands()
    with pytest.raises(RegistrationError, match=message):
        registry.register_plugin(namespace["Bad"](), "bad")


def test_a_plugin_registered_at_run_time_brings_its_commands():
    class Runtime:
        @percept.hookimpl
        def register_commands(self, register):
            register("runtime-hello", print, print, help="registered at run time")

    class Broken:
        @percept.hookimpl
        def register_commands(self, register):
            register("score", print, print)

    registry = Registry()
    registry.register_plugin(Runtime(), "runtime")
    registry.register_plugin(Broken(), "broken")  # its commands are collected later: skipped then, not fatal
    with pytest.warns(PluginWarning, match="skipped the commands of plugin 'broken'.*'score' registered twice"):
        names = [e.name for e in registry.entries("command")]
    assert "runtime-hello" in names and names.count("score") == 1
