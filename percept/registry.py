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
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import importlib.metadata as importlib_metadata
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pluggy

import percept.hookspecs as hookspecs
from percept._version import DISTRIBUTION
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
from percept.errors import PluginWarning, RegistrationError, SpecError, unknown_name
from percept.registration import (  # Entry and PluginInfo: percept.registry.Entry stays
    ALL_KINDS,
    COMMAND,
    HOOKS,
    KINDS,
    Entry,
    PluginInfo,
    PluginSource,
    command_register,
    describe,
    part_register,
    prefixed,
)

PARTS, COMMANDS = "parts", "commands"  # the two parts of discovery, and the kinds each registers
_PHASE_KINDS = {PARTS: KINDS, COMMANDS: (COMMAND,)}
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
    """Name -> factory tables for each kind, filled from plugins through pluggy."""

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
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._loaded = False  # the parts
        self._commands_loaded = False
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in ALL_KINDS}
        self._aliases: dict[str, dict[str, str]] = {k: {} for k in ALL_KINDS}
        self._declared: dict[str, str] = {}  # preset name -> the own application declaring it
        self._deferred: dict[str, PluginSource] = {}  # own applications not loaded yet
        self._sources: dict[str, PluginSource] = {}  # plugin name -> its source, in the order found
        self._seen: dict[int, PluginSource | None] = {}  # id(entry point) -> its source (None: skipped)
        self._plugins: dict[str, PluginInfo] = {}
        self._skipped_namesakes: list[PluginInfo] = []  # skipped plugins whose name another one holds
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
                self._run(self._module_source(module_name), PARTS)
            for ep in self._entry_points():
                source = self._entry_point_source(ep)
                if source is None:
                    continue
                if source.info.builtin and ep.name in self._applications and PARTS not in source.phases:
                    self._defer(source, self._applications[ep.name])
                else:
                    self._run(source, PARTS)
            self._loaded = True

    def ensure_commands(self) -> None:
        """Discover the commands, once: the core's, percept's own entry points', then third-party ones'."""
        if self._commands_loaded:
            return
        with self._discovering():
            if self._commands_loaded:
                return
            for module_name in self._command_modules:
                self._run(self._module_source(module_name), COMMANDS)
            for ep in self._entry_points():
                source = self._entry_point_source(ep)
                if source is not None and (source.info.builtin or source.loaded or may_register_commands(ep)):
                    self._run(source, COMMANDS)
            for source in list(self._sources.values()):  # plugins registered at run time
                if source.loaded and source.info.distribution is None:
                    self._run(source, COMMANDS)
            self._commands_loaded = True

    def _entry_points(self) -> list[importlib_metadata.EntryPoint]:
        """The entry points to load, chosen once per registry (so each warning about them comes once)."""
        if self._selected is None:
            self._selected = entry_points_to_load(self._group)
            self.notices = stale_distributions(self._group)
            for notice in self.notices:
                warnings.warn(f"percept: {notice}", PluginWarning, stacklevel=5)
        return self._selected

    def _module_source(self, module_name: str) -> PluginSource:
        source = self._sources.get(module_name)
        if source is None:
            info = PluginInfo(module_name, None, DISTRIBUTION, True)
            if module_name in self._plugins:
                raise RegistrationError(f"a plugin named {module_name!r} is already registered")
            source = PluginSource(info, functools.partial(importlib.import_module, module_name), True, module_name)
            self._sources[module_name] = self._add_info(source)
        return source

    def _entry_point_source(self, ep: importlib_metadata.EntryPoint) -> PluginSource | None:
        """The source of ``ep``, made once; ``None`` for one skipped because another plugin holds its name."""
        key = id(ep)  # the selection is made once per registry, so each entry point is one object
        if key in self._seen:
            return self._seen[key]
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        info = PluginInfo(ep.name, getattr(dist, "version", None), dist_name, is_own_entry_point(ep))
        source: PluginSource | None = None
        if ep.name in self._plugins or self.pm.get_plugin(ep.name) is not None:
            self._skip(info, f"a plugin named {ep.name!r} is already registered")
        else:
            source = PluginSource(info, ep.load, False, repr(ep.value))
            self._sources[ep.name] = self._add_info(source)
        self._seen[key] = source
        return source

    def _add_info(self, source: PluginSource) -> PluginSource:
        self._plugins[source.info.name] = source.info
        return source

    def _defer(self, source: PluginSource, presets: tuple[str, ...]) -> None:
        self._deferred[source.info.name] = source
        for name in presets:
            self._declared.setdefault(name, source.info.name)

    def _realize(self, names: list[str]) -> None:
        """Load the deferred applications ``names`` (their presets become real entries)."""
        with self._discovering():
            for name in names:
                source = self._deferred.pop(name, None)
                if source is not None:
                    self._declared = {k: v for k, v in self._declared.items() if v != name}
                    self._run(source, PARTS)

    def _run(self, source: PluginSource, phase: str) -> None:
        """Import ``source`` if needed, call its hooks of ``phase``, and commit what they register together."""
        if phase in source.phases or source.info.error is not None:
            return
        source.phases.add(phase)
        if not source.loaded and not self._load(source):
            return
        name = source.info.name
        staged: list[Entry] = []
        try:
            for kind in _PHASE_KINDS[phase]:
                for impl in getattr(self.pm.hook, HOOKS[kind]).get_hookimpls():
                    if impl.plugin_name == name:
                        register = self._make_register(kind, name, staged)
                        impl.function(**{arg: register for arg in impl.argnames})
        except BaseException as exc:
            if source.strict or self._interrupts.is_users(exc):
                raise
            if phase == COMMANDS:
                source.info.command_error = describe(exc)
                message = f"percept: skipped the commands of plugin {name!r}: {describe(exc)}"
                warnings.warn(message, PluginWarning, stacklevel=4)
            else:
                self._drop(source, describe(exc))
            return
        for entry in staged:
            self._entries[entry.kind][entry.name] = entry
            for alias in entry.aliases:
                self._aliases[entry.kind][alias] = entry.name
            source.info.registered.setdefault(entry.kind, []).append(entry.name)

    def _load(self, source: PluginSource) -> bool:
        """Import the plugin and register it with the plugin manager; False (and skipped) if that fails."""
        try:
            source.obj = source.load()
        except BaseException as exc:  # whatever a plugin raises skips it, but a user's Ctrl-C
            if source.strict or self._interrupts.is_users(exc):
                raise
            self._drop(source, f"failed to import {source.label}: {describe(exc)}")
            return False
        try:
            self.pm.register(source.obj, name=source.info.name)
        except BaseException as exc:
            if self.pm.get_plugin(source.info.name) is not None:
                self.pm.unregister(name=source.info.name)
            if source.strict or self._interrupts.is_users(exc):
                raise
            self._drop(source, f"invalid hook implementation: {describe(exc)}")
            return False
        source.loaded = True
        return True

    def _drop(self, source: PluginSource, reason: str) -> None:
        """Skip a plugin: out of the plugin manager, nothing it registered kept, a warning naming it."""
        name = source.info.name
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self._remove_entries(name)
        source.loaded = False
        self._skip(source.info, reason)

    def _skip(self, info: PluginInfo, reason: str) -> None:
        info.error = reason
        info.registered = {}
        if self._plugins.get(info.name, info) is not info:
            self._skipped_namesakes.append(info)  # the one holding the name stays listed too
        else:
            self._plugins[info.name] = info
        warnings.warn(f"percept: skipped plugin {info.name!r}: {reason}", PluginWarning, stacklevel=4)

    def _remove_entries(self, plugin: str) -> None:
        for kind in ALL_KINDS:
            for entry_name in [n for n, e in self._entries[kind].items() if e.plugin == plugin]:
                entry = self._entries[kind].pop(entry_name)
                for alias in entry.aliases:
                    self._aliases[kind].pop(alias, None)

    def _make_register(self, kind: str, plugin: str, staged: list[Entry]) -> Callable[..., None]:
        def owner(kind: str, name: str, staged: list[Entry]) -> str | None:
            return self._owner(kind, name, staged, plugin)

        if kind == COMMAND:
            return command_register(plugin, staged, owner)
        return part_register(kind, plugin, staged, owner)

    def _owner(self, kind: str, name: str, staged: list[Entry], plugin: str) -> str | None:
        for entry in staged:
            if entry.kind == kind and (entry.name == name or name in entry.aliases):
                return entry.plugin
        if kind == "preset" and self._declared.get(name, plugin) != plugin:
            return self._declared[name]  # reserved by percept's own application, not loaded yet
        canonical = self._aliases[kind].get(name, name)
        registered = self._entries[kind].get(canonical)
        return registered.plugin if registered is not None else None

    # -- public lookups --------------------------------------------------------------------------

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
            if name in self._plugins or self.pm.get_plugin(name) is not None:
                raise RegistrationError(f"a plugin named {name!r} is already registered")
            source = PluginSource(PluginInfo(name, None, None, False), lambda: obj, True, name)
            self._sources[name] = self._add_info(source)
            try:
                self._run(source, PARTS)
                if self._commands_loaded:
                    self._run(source, COMMANDS)
            except BaseException:
                self._forget_plugin(name)
                raise
            source.strict = False  # its commands, if collected later, fail like any plugin's: skipped, not fatal
            return source.info

    def unregister_plugin(self, name: str) -> None:
        """Remove a plugin registered at run time, and everything it registered."""
        with self._lock:
            if name not in self._plugins:
                raise RegistrationError(f"no plugin named {name!r}; registered: {sorted(self._plugins)}")
            self._forget_plugin(name)

    def _forget_plugin(self, name: str) -> None:
        self._plugins.pop(name, None)
        self._sources.pop(name, None)
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self._remove_entries(name)

    def _ready(self, kind: str) -> None:
        if kind == COMMAND:
            self.ensure_commands()
        else:
            self.ensure_loaded()

    def get(self, kind: str, name: str) -> Entry:
        """Return the entry registered as ``name`` (or an alias of it); ``SpecError`` if unknown.

        A preset declared by one of percept's own applications loads that application first; a name
        found nowhere loads every application not loaded yet before it is refused."""
        self._ready(kind)
        if name in self._declared and kind == "preset":
            self._realize([self._declared[name]])
        found = self._find(kind, name)
        if found is None and self._deferred:
            self._realize(list(self._deferred))
            found = self._find(kind, name)
        if found is None:
            table = self._entries[kind]
            see = f"`percept list {kind}s` or `percept.list_{kind}s()`"
            raise SpecError(unknown_name(kind, name, [*table, *self._aliases[kind]], see=see))
        return found

    def _find(self, kind: str, name: str) -> Entry | None:
        canonical = self._aliases[kind].get(name, name)
        if canonical in self._entries[kind]:
            return self._entries[kind][canonical]
        return self._prefixed(kind, name)

    def has(self, kind: str, name: str) -> bool:
        """Whether ``name`` is registered (a preset declared by percept's own applications counts, unloaded)."""
        self._ready(kind)
        if kind == "preset" and name in self._declared:
            return True
        return self._aliases[kind].get(name, name) in self._entries[kind] or self._prefixed(kind, name) is not None

    def _prefixed(self, kind: str, name: str) -> Entry | None:
        head, dot, rest = name.partition(".")
        entry = self._entries[kind].get(head)
        return prefixed(entry, rest) if dot and rest and entry is not None and entry.prefix else None

    def names(self, kind: str, pattern: str | None = None) -> list[str]:
        """Sorted registered names of ``kind`` (declared presets included), filtered by a shell ``pattern``."""
        self._ready(kind)
        names = sorted({*self._entries[kind], *(self._declared if kind == "preset" else ())})
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names

    def entries(self, kind: str) -> list[Entry]:
        """Every entry of ``kind``: by name, commands in the order they were registered (the core's first)."""
        self._ready(kind)
        if kind != COMMAND and self._deferred:
            self._realize(list(self._deferred))
        if kind == COMMAND:
            return list(self._entries[kind].values())
        return [self._entries[kind][n] for n in sorted(self._entries[kind])]

    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen: built-ins, percept's own applications, entry points (loaded or skipped, with
        the reason), also two of one name (one loaded, the other skipped as a duplicate)."""
        self.ensure_loaded()
        if self._deferred:
            self._realize(list(self._deferred))

        def rank(info: PluginInfo) -> int:  # the order of discovery: built-ins, the core's commands, entry points
            return 0 if info.name in self._builtin_modules else 1 if info.name in self._command_modules else 2

        return [*sorted(self._plugins.values(), key=rank), *self._skipped_namesakes]


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
