"""The plugin host: one ``pluggy.PluginManager`` holding built-ins and entry-point plugins alike.

Discovery runs once, lazily, on the first lookup, under a lock. Built-in modules are registered
first, then every entry point of the group ``percept``. Each plugin's registrations are staged and
committed together: a plugin that fails to import, raises while registering, registers something
invalid, or takes a name that is already taken is skipped with a :class:`~percept.errors.PluginWarning`
naming it and the error, and the rest still load.

Whatever a plugin raises is isolated that way, ``SystemExit``, ``GeneratorExit`` and
``KeyboardInterrupt`` included, except a real Ctrl-C: while discovery runs in the main thread a
SIGINT handler notes that the signal arrived, so a ``KeyboardInterrupt`` the user caused stops the
program while one a plugin raises itself is reported as that plugin's failure. Where that cannot be
told (discovery in another thread, or a SIGINT handler of the application's own), every
``KeyboardInterrupt`` is taken as the user's. Discovery that stops early, for that or for a broken
built-in, leaves the registry empty rather than half-built: the next lookup discovers again.

Which entry points load (``PERCEPT_DISABLE_PLUGIN_AUTOLOAD``, ``PERCEPT_PLUGINS``, and percept's own
entry points, which always load and are listed as built-ins) is decided by :mod:`percept.discovery`.
The toolkit and the demo are such entry points rather than ``BUILTIN_MODULES``, so that the core never
imports them: the layers stay one-way (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import importlib
import importlib.metadata as importlib_metadata
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    wanted_plugins,
)
from percept.errors import PluginWarning, RegistrationError, SpecError, unknown_name

KINDS = ("backbone", "readout", "distance", "preset")
_HOOKS = {
    "backbone": "register_backbones",
    "readout": "register_readouts",
    "distance": "register_distances",
    "preset": "register_presets",
}
BUILTIN_MODULES = (  # imported by name at discovery, never at import percept
    "percept.builtin.alexnet", "percept.builtin.vgg", "percept.builtin.squeezenet", "percept.builtin.resnet",
    "percept.builtin.densenet", "percept.builtin.mobilenet", "percept.builtin.mnasnet", "percept.builtin.shufflenet",
    "percept.builtin.efficientnet", "percept.builtin.convnext", "percept.builtin.regnet", "percept.builtin.inception",
    "percept.builtin.vit", "percept.builtin.swin", "percept.builtin.maxvit", "percept.builtin.segmentation",
    "percept.builtin.readouts", "percept.builtin.distances", "percept.builtin.lpips", "percept.builtin.dists",
    "percept.builtin.descriptors", "percept.builtin.style", "percept.builtin.ssim", "percept.builtin.timm",
    "percept.builtin.kornia", "percept.builtin.elpips",
)  # fmt: skip
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Entry:
    """One registered backbone, readout, distance or preset."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    prefix: bool = False  # serves every name "<name>.<rest>", the factory taking <rest> first
    # Weight sets (hookspecs): None (not stated), PretrainedCfg records, or a function giving them.
    pretrained: Sequence[Any] | Callable[..., Sequence[Any]] | None = None


@dataclass
class PluginInfo:
    """What discovery found for one plugin: where it came from and what it registered."""

    name: str
    version: str | None
    distribution: str | None
    builtin: bool
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None


