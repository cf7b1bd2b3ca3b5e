"""The plugin loader: every plugin, whatever its source, imported, registered with pluggy, its hooks called.

The registry (:mod:`percept.registry`) decides *which* plugins to load and *when* (the two parts of
discovery, :data:`PARTS` and :data:`COMMANDS`); a :class:`PluginLoader` does the loading, one rule for
every source (a built-in module, an entry point, an object registered at run time):

1. import the plugin once (:class:`~percept.registration.PluginSource` ``load``) and register it with
   the ``pluggy`` plugin manager under its name;
2. call its hooks of one part of discovery, each with a ``register`` callback
   (:mod:`percept.registration`) that checks a registration and stages it;
3. commit the staged registrations together into the tables (:mod:`percept.registry_tables`).

A plugin that fails at any step is skipped with a :class:`~percept.errors.PluginWarning` naming it
(a failing ``register_commands`` skips its commands only), and nothing it registered is kept. A
built-in's errors, and a user's Ctrl-C (:class:`~percept.discovery.InterruptWatch`), propagate.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as importlib_metadata
import warnings
from collections.abc import Callable
from typing import Any

import pluggy

import percept.hookspecs as hookspecs
from percept._version import DISTRIBUTION
from percept.discovery import InterruptWatch, is_own_entry_point
from percept.errors import PluginWarning, RegistrationError
from percept.registration import (
    COMMAND,
    HOOKS,
    KINDS,
    Entry,
    PluginInfo,
    PluginSource,
    command_register,
    describe,
    part_register,
)
from percept.registry_tables import EntryTables

PARTS, COMMANDS = "parts", "commands"  # the two parts of discovery
PHASE_KINDS = {PARTS: KINDS, COMMANDS: (COMMAND,)}
"""The kinds each part of discovery registers."""


class PluginLoader:
    """Loads plugins into one ``pluggy.PluginManager`` and commits what they register into ``tables``.

    Args:
        tables: where registrations go (and whose names are taken).
        interrupts: tells a user's Ctrl-C (which propagates) from a ``KeyboardInterrupt`` a plugin raises.

    Attributes:
        pm: the plugin manager, with percept's hook specifications.
        sources: plugin name -> its :class:`~percept.registration.PluginSource`, in the order found.
        plugins: plugin name -> its :class:`~percept.registration.PluginInfo` (loaded or skipped).
        skipped_namesakes: skipped plugins whose name another plugin holds (listed too).

    Example:
        >>> from percept.discovery import InterruptWatch
        >>> loader = PluginLoader(EntryTables(), InterruptWatch())
        >>> loader.run(loader.module_source("percept.builtin.distances"), PARTS)
        >>> "l2" in loader.tables.names("distance")
        True
    """

    def __init__(self, tables: EntryTables, interrupts: InterruptWatch) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.tables = tables
        self.interrupts = interrupts
        self.sources: dict[str, PluginSource] = {}
        self.seen: dict[int, PluginSource | None] = {}  # id(entry point) -> its source (None: skipped)
        self.plugins: dict[str, PluginInfo] = {}
        self.skipped_namesakes: list[PluginInfo] = []

    # -- sources ---------------------------------------------------------------------------------

    def holds(self, name: str) -> bool:
        """Whether a plugin named ``name`` is known (seen, or registered with the plugin manager)."""
        return name in self.plugins or self.pm.get_plugin(name) is not None

    def add(self, source: PluginSource) -> PluginSource:
        """Keep ``source`` under its name (its info listed among the plugins)."""
        self.sources[source.info.name] = source
        self.plugins[source.info.name] = source.info
        return source

    def module_source(self, module_name: str) -> PluginSource:
        """The source of one of percept's modules loaded by name (a built-in, a core command module); strict."""
        source = self.sources.get(module_name)
        if source is None:
            info = PluginInfo(module_name, None, DISTRIBUTION, True)
            if module_name in self.plugins:
                raise RegistrationError(f"a plugin named {module_name!r} is already registered")
            source = self.add(
                PluginSource(info, functools.partial(importlib.import_module, module_name), True, module_name)
            )
        return source

    def entry_point_source(self, ep: importlib_metadata.EntryPoint) -> PluginSource | None:
        """The source of ``ep``, made once; ``None`` for one skipped because another plugin holds its name."""
        key = id(ep)  # the selection is made once per registry, so each entry point is one object
        if key in self.seen:
            return self.seen[key]
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        info = PluginInfo(ep.name, getattr(dist, "version", None), dist_name, is_own_entry_point(ep))
        source: PluginSource | None = None
        if self.holds(ep.name):
            self.skip(info, f"a plugin named {ep.name!r} is already registered")
        else:
            source = self.add(PluginSource(info, ep.load, False, repr(ep.value)))
        self.seen[key] = source
        return source

    def register_object(self, obj: Any, name: str, phases: tuple[str, ...]) -> PluginInfo:
        """Load ``obj`` (a module or an object with hook functions) as the plugin ``name`` through ``phases``.

        Unlike discovery, errors propagate (``RegistrationError`` and the like), and leave nothing behind."""
        if self.holds(name):
            raise RegistrationError(f"a plugin named {name!r} is already registered")
        source = self.add(PluginSource(PluginInfo(name, None, None, False), lambda: obj, True, name))
        try:
            for phase in phases:
                self.run(source, phase)
        except BaseException:
            self.forget(name)
            raise
        source.strict = False  # its commands, if collected later, fail like any plugin's: skipped, not fatal
        return source.info

    def unregister(self, name: str) -> None:
        """Remove a plugin registered at run time; ``RegistrationError`` if there is none of that name."""
        if name not in self.plugins:
            raise RegistrationError(f"no plugin named {name!r}; registered: {sorted(self.plugins)}")
        self.forget(name)

    def forget(self, name: str) -> None:
        """Remove the plugin ``name`` and everything it registered (a plugin registered at run time)."""
        self.plugins.pop(name, None)
        self.sources.pop(name, None)
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.tables.remove(name)

    # -- loading ---------------------------------------------------------------------------------

    def run(self, source: PluginSource, phase: str) -> None:
        """Import ``source`` if needed, call its hooks of ``phase``, and commit what they register together."""
        if phase in source.phases or source.info.error is not None:
            return
        source.phases.add(phase)
        if not source.loaded and not self._load(source):
            return
        name = source.info.name
        staged: list[Entry] = []
        try:
            for kind in PHASE_KINDS[phase]:
                for impl in getattr(self.pm.hook, HOOKS[kind]).get_hookimpls():
                    if impl.plugin_name == name:
                        register = self._make_register(kind, name, staged)
                        impl.function(**{arg: register for arg in impl.argnames})
        except BaseException as exc:
            if source.strict or self.interrupts.is_users(exc):
                raise
            if phase == COMMANDS:
                source.info.command_error = describe(exc)
                message = f"percept: skipped the commands of plugin {name!r}: {describe(exc)}"
                warnings.warn(message, PluginWarning, stacklevel=4)
            else:
                self._drop(source, describe(exc))
            return
        self.tables.commit(staged, source.info)

    def _load(self, source: PluginSource) -> bool:
        """Import the plugin and register it with the plugin manager; False (and skipped) if that fails."""
        try:
            source.obj = source.load()
        except BaseException as exc:  # whatever a plugin raises skips it, but a user's Ctrl-C
            if source.strict or self.interrupts.is_users(exc):
                raise
            self._drop(source, f"failed to import {source.label}: {describe(exc)}")
            return False
        try:
            self.pm.register(source.obj, name=source.info.name)
        except BaseException as exc:
            if self.pm.get_plugin(source.info.name) is not None:
                self.pm.unregister(name=source.info.name)
            if source.strict or self.interrupts.is_users(exc):
                raise
            self._drop(source, f"invalid hook implementation: {describe(exc)}")
            return False
        source.loaded = True
        return True

    def _make_register(self, kind: str, plugin: str, staged: list[Entry]) -> Callable[..., None]:
        def owner(kind: str, name: str, staged: list[Entry]) -> str | None:
            return self.tables.owner(kind, name, staged, plugin)

        if kind == COMMAND:
            return command_register(plugin, staged, owner)
        return part_register(kind, plugin, staged, owner)

    def _drop(self, source: PluginSource, reason: str) -> None:
        """Skip a plugin: out of the plugin manager, nothing it registered kept, a warning naming it."""
        name = source.info.name
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.tables.remove(name)
        source.loaded = False
        self.skip(source.info, reason)

    def skip(self, info: PluginInfo, reason: str) -> None:
        """Mark ``info`` skipped for ``reason`` and warn (a namesake of a listed plugin is listed beside it)."""
        info.error = reason
        info.registered = {}
        if self.plugins.get(info.name, info) is not info:
            self.skipped_namesakes.append(info)  # the one holding the name stays listed too
        else:
            self.plugins[info.name] = info
        warnings.warn(f"percept: skipped plugin {info.name!r}: {reason}", PluginWarning, stacklevel=4)
