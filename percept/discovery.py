"""Which entry-point plugins discovery loads: the environment's say, and percept's own entry points.

- ``PERCEPT_DISABLE_PLUGIN_AUTOLOAD``: ``1``, ``true``, ``yes``, ``on`` or ``y`` (any case) loads no
  third-party entry point; ``0``, ``false``, ``no``, ``off``, ``n`` or empty loads them all.
- ``PERCEPT_PLUGINS=a,b``: load only the third-party entry points named ``a`` and ``b``
  (case-insensitive, spaces ignored); a name that matches no installed entry point gives a
  ``PluginWarning``. Unset, empty or blank: all of them.

Entry points of percept's own distribution (``percept-torch``: the toolkit's presets and commands,
the demo's command) are part of percept and load whatever these say, and before any third-party one,
so that percept's own names win whatever the entry points are called. Entry points of a leftover
install under an old distribution name (``percept``, before the rename) are never loaded:
:func:`stale_distributions` names them, with the fix. The registry (:mod:`percept.registry`), the one
plugin host, is the only user of these rules.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.metadata as importlib_metadata
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Iterator

from percept._version import DISTRIBUTION
from percept.errors import PluginWarning

TRUTHY = ("1", "true", "yes", "on", "y")
FALSY = ("", "0", "false", "no", "off", "n")
OLD_DISTRIBUTIONS = ("percept",)
"""Names percept's own distribution was installed under before (the name ``percept`` on PyPI is another project)."""
_warned_values: set[str] = set()  # PERCEPT_DISABLE_PLUGIN_AUTOLOAD values already warned about (once each)


def autoload_disabled() -> bool:
    """Whether ``$PERCEPT_DISABLE_PLUGIN_AUTOLOAD`` turns entry-point discovery off.

    ``1``, ``true``, ``yes``, ``on``, ``y`` (any case, spaces ignored) turn it off; ``0``, ``false``,
    ``no``, ``off``, ``n``, empty or unset leave it on. Any other value leaves it on with a
    :class:`~percept.errors.PluginWarning` listing these (once per value and process).

    Example:
        >>> import os; os.environ["PERCEPT_DISABLE_PLUGIN_AUTOLOAD"] = "On"
        >>> autoload_disabled()
        True
        >>> del os.environ["PERCEPT_DISABLE_PLUGIN_AUTOLOAD"]
    """
    raw = os.environ.get("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", "")
    value = raw.strip().lower()
    if value in TRUTHY:
        return True
    if value not in FALSY and raw not in _warned_values:
        _warned_values.add(raw)
        warnings.warn(
            f"percept: PERCEPT_DISABLE_PLUGIN_AUTOLOAD={raw!r} is not understood, so entry-point plugins are "
            f"loaded; expected one of {', '.join(TRUTHY)} (load none) or {', '.join(f for f in FALSY if f)} or "
            "empty (load them)",
            PluginWarning,
            stacklevel=2,
        )
    return False


def wanted_plugins() -> set[str] | None:
    """The entry-point names ``$PERCEPT_PLUGINS`` keeps, lower-cased; ``None`` (unset, empty, blank): all."""
    text = os.environ.get("PERCEPT_PLUGINS", "")
    names = {n.strip().lower() for n in text.split(",") if n.strip()}
    return names or None