class Registry:
    """Name -> factory tables for each kind, filled from plugins through pluggy."""

    def __init__(self, builtin_modules: tuple[str, ...] = BUILTIN_MODULES, entry_point_group: str = "percept"):
        self._builtin_modules = builtin_modules
        self._group = entry_point_group
        self._lock = threading.RLock()
        self._loaded = False
        self._interrupts = InterruptWatch()
        self._forget()

    def _forget(self) -> None:
        """An empty registry, as before discovery."""
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self._aliases: dict[str, dict[str, str]] = {k: {} for k in KINDS}
        self._plugins: dict[str, PluginInfo] = {}
        self._skipped_namesakes: list[PluginInfo] = []  # skipped plugins whose name another one holds

    # -- discovery -------------------------------------------------------------------------------

    def ensure_loaded(self) -> None:
        """Discover built-ins and entry-point plugins, once (thread-safe).

        If discovery stops (a user's Ctrl-C, a broken built-in), the registry is left empty and the
        next call discovers again; it is never half-built."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            try:
                with self._interrupts.watching():
                    for module_name in self._builtin_modules:
                        module = importlib.import_module(module_name)
                        # Built-ins must load: an error here is a bug in percept, so it propagates.
                        info = PluginInfo(module_name, None, DISTRIBUTION, True)
                        self._add_plugin(module, module_name, info, strict=True)
                    self._load_entry_points()  # percept's own always, third-party ones as the environment says
            except BaseException:
                self._forget()
                raise
            self._loaded = True

    def _load_entry_points(self) -> None:
        for ep in entry_points_to_load(self._group):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                ep.name,
                getattr(dist, "version", None),
                dist.metadata["Name"] if dist is not None else None,
                is_own_entry_point(ep),
            )
            try:
                obj = ep.load()
            except BaseException as exc:  # whatever a plugin raises skips it, but a user's Ctrl-C
                if self._interrupts.is_users(exc):
                    raise
                self._skip(info, f"failed to import {ep.value!r}: {_describe(exc)}")
                continue
            self._add_plugin(obj, ep.name, info, strict=False)

    def _skip(self, info: PluginInfo, reason: str) -> None:
        info.error = reason
        info.registered = {}
        if info.name in self._plugins:
            self._skipped_namesakes.append(info)  # the one holding the name stays listed too
        else:
            self._plugins[info.name] = info
        warnings.warn(f"percept: skipped plugin {info.name!r}: {reason}", PluginWarning, stacklevel=3)

    def _add_plugin(self, obj: Any, name: str, info: PluginInfo, strict: bool) -> None:
        if name in self._plugins or self.pm.get_plugin(name) is not None:
            err = RegistrationError(f"a plugin named {name!r} is already registered")
            if strict:
                raise err
            self._skip(info, str(err))
            return
        try:
            self.pm.register(obj, name=name)
        except BaseException as exc:
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            if strict or self._interrupts.is_users(exc):
                raise
            self._skip(info, f"invalid hook implementation: {_describe(exc)}")
            return
        staged: list[Entry] = []
        try:
            for kind, hook_name in _HOOKS.items():
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin_name != name:
                        continue
                    register = self._make_register(kind, name, staged)
                    impl.function(**{arg: register for arg in impl.argnames})
        except BaseException as exc:
            self.pm.unregister(name=name)
            if strict or self._interrupts.is_users(exc):
                raise
            self._skip(info, _describe(exc))
            return
        for entry in staged:
            self._entries[entry.kind][entry.name] = entry
            for alias in entry.aliases:
                self._aliases[entry.kind][alias] = entry.name
            info.registered.setdefault(entry.kind, []).append(entry.name)
        self._plugins[name] = info

    def _make_register(self, kind: str, plugin: str, staged: list[Entry]) -> Callable[..., None]:
        def register(
            name: str,
            factory: Callable[..., Any],
            *,
            description: str = "",
            aliases: tuple[str, ...] = (),
            prefix: bool = False,
            pretrained: Sequence[Any] | Callable[..., Sequence[Any]] | None = None,
        ) -> None:
            if not isinstance(name, str) or not _NAME.match(name):
                raise RegistrationError(
                    f"{kind} name must match {_NAME.pattern} (letters, digits, '_', '.', '-'), got {name!r}"
                )
            if not callable(factory):
                raise RegistrationError(f"{kind} {name!r}: factory must be callable, got {type(factory).__name__}")
            for new in (name, *aliases):
                owner = self._owner(kind, new, staged)
                if owner is not None:
                    raise RegistrationError(
                        f"{kind} name {new!r} registered twice: by plugin {owner!r} and by plugin {plugin!r}"
                    )
            if not (pretrained is None or callable(pretrained) or isinstance(pretrained, Sequence)):
                raise RegistrationError(f"{kind} {name!r}: pretrained must be records or a function giving them")
            entry = Entry(kind, name, factory, plugin, description, tuple(aliases), bool(prefix), pretrained)
            staged.append(entry)

        return register

    def _owner(self, kind: str, name: str, staged: list[Entry]) -> str | None:
        for entry in staged:
            if entry.kind == kind and (entry.name == name or name in entry.aliases):
                return entry.plugin
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
            info = PluginInfo(name, None, None, False)
            self._add_plugin(obj, name, info, strict=True)
            return info

    def unregister_plugin(self, name: str) -> None:
        """Remove a plugin registered at run time, and everything it registered."""
        with self._lock:
            info = self._plugins.pop(name, None)
            if info is None:
                raise RegistrationError(f"no plugin named {name!r}; registered: {sorted(self._plugins)}")
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            for kind in KINDS:
                for entry_name in [n for n, e in self._entries[kind].items() if e.plugin == name]:
                    entry = self._entries[kind].pop(entry_name)
                    for alias in entry.aliases:
                        self._aliases[kind].pop(alias, None)

    def get(self, kind: str, name: str) -> Entry:
        """Return the entry registered as ``name`` (or an alias of it); ``SpecError`` if unknown."""
        self.ensure_loaded()
        table = self._entries[kind]
        canonical = self._aliases[kind].get(name, name)
        if canonical not in table:
            served = self._prefixed(kind, name)
            if served is not None:
                return served
            see = f"`percept list {kind}s` or `percept.list_{kind}s()`"
            raise SpecError(unknown_name(kind, name, [*table, *self._aliases[kind]], see=see))
        return table[canonical]

    def has(self, kind: str, name: str) -> bool:
        self.ensure_loaded()
        return self._aliases[kind].get(name, name) in self._entries[kind] or self._prefixed(kind, name) is not None

    def _prefixed(self, kind: str, name: str) -> Entry | None:
        """``timm.resnet50`` served by the prefix entry ``timm``: its factory with ``"resnet50"`` bound first.

        The served name is not checked here (that would import the plugin's library); its factory
        raises ``SpecError`` for a name it does not know."""
        head, dot, rest = name.partition(".")
        entry = self._entries[kind].get(head)
        if not dot or not rest or entry is None or not entry.prefix:
            return None
        pretrained = functools.partial(entry.pretrained, rest) if callable(entry.pretrained) else entry.pretrained
        return dataclasses.replace(
            entry, name=name, factory=functools.partial(entry.factory, rest), prefix=False, pretrained=pretrained
        )

    def names(self, kind: str, pattern: str | None = None) -> list[str]:
        """Sorted registered names of ``kind``, filtered by a shell ``pattern`` (``"vgg*"``)."""
        self.ensure_loaded()
        names = sorted(self._entries[kind])
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names

    def entries(self, kind: str) -> list[Entry]:
        self.ensure_loaded()
        return [self._entries[kind][n] for n in sorted(self._entries[kind])]

    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen: built-ins, entry points (loaded or skipped, with the reason), also two of
        one name (one loaded, the other skipped as a duplicate)."""
        self.ensure_loaded()
        return [*self._plugins.values(), *self._skipped_namesakes]


def _describe(exc: BaseException) -> str:
    """``"ValueError: message"``; exceptions that normally end a program say so."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, (SystemExit, KeyboardInterrupt, GeneratorExit)):
        text += " (raised by the plugin itself; percept skips it instead of stopping)"
    return text


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


def plugin_version(dist_name: str) -> str | None:
    try:
        return importlib_metadata.version(dist_name)
    except importlib_metadata.PackageNotFoundError:
        return None
