"""The plugin host: one ``pluggy.PluginManager`` for every kind (backbones, readouts, distances,
presets, commands) and every source: built-ins, percept's own applications, entry-point plugins.

Discovery is lazy, under a lock, in two parts sharing the manager (docs/architecture.md draws them):

- **the parts**, on the first lookup of one: :data:`BUILTIN_MODULES`, then the entry points of the
  group ``percept`` (percept's own first, then third-party ones; :mod:`percept.discovery` decides
  which). percept's own applications (:data:`APPLICATION_PRESETS`) are *declared*, not loaded: their
  preset names are reserved, and the application is imported when one is built or listed, or when
  a lookup finds nothing else. A spec naming no toolkit preset imports no ``percept.eval``,
  ``percept.demo`` or ``percept.cli``.
- **the commands**, when the ``percept`` command asks: :data:`COMMAND_MODULES`, percept's own entry
  points, then the third-party ones that may register commands (:func:`~percept.discovery.may_register_commands`).

A plugin's registrations of one part are staged and committed together: one that fails to import,
raises, registers something invalid or takes a taken name is skipped with a
:class:`~percept.errors.PluginWarning` naming it (a failing ``register_commands`` skips its commands
only), and the rest load. percept's own names always win. Whatever a plugin raises is isolated that
way, ``SystemExit`` and ``KeyboardInterrupt`` included, except a user's Ctrl-C
(:class:`~percept.discovery.InterruptWatch`); discovery that stops leaves the registry empty, never
half-built.

:class:`Registry` decides what is loaded and when; loading one plugin (import, ``pluggy``
registration, its hooks called, its registrations committed or the plugin skipped) is
:class:`~percept.plugin_loader.PluginLoader`'s, and the tables of what is registered, with the
"registered twice" and did-you-mean answers, are :class:`~percept.registry_tables.EntryTables`.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pluggy

from percept.discovery import (  # noqa: F401 (percept.registry.autoload_disabled and the like stay)
    FALSY,
    TRUTHY,
    InterruptWatch,
    autoload_disabled,
    entry_points_to_load,
    is_own_entry_point,
    may_register_commands,
    stale_distributions,
    wanted_plugins,
)
from percept.errors import PluginWarning, RegistrationError  # noqa: F401 (percept.registry.RegistrationError stays)
from percept.plugin_loader import COMMANDS, PARTS, PluginLoader
from percept.registration import (  # noqa: F401 (Entry and PluginInfo: percept.registry.Entry stays)
    ALL_KINDS,
    COMMAND,
    KINDS,
    Entry,
    PluginInfo,
    PluginSource,
)
from percept.registry_tables import EntryTables

BUILTIN_MODULES = (  # imported by name at discovery, never at import percept
    "percept.builtin.alexnet", "percept.builtin.vgg", "percept.builtin.squeezenet", "percept.builtin.resnet",
    "percept.builtin.densenet", "percept.builtin.mobilenet", "percept.builtin.mnasnet", "percept.builtin.shufflenet",
    "percept.builtin.efficientnet", "percept.builtin.convnext", "percept.builtin.regnet", "percept.builtin.inception",
    "percept.builtin.vit", "percept.builtin.swin", "percept.builtin.maxvit", "percept.builtin.segmentation",
    "percept.builtin.readouts", "percept.builtin.distances", "percept.builtin.lpips", "percept.builtin.dists",
    "percept.builtin.descriptors", "percept.builtin.style", "percept.builtin.ssim", "percept.builtin.timm",
    "percept.builtin.kornia", "percept.builtin.embedding", "percept.builtin.elpips", "percept.builtin.dreamsim",
)  # fmt: skip
COMMAND_MODULES = ("percept.cli.score", "percept.cli.listing")
"""The core's commands (score, list, taps, plugins): built-ins of the kind ``command``, imported by name
when commands are asked for (by the ``percept`` command), never when a part is looked up."""
APPLICATION_PRESETS: dict[str, tuple[str, ...]] = {
    "toolkit": ("map-selection", "channel-weights", "learned-heads"),
    "demo": (),
}
"""percept's own entry points that load only when used, and the presets each declares (its light
declaration): a preset of :mod:`percept.eval.presets` must be named here too (tests/test_registry.py
checks it), so that its name is known, and reserved, without importing the toolkit."""


class Registry:
    """Name -> factory tables for each kind, filled from plugins through pluggy.

    It decides what to load and when (the module docstring); a :class:`~percept.plugin_loader.PluginLoader`
    loads each plugin, and :class:`~percept.registry_tables.EntryTables` keeps what they register.

    Args:
        builtin_modules: percept's modules imported by name when a part is first looked up.
        entry_point_group: the entry-point group of plugins.
        command_modules: the core's command modules, imported when commands are asked for.
        applications: percept's own entry points loaded when used, and the presets each declares.

    Example:
        >>> registry = Registry()
        >>> registry.get("distance", "l2").plugin
        'percept.builtin.distances'
    """

    def __init__(
        self,
        builtin_modules: tuple[str, ...] = BUILTIN_MODULES,
        entry_point_group: str = "percept",
        command_modules: tuple[str, ...] = COMMAND_MODULES,
        applications: dict[str, tuple[str, ...]] | None = None,
    ):
        self._builtin_modules = builtin_modules
        self._command_modules = command_modules
        self._applications = APPLICATION_PRESETS if applications is None else applications
        self._group = entry_point_group
        self._lock = threading.RLock()
        self._interrupts = InterruptWatch()
        self._forget()

    def _forget(self) -> None:
        """An empty registry, as before discovery."""
        self._tables = EntryTables()
        self._loader = PluginLoader(self._tables, self._interrupts)
        self.pm: pluggy.PluginManager = self._loader.pm  # the plugin manager every plugin is registered with
        self._loaded = False  # the parts
        self._commands_loaded = False
        self._deferred: dict[str, PluginSource] = {}  # own applications not loaded yet
        self._selected: list[importlib_metadata.EntryPoint] | None = None
        self.notices: list[str] = []  # leftover installs under an old name, each with its fix

    # -- discovery -------------------------------------------------------------------------------

    @contextmanager
    def _discovering(self) -> Iterator[None]:
        """Under the lock, watching for a user's Ctrl-C; whatever escapes leaves an empty registry."""
        with self._lock:
            try:
                with self._interrupts.watching():
                    yield
            except BaseException:
                self._forget()
                raise

    def ensure_loaded(self) -> None:
        """Discover the parts: built-ins, then entry-point plugins, once (thread-safe).

        percept's own applications are declared, not loaded (:data:`APPLICATION_PRESETS`). Discovery that
        stops (a user's Ctrl-C, a broken built-in) leaves the registry empty: never half-built."""
        if self._loaded:
            return
        with self._discovering():
            if self._loaded:
                return
            for module_name in self._builtin_modules:
                self._loader.run(self._loader.module_source(module_name), PARTS)
            for ep in self._entry_points():
                source = self._loader.entry_point_source(ep)
                if source is None:
                    continue
                if source.info.builtin and ep.name in self._applications and PARTS not in source.phases:
                    self._deferred[source.info.name] = source
                    self._tables.declare(source.info.name, self._applications[ep.name])
                else:
                    self._loader.run(source, PARTS)
            self._loaded = True

    def ensure_commands(self) -> None:
        """Discover the commands, once: the core's, percept's own entry points', then third-party ones'."""
        if self._commands_loaded:
            return
        with self._discovering():
            if self._commands_loaded:
                return
            for module_name in self._command_modules:
                self._loader.run(self._loader.module_source(module_name), COMMANDS)
            for ep in self._entry_points():
                source = self._loader.entry_point_source(ep)
                if source is not None and (source.info.builtin or source.loaded or may_register_commands(ep)):
                    self._loader.run(source, COMMANDS)
            for source in list(self._loader.sources.values()):  # plugins registered at run time
                if source.loaded and source.info.distribution is None:
                    self._loader.run(source, COMMANDS)
            self._commands_loaded = True

    def _entry_points(self) -> list[importlib_metadata.EntryPoint]:
        """The entry points to load, chosen once per registry (so each warning about them comes once)."""
        if self._selected is None:
            self._selected = entry_points_to_load(self._group)
            self.notices = stale_distributions(self._group)
            for notice in self.notices:
                warnings.warn(f"percept: {notice}", PluginWarning, stacklevel=5)
        return self._selected

    def _realize(self, names: list[str]) -> None:
        """Load the deferred applications ``names`` (their presets become real entries)."""
        with self._discovering():
            for name in names:
                source = self._deferred.pop(name, None)
                if source is not None:
                    self._tables.undeclare(name)
                    self._loader.run(source, PARTS)

    def _ready(self, kind: str, realize: bool = False) -> None:
        """Discover what ``kind`` needs; ``realize``: load the deferred applications too."""
        if kind == COMMAND:
            self.ensure_commands()
            return
        self.ensure_loaded()
        if realize and self._deferred:
            self._realize(list(self._deferred))

    # -- plugins at run time ---------------------------------------------------------------------

    def register_plugin(self, obj: Any, name: str | None = None) -> PluginInfo:
        """Register a plugin object at run time (a module or an object with hook functions).

        Unlike entry-point discovery, errors propagate (``RegistrationError`` and the like).

        Example:
            >>> import percept
            >>> class MyPlugin:
            ...     @percept.hookimpl
            ...     def register_distances(self, register):
            ...         register("my-l1", percept.builtin.distances.L1)
            >>> info = percept.registry.get_registry().register_plugin(MyPlugin(), "my-plugin")  # doctest: +SKIP
        """
        self.ensure_loaded()
        name = name or getattr(obj, "__name__", None) or type(obj).__name__
        with self._lock:
            return self._loader.register_object(obj, name, (PARTS, COMMANDS) if self._commands_loaded else (PARTS,))

    def unregister_plugin(self, name: str) -> None:
        """Remove a plugin registered at run time, and everything it registered."""
        with self._lock:
            self._loader.unregister(name)

    # -- public lookups --------------------------------------------------------------------------

    def get(self, kind: str, name: str) -> Entry:
        """Return the entry registered as ``name`` (or an alias of it); ``SpecError`` if unknown.

        A preset declared by one of percept's own applications loads that application first; a name
        found nowhere loads every application not loaded yet before it is refused."""
        self._ready(kind)
        if name in self._tables.declared and kind == "preset":
            self._realize([self._tables.declared[name]])
        found = self._tables.find(kind, name)
        if found is None and self._deferred:
            self._realize(list(self._deferred))
            found = self._tables.find(kind, name)
        if found is None:
            raise self._tables.unknown(kind, name)
        return found

    def has(self, kind: str, name: str) -> bool:
        """Whether ``name`` is registered (a preset declared by percept's own applications counts, unloaded)."""
        self._ready(kind)
        return self._tables.has(kind, name)

    def names(self, kind: str, pattern: str | None = None) -> list[str]:
        """Sorted registered names of ``kind`` (declared presets included), filtered by a shell ``pattern``."""
        self._ready(kind)
        return self._tables.names(kind, pattern)

    def entries(self, kind: str) -> list[Entry]:
        """Every entry of ``kind``: by name, commands in the order they were registered (the core's first)."""
        self._ready(kind, realize=True)
        return self._tables.of_kind(kind)

    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen: built-ins, percept's own applications, entry points (loaded or skipped, with
        the reason), also two of one name (one loaded, the other skipped as a duplicate)."""
        self._ready("backbone", realize=True)

        def rank(info: PluginInfo) -> int:  # the order of discovery: built-ins, the core's commands, entry points
            return 0 if info.name in self._builtin_modules else 1 if info.name in self._command_modules else 2

        return [*sorted(self._loader.plugins.values(), key=rank), *self._loader.skipped_namesakes]


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry (created on first use; discovery happens on first lookup)."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = Registry()
    return _registry


def reset_registry() -> None:
    """Forget discovery, so the next lookup discovers again (for tests and after installing plugins)."""
    global _registry
    with _registry_lock:
        _registry = None


def list_backbones(pattern: str | None = None) -> list[str]:
    """Names of registered backbones, optionally filtered by a shell pattern.

    Example:
        >>> "vgg16" in list_backbones("vgg*")
        True
    """
    return get_registry().names("backbone", pattern)


def list_readouts(pattern: str | None = None) -> list[str]:
    """Names of registered readouts (``raw``, ``unit``, ...).

    Example:
        >>> "unit" in list_readouts()
        True
    """
    return get_registry().names("readout", pattern)


def list_distances(pattern: str | None = None) -> list[str]:
    """Names of registered distances (``mse``, ``l1``, ``l2``, ``cosine``, ...).

    Example:
        >>> "l2" in list_distances()
        True
    """
    return get_registry().names("distance", pattern)


def list_presets(pattern: str | None = None) -> list[str]:
    """Names of registered presets (``lpips-alex``, ``lpips-vgg``, ``lpips-squeeze``, ...).

    Example:
        >>> "lpips-vgg" in list_presets()
        True
    """
    return get_registry().names("preset", pattern)