def _distribution_name(ep: importlib_metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else None


def _normalized(name: str | None) -> str:
    return re.sub(r"[-_.]+", "-", name or "").lower()


def is_own_entry_point(ep: importlib_metadata.EntryPoint) -> bool:
    """Whether ``ep`` belongs to percept's own distribution (``percept-torch``): part of percept, always loaded."""
    return _normalized(_distribution_name(ep)) == DISTRIBUTION


def is_stale_entry_point(ep: importlib_metadata.EntryPoint) -> bool:
    """Whether ``ep`` comes from a leftover install of percept under an old name (:data:`OLD_DISTRIBUTIONS`).

    Such an entry point names percept's own modules (``percept.eval.plugin``) a second time; loading
    it would register everything twice, so discovery leaves it out and :func:`stale_distributions`
    names the distribution and the fix.
    """
    return not is_own_entry_point(ep) and _normalized(_distribution_name(ep)) in OLD_DISTRIBUTIONS


def stale_distributions(group: str = "percept") -> list[str]:
    """One notice per leftover install of percept under an old distribution name, with the fix.

    Example:
        >>> stale_distributions()  # none here  # doctest: +SKIP
        []
    """
    found: dict[str, str] = {}
    for ep in importlib_metadata.entry_points(group=group):
        if is_stale_entry_point(ep):
            dist = getattr(ep, "dist", None)
            found[_distribution_name(ep) or "?"] = getattr(dist, "version", None) or "?"
    return [
        f"a leftover install of percept under its old distribution name {name!r} (version {version}) is "
        f"present; its entry points are ignored. Fix: `pip uninstall {name}` (then `pip install "
        f"--force-reinstall --no-deps {DISTRIBUTION}` if `import percept` fails afterwards)"
        for name, version in sorted(found.items())
    ]


def entry_points_to_load(group: str = "percept", *, warn: bool = True) -> list[importlib_metadata.EntryPoint]:
    """The entry points of ``group`` that discovery loads: percept's own first, then the others, each by name.

    percept's own (:func:`is_own_entry_point`) always, and first, so that their names win over a
    third party's whatever the entry points are called; third-party ones unless
    ``$PERCEPT_DISABLE_PLUGIN_AUTOLOAD`` is set, and only those ``$PERCEPT_PLUGINS`` names when it is;
    never those of a stale install (:func:`is_stale_entry_point`).

    Args:
        group: the entry-point group (``"percept"``).
        warn: warn (:class:`~percept.errors.PluginWarning`) about names in ``$PERCEPT_PLUGINS`` that
            match no installed entry point.

    Example:
        >>> [ep.name for ep in entry_points_to_load()][:2]  # doctest: +SKIP
        ['demo', 'toolkit']
    """
    found = sorted(importlib_metadata.entry_points(group=group), key=lambda e: e.name)
    own = [ep for ep in found if is_own_entry_point(ep)]
    others = [ep for ep in found if not is_own_entry_point(ep) and not is_stale_entry_point(ep)]
    if autoload_disabled():
        return own
    allowed = wanted_plugins()
    if allowed is None:
        return own + others
    unmatched = allowed - {ep.name.lower() for ep in others}
    if unmatched and warn:
        installed = ", ".join(sorted({ep.name for ep in others})) or "none"
        warnings.warn(
            f"percept: PERCEPT_PLUGINS names {', '.join(repr(n) for n in sorted(unmatched))}, which match no "
            f"installed entry-point plugin (installed: {installed})",
            PluginWarning,
            stacklevel=5,
        )
    return own + [ep for ep in others if ep.name.lower() in allowed]


_COMMAND_HINTS = ("register_commands", "import *", "__getattr__", "globals(", "setattr(")


def may_register_commands(ep: importlib_metadata.EntryPoint) -> bool:
    """Whether the plugin ``ep`` names may have a ``register_commands`` hook, decided without importing it.

    The ``percept`` command builds its parser from the plugins that register commands; importing
    every plugin for that would import torch (``percept --help`` in seconds). A plugin module whose
    source never says ``register_commands`` (nor binds names dynamically: ``import *``,
    ``__getattr__``, ``globals()``, ``setattr``) has no such hook, since pluggy finds hooks by name.
    Anything that cannot be read that way (an entry point naming an object, a compiled module, a
    module a custom importer serves) counts as possibly registering commands, and is imported.

    Example:
        >>> from importlib.metadata import EntryPoint
        >>> may_register_commands(EntryPoint("x", "percept.builtin.distances", "percept"))
        False
    """
    module, _, attr = ep.value.partition(":")
    if attr.strip():
        return True
    source = module_source(module.strip())
    return source is None or any(hint in source for hint in _COMMAND_HINTS)


def module_source(name: str) -> str | None:
    """The source text of module ``name``, found as the import system would but without running any module.

    ``importlib.util.find_spec`` imports a submodule's parent packages; this asks the finders of
    ``sys.meta_path`` directly, level by level. ``None`` if the module is not found or has no
    ``.py`` source.

    Example:
        >>> "register_backbones" in module_source("percept.builtin.vgg")
        True
    """
    spec = None
    path = None
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        full = ".".join(parts[:depth])
        loaded = sys.modules.get(full)
        spec = getattr(loaded, "__spec__", None) if loaded is not None else _find_spec(full, path)
        if spec is None:
            return None
        path = spec.submodule_search_locations
        if depth < len(parts) and path is None:
            return None
    origin = spec.origin if spec is not None else None
    if not origin or not origin.endswith(".py"):
        return None
    try:
        with open(origin, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _find_spec(name: str, path) -> importlib.machinery.ModuleSpec | None:
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(name, path)
        except Exception:  # noqa: BLE001 - a finder that cannot answer: try the next one
            continue
        if spec is not None:
            return spec
    return None


class InterruptWatch:
    """Tells a user's Ctrl-C from a ``KeyboardInterrupt`` a plugin raises itself.

    While :meth:`watching` runs in the main thread under Python's own SIGINT handler, a handler notes
    that the signal arrived: a ``KeyboardInterrupt`` then is the user's only if it did. Where that
    cannot be told (another thread, an application's own handler), every one counts as the user's.

    Example:
        >>> watch = InterruptWatch()
        >>> with watch.watching():
        ...     watch.is_users(KeyboardInterrupt()), watch.is_users(ValueError())
        (False, False)
    """

    def __init__(self) -> None:
        self.available = False
        self.signalled = False

    def is_users(self, exc: BaseException) -> bool:
        return isinstance(exc, KeyboardInterrupt) and (self.signalled or not self.available)

    @contextlib.contextmanager
    def watching(self) -> Iterator[InterruptWatch]:
        self.signalled = False
        if threading.current_thread() is not threading.main_thread() or (
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield self  # cannot tell: every KeyboardInterrupt counts as the user's
            return

        def note(signum, frame):
            self.signalled = True
            signal.default_int_handler(signum, frame)

        signal.signal(signal.SIGINT, note)
        self.available = True
        try:
            yield self
        finally:
            self.available = False
            if signal.getsignal(signal.SIGINT) is note:  # a plugin may have installed its own since
                signal.signal(signal.SIGINT, signal.default_int_handler)
