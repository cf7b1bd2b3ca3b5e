"""Which entry-point plugins discovery loads: the environment's say, and percept's own entry points.

- ``PERCEPT_DISABLE_PLUGIN_AUTOLOAD``: ``1``, ``true``, ``yes``, ``on`` or ``y`` (any case) loads no
  third-party entry point; ``0``, ``false``, ``no``, ``off``, ``n`` or empty loads them all.
- ``PERCEPT_PLUGINS=a,b``: load only the third-party entry points named ``a`` and ``b``
  (case-insensitive, spaces ignored); a name that matches no installed entry point gives a
  ``PluginWarning``. Unset, empty or blank: all of them.

Entry points of percept's own distribution (``percept-torch``: the toolkit's presets and commands,
the demo's command) are part of percept and load whatever these say. One rule, used by the registry
(:mod:`percept.registry`) and by the ``percept`` command's ``register_commands`` hook alike.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as importlib_metadata
import os
import signal
import threading
import warnings
from collections.abc import Iterator

from percept._version import DISTRIBUTION
from percept.errors import PluginWarning

TRUTHY = ("1", "true", "yes", "on", "y")
FALSY = ("", "0", "false", "no", "off", "n")


def autoload_disabled() -> bool:
    """Whether ``$PERCEPT_DISABLE_PLUGIN_AUTOLOAD`` turns entry-point discovery off.

    ``1``, ``true``, ``yes``, ``on``, ``y`` (any case, spaces ignored) turn it off; ``0``, ``false``,
    ``no``, ``off``, ``n``, empty or unset leave it on. Any other value leaves it on with a
    :class:`~percept.errors.PluginWarning` listing these.

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
    if value not in FALSY:
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


def is_own_entry_point(ep: importlib_metadata.EntryPoint) -> bool:
    """Whether ``ep`` belongs to percept's own distribution (``percept-torch``): part of percept, always loaded."""
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.metadata["Name"] == DISTRIBUTION


def entry_points_to_load(group: str = "percept", *, warn: bool = True) -> list[importlib_metadata.EntryPoint]:
    """The entry points of ``group`` that discovery loads, sorted by name.

    percept's own (:func:`is_own_entry_point`) always; third-party ones unless
    ``$PERCEPT_DISABLE_PLUGIN_AUTOLOAD`` is set, and only those ``$PERCEPT_PLUGINS`` names when it is.
    The plugin registry and the ``percept`` command's ``register_commands`` hook both use this one rule.

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
    others = [ep for ep in found if not is_own_entry_point(ep)]
    if autoload_disabled():
        return own
    allowed = wanted_plugins()
    if allowed is None:
        return found
    unmatched = allowed - {ep.name.lower() for ep in others}
    if unmatched and warn:
        installed = ", ".join(sorted({ep.name for ep in others})) or "none"
        warnings.warn(
            f"percept: PERCEPT_PLUGINS names {', '.join(repr(n) for n in sorted(unmatched))}, which match no "
            f"installed entry-point plugin (installed: {installed})",
            PluginWarning,
            stacklevel=5,
        )
    return [ep for ep in found if ep in own or ep.name.lower() in allowed]


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
