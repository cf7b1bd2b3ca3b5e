"""What a plugin registers, and the ``register`` callbacks that check it: one rule for every kind.

A hook (:mod:`percept.hookspecs`) is handed a ``register`` callback; what it registers is staged
and committed together by the registry (:mod:`percept.registry`). The callbacks here check each
registration (a valid name, a callable factory, no name taken) and raise
:class:`~percept.errors.RegistrationError` naming the plugin otherwise. Commands are one more kind:
their ``configure`` and ``run`` may be given as ``"module:function"`` strings (:class:`Reference`),
imported only when the command is used, so that registering a command costs nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from percept.errors import RegistrationError

KINDS = ("backbone", "readout", "distance", "preset")
"""The parts a spec names, registered when the registry is first used."""
COMMAND = "command"
"""Subcommands of the ``percept`` command line, registered only when commands are asked for."""
ALL_KINDS = (*KINDS, COMMAND)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class Reference:
    """A function named ``"module:attribute"``, imported on its first call (a command registered lazily).

    Example:
        >>> join = Reference("os.path:join")
        >>> join("a", "b")
        'a/b'
    """

    def __init__(self, target: str):
        module, sep, attribute = target.partition(":")
        if not sep or not module.strip() or not attribute.strip():
            raise RegistrationError(f"a reference must read 'module:function', got {target!r}")
        self.module, self.attribute = module.strip(), attribute.strip()

    def resolve(self) -> Callable[..., Any]:
        """The function itself (imports its module)."""
        obj: Any = importlib.import_module(self.module)
        for part in self.attribute.split("."):
            obj = getattr(obj, part)
        return obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Reference('{self.module}:{self.attribute}')"


@dataclass(frozen=True)
class Entry:
    """One registered backbone, readout, distance, preset or command.

    For a command, ``factory`` is its ``run(args)``, ``description`` its one-line help, and
    ``configure``, ``details``, ``requires`` and ``install`` the rest of what it registered.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    prefix: bool = False  # serves every name "<name>.<rest>", the factory taking <rest> first
    # Weight sets (hookspecs): None (not stated), PretrainedCfg records, or a function giving them.
    pretrained: Sequence[Any] | Callable[..., Sequence[Any]] | None = None
    configure: Callable[..., Any] | None = None  # commands: adds the command's arguments to its parser
    details: str | None = None  # commands: the paragraph of `percept NAME --help`
    requires: tuple[str, ...] = ()  # commands: modules that must be importable before it runs
    install: str = ""  # commands: how to install those modules


@dataclass
class PluginInfo:
    """What discovery found for one plugin: where it came from and what it registered."""

    name: str
    version: str | None
    distribution: str | None
    builtin: bool
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    command_error: str | None = None  # its commands were skipped (the rest of it loaded)


HOOKS = {
    "backbone": "register_backbones",
    "readout": "register_readouts",
    "distance": "register_distances",
    "preset": "register_presets",
    COMMAND: "register_commands",
}
"""The hook (:mod:`percept.hookspecs`) through which each kind is registered."""


@dataclass
class PluginSource:
    """One plugin as the registry keeps it: where it comes from and which parts of discovery called its hooks."""

    info: PluginInfo
    load: Callable[[], Any]
    strict: bool  # a built-in: its errors propagate
    label: str  # what failed to import: the module or entry-point value
    obj: Any = None
    loaded: bool = False
    phases: set[str] = field(default_factory=set)


Owner = Callable[[str, str, list[Entry]], "str | None"]
"""``owner(kind, name, staged)``: the plugin that already holds ``name`` of ``kind``, if any."""


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not NAME.match(name):
        raise RegistrationError(f"{kind} name must match {NAME.pattern} (letters, digits, '_', '.', '-'), got {name!r}")


def _check_free(kind: str, names: Sequence[str], plugin: str, staged: list[Entry], owner: Owner) -> None:
    for new in names:
        holder = owner(kind, new, staged)
        if holder is not None:
            raise RegistrationError(f"{kind} {new!r} registered twice: by plugin {holder!r} and by plugin {plugin!r}")


def part_register(kind: str, plugin: str, staged: list[Entry], owner: Owner) -> Callable[..., None]:
    """The ``register`` callback of the hook of ``kind`` (a backbone, readout, distance or preset)."""

    def register(
        name: str,
        factory: Callable[..., Any],
        *,
        description: str = "",
        aliases: tuple[str, ...] = (),
        prefix: bool = False,
        pretrained: Sequence[Any] | Callable[..., Sequence[Any]] | None = None,
    ) -> None:
        _check_name(kind, name)
        if not callable(factory):
            raise RegistrationError(f"{kind} {name!r}: factory must be callable, got {type(factory).__name__}")
        _check_free(kind, (name, *aliases), plugin, staged, owner)
        if not (pretrained is None or callable(pretrained) or isinstance(pretrained, Sequence)):
            raise RegistrationError(f"{kind} {name!r}: pretrained must be records or a function giving them")
        staged.append(Entry(kind, name, factory, plugin, description, tuple(aliases), bool(prefix), pretrained))

    return register


def _function(name: str, role: str, value: Any) -> Callable[..., Any]:
    if isinstance(value, str):
        return Reference(value)
    if not callable(value):
        raise RegistrationError(
            f"command {name!r}: {role} must be callable or 'module:function', got {type(value).__name__}"
        )
    return value


def command_register(plugin: str, staged: list[Entry], owner: Owner) -> Callable[..., None]:
    """The ``register`` callback of the ``register_commands`` hook (see :mod:`percept.hookspecs`)."""

    def register(
        name: str,
        configure: Callable[..., Any] | str,
        run: Callable[..., Any] | str,
        *,
        help: str = "",
        description: str | None = None,
        requires: Sequence[str] = (),
        install: str = "",
    ) -> None:
        _check_name(COMMAND, name)
        configure_fn, run_fn = _function(name, "configure", configure), _function(name, "run", run)
        for option, value in (("help", help), ("install", install)):
            if not isinstance(value, str):
                raise RegistrationError(f"command {name!r}: {option} must be a string, got {type(value).__name__}")
        if description is not None and not isinstance(description, str):
            raise RegistrationError(f"command {name!r}: description must be a string or None")
        if isinstance(requires, str) or not all(isinstance(m, str) for m in requires):
            raise RegistrationError(f"command {name!r}: requires must be module names, got {requires!r}")
        _check_free(COMMAND, (name,), plugin, staged, owner)
        staged.append(
            Entry(
                COMMAND,
                name,
                run_fn,
                plugin,
                help,
                configure=configure_fn,
                details=description,
                requires=tuple(requires),
                install=install,
            )
        )

    return register


def prefixed(entry: Entry, rest: str) -> Entry:
    """``timm.resnet50`` served by the prefix entry ``timm``: its factory with ``"resnet50"`` bound first.

    The served name is not checked here (that would import the plugin's library); its factory
    raises ``SpecError`` for a name it does not know.
    """
    pretrained = functools.partial(entry.pretrained, rest) if callable(entry.pretrained) else entry.pretrained
    factory = functools.partial(entry.factory, rest)
    return dataclasses.replace(entry, name=f"{entry.name}.{rest}", factory=factory, prefix=False, pretrained=pretrained)


def describe(exc: BaseException) -> str:
    """``"ValueError: message"``; exceptions that normally end a program say so.

    Example:
        >>> describe(SystemExit(3))
        'SystemExit: 3 (raised by the plugin itself; percept skips it instead of stopping)'
    """
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, (SystemExit, KeyboardInterrupt, GeneratorExit)):
        text += " (raised by the plugin itself; percept skips it instead of stopping)"
    return text
