"""The ``percept`` command: argument parsing and dispatch, over the commands the plugin registry holds.

Commands are one kind of the registry (:mod:`percept.registry`): the core's (``score``, ``list``,
``taps``, ``plugins``), percept's own applications' (the demo, the research toolkit) and third-party
plugins', all through the ``register_commands`` hook and the registry's rules (staged registration,
a plugin's failure skips it with a warning naming it, percept's own names win). This module only
builds the parser and runs the chosen command:

- the top-level parser needs each command's name and one-line help only; a command's
  ``configure(parser)`` runs only when that command is chosen (or :func:`build_parser` is asked for
  every one), so ``percept --help`` imports no command's module;
- a command whose ``configure`` fails (raises, adds a clashing option) is unavailable: choosing it is
  one error naming its plugin, and every other command works;
- every failure is one line, ``percept: error: <message>`` with exit code 2 (``interrupted``: 130),
  and every warning one line, ``percept: warning: <message>``, printed once.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from percept.cli.common import EXIT_ERROR, EXIT_OK, PROG, cli_wording, error, warn
from percept.errors import PerceptError, PluginWarning, first_line
from percept.registry import COMMAND_MODULES, get_registry

CORE_COMMANDS = COMMAND_MODULES
"""Modules whose ``register_commands`` give the core's commands, in the order ``--help`` lists them."""
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Command:
    """One subcommand: ``configure(parser)`` adds its arguments, ``run(args)`` returns the exit code.

    ``requires`` names modules that must be importable before it runs (``install`` says how to get them).
    """

    name: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    plugin: str
    help: str = ""
    description: str | None = None
    requires: tuple[str, ...] = ()
    install: str = ""


class CommandUnavailable(PerceptError):
    """A command whose ``configure(parser)`` failed: it is skipped, the other commands still work."""


def collect_commands() -> list[Command]:
    """Every command the registry holds: the core's first, then percept's own applications', then plugins'.

    Example:
        >>> [c.name for c in collect_commands()][:4]
        ['score', 'list', 'taps', 'plugins']
    """
    return [
        Command(
            e.name, e.configure or _no_arguments, e.factory, e.plugin, e.description, e.details, e.requires, e.install
        )
        for e in get_registry().entries("command")
    ]


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A command without arguments of its own."""


def _configure(command: Command, parser: argparse.ArgumentParser) -> None:
    """Run ``command.configure(parser)``; whatever it raises (a user's Ctrl-C aside) makes the command unavailable."""
    try:
        command.configure(parser)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin's bug, SystemExit included, costs its command only
        raise CommandUnavailable(
            f"command {command.name!r} of plugin {command.plugin!r} is unavailable: its configure(parser) raised "
            f"{first_line(exc, with_type=True)}"
        ) from None


def _works(command: Command) -> bool:
    """Whether ``command``'s configure runs on a parser of its own; if not, one warning naming its plugin."""
    try:
        _configure(command, argparse.ArgumentParser(prog=f"{PROG} {command.name}"))
    except CommandUnavailable as exc:
        warnings.warn(f"percept: skipped {exc}", PluginWarning, stacklevel=3)
        return False
    return True


def build_parser(commands: Sequence[Command] | None = None, *, configure: bool | str = True) -> argparse.ArgumentParser:
    """The argument parser of the ``percept`` command: one subparser per command.

    Args:
        commands: the commands (default :func:`collect_commands`).
        configure: ``True``: every command's arguments (a command whose ``configure`` fails is left out
            with a warning); a command's name: that command's only (:class:`CommandUnavailable` if its
            ``configure`` fails); ``False``: none (enough for ``percept --help``).

    Example:
        >>> build_parser().parse_args(["list", "distances"]).kind
        'distances'
    """
    commands = collect_commands() if commands is None else list(commands)
    if configure is True:
        commands = [c for c in commands if _works(c)]
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
        if configure is True or configure == command.name:
            _configure(command, child)
        child.set_defaults(func=command.run, command_info=command)
    return parser


def _version() -> str:
    from percept._version import read_version

    return read_version()


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (the top-level options take no value).

    Example:
        >>> chosen_command(["--version"]), chosen_command(["score", "a.png", "b.png"])
        (None, 'score')
    """
    for token in argv:
        if token == "--":
            return None
        if not token.startswith("-"):
            return token
    return None


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Every warning as one line ``percept: warning: <message>`` on stderr, each message once."""
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        # The library's warnings start with "percept: "; the CLI's own prefix says that already.
        text = " ".join(str(message).split("\n")[0].split()).removeprefix(f"{PROG}: ")
        if text not in shown:
            shown.add(text)
            warn(text)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _missing(command: Command) -> str | None:
    """What ``command`` needs that is not installed, as one message with the fix; ``None`` if nothing."""
    missing = [m for m in command.requires if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    fix = command.install or f"pip install {' '.join(missing)}"
    verb = "is" if len(missing) == 1 else "are"
    return f"`percept {command.name}` needs {' and '.join(missing)}, which {verb} not installed: {fix}"


def _run(argv: list[str]) -> int:
    chosen = chosen_command(argv)
    with warnings.catch_warnings():
        if chosen == "plugins":  # it lists every skipped plugin with its reason: no warning on top
            warnings.simplefilter("ignore", PluginWarning)
        commands = collect_commands()
    parser = build_parser(commands, configure=chosen or False)
    args = parser.parse_args(argv)
    command: Command = args.command_info
    missing = _missing(command)
    if missing is not None:
        error(missing)
        return EXIT_ERROR
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.partition(".")[0] == "percept":
            raise
        fix = command.install or f"pip install {exc.name.partition('.')[0]}"
        error(f"`percept {command.name}` needs {exc.name.partition('.')[0]}, which is not installed: {fix}")
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``percept`` command line.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 2 a reported error, 1 nothing matched / a plugin was skipped,
        130 interrupted (Ctrl-C, also while plugins load).

    Example:
        >>> main(["list", "distances", "--pattern", "l2"])  # doctest: +SKIP
        NAME  PLUGIN                     DESCRIPTION
        l2    percept.builtin.distances  squared difference summed over channels, mean over space (LPIPS)
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    with one_line_warnings():
        try:
            return _run(argv)
        except PerceptError as exc:
            error(cli_wording(str(exc)))
            return EXIT_ERROR
        except KeyboardInterrupt:
            error("interrupted")
            return EXIT_INTERRUPTED
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
