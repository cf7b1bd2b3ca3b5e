"""The ``percept`` command's parser and dispatch: the commands come through the ``register_commands`` hook.

The core's commands (:data:`CORE_COMMANDS`: score, list, taps, plugins) are plugins of this hook like
any other; then come the entry points of the group ``percept`` that implement it, chosen by the rule
of :func:`percept.discovery.entry_points_to_load` (percept's own always: the demo and the research
toolkit's sweep, select, finetune and visualize; third-party ones as the environment says). The CLI
imports neither the demo nor the toolkit: they plug in.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import percept.hookspecs as hookspecs
from percept.cli.common import EXIT_ERROR, EXIT_OK, PROG, cli_wording, error, warn
from percept.errors import PerceptError, PluginWarning, RegistrationError

CORE_COMMANDS = ("percept.cli.score", "percept.cli.listing")
"""Modules whose ``register_commands`` give the core's commands, in the order ``--help`` lists them."""


@dataclass(frozen=True)
class Command:
    """One subcommand: ``configure(parser)`` adds its arguments, ``run(args)`` returns the exit code."""

    name: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    plugin: str
    help: str = ""
    description: str | None = None


def _collect(plugin: object, plugin_name: str, table: dict[str, Command]) -> None:
    """Call ``plugin``'s ``register_commands`` (if it has one); add its commands to ``table`` together or not at all."""
    hook = getattr(plugin, "register_commands", None)
    if hook is None or not hasattr(hook, f"{hookspecs.PROJECT}_impl"):  # pluggy's mark of a hook implementation
        return
    staged: dict[str, Command] = {}

    def register(name, configure, run, *, help: str = "", description: str | None = None) -> None:
        if not isinstance(name, str) or not name or name.startswith("-") or any(c.isspace() for c in name):
            raise RegistrationError(f"command name must be a word such as 'sweep', got {name!r}")
        if not callable(configure) or not callable(run):
            raise RegistrationError(f"command {name!r}: configure and run must be callable")
        owner = table[name].plugin if name in table else plugin_name if name in staged else None
        if owner is not None:
            raise RegistrationError(f"command {name!r} registered twice: by plugin {owner!r} and by {plugin_name!r}")
        staged[name] = Command(name, configure, run, plugin_name, help, description)

    hook(register=register)
    table.update(staged)


def collect_commands() -> list[Command]:
    """Every command, the core's first, then the entry-point plugins' (by entry-point name).

    A plugin that fails to import is left out silently here (``percept plugins`` and the registry report
    it); one whose ``register_commands`` raises or takes a taken name is skipped with a
    :class:`~percept.errors.PluginWarning`.

    Example:
        >>> [c.name for c in collect_commands()][:4]
        ['score', 'list', 'taps', 'plugins']
    """
    from percept.discovery import InterruptWatch, entry_points_to_load

    table: dict[str, Command] = {}
    for module_name in CORE_COMMANDS:
        _collect(importlib.import_module(module_name), module_name, table)  # the core's: errors propagate
    interrupts = InterruptWatch()
    with interrupts.watching():
        for ep in entry_points_to_load(hookspecs.PROJECT, warn=False):
            # Whatever a plugin raises (SystemExit included) skips it, but a user's Ctrl-C stops.
            try:
                plugin = ep.load()
            except BaseException as exc:  # reported by the registry and `percept plugins`, not at every command
                if interrupts.is_users(exc):
                    raise
                continue
            try:
                _collect(plugin, ep.name, table)
            except BaseException as exc:  # a plugin's bug skips its commands, the others still work
                if interrupts.is_users(exc):
                    raise
                message = f"percept: skipped the commands of plugin {ep.name!r}: {exc}"
                warnings.warn(message, PluginWarning, stacklevel=2)
    return list(table.values())


def build_parser(commands: Sequence[Command] | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``percept`` command: one subparser per command.

    Args:
        commands: the commands (default :func:`collect_commands`).

    Example:
        >>> build_parser().parse_args(["list", "distances"]).kind
        'distances'
    """
    commands = collect_commands() if commands is None else list(commands)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Perceptual distances from any pretrained network.",
        epilog="Run `percept COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.set_defaults(command_table=tuple(commands))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        child = sub.add_parser(command.name, help=command.help, description=command.description or command.help)
        command.configure(child)
        child.set_defaults(func=command.run)
    return parser


def _version() -> str:
    from percept._version import read_version

    return read_version()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # The library's warnings start with "percept: " so they are recognised among Python's; the CLI's own
    # "percept: warning: " prefix says that already.
    text = str(message)
    warn(text.removeprefix(f"{PROG}: "))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``percept`` command line.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 2 a reported error, 1 nothing matched / a plugin was skipped.

    Example:
        >>> main(["list", "distances", "--pattern", "l2"])  # doctest: +SKIP
        NAME  PLUGIN                     DESCRIPTION
        l2    percept.builtin.distances  squared difference summed over channels, mean over space (LPIPS)
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except PerceptError as exc:
            error(cli_wording(str(exc)))
            return EXIT_ERROR
        except KeyboardInterrupt:
            error("interrupted")
            return 130
        except BrokenPipeError:
            # Output piped into a command that stopped reading (`percept list backbones | head`).
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces a closed stdout until exit
            return EXIT_OK
        except OSError as exc:
            # A full disk under stdout, a file system gone read-only: the system's reason, no traceback.
            from percept.io import describe_os_error

            error(describe_os_error(exc))
            return EXIT_ERROR
