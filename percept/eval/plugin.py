"""The research toolkit as a plugin of percept: its presets and its commands, through percept's own entry point.

``pyproject.toml`` names this module under ``[project.entry-points.percept]`` as ``toolkit``. The
registry declares it (:data:`percept.registry.APPLICATION_PRESETS`: the names of its presets) and
imports it only when it is used: when one of its presets is built or listed, or when the ``percept``
command collects its commands. Building any other metric never imports the toolkit.

- ``register_presets`` (:mod:`percept.eval.presets`): ``map-selection``, ``channel-weights`` and the
  other metric files the toolkit writes. A new preset is registered there *and* named in
  ``APPLICATION_PRESETS`` (tests/test_registry.py checks that the two agree).
- ``register_commands``: ``percept sweep``, ``select``, ``finetune``, ``visualize`` (:mod:`percept.eval.cli`)
  and the toolkit's other commands. **To add a command**, add one line to :func:`register_commands`
  calling your module's ``register_commands(toolkit)``; keep that module light at import (argparse
  only: torch, pandas and scipy inside ``run``), or register ``configure``/``run`` as
  ``"module:function"`` strings, imported only when the command is used. Each toolkit command needs
  the ``eval`` extra (:data:`EVAL_MODULES`), checked before it runs, with the install hint.

Importing this module is light: it imports none of the toolkit's modules until a hook is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from percept.errors import install_hint
from percept.hookspecs import hookimpl

EVAL_MODULES = ("pandas", "scipy")
"""What the toolkit's commands need before they run (the ``eval`` extra), unless one registers its own ``requires``."""
EVAL_INSTALL = install_hint("eval")
NEEDS_NO_EXTRA = ("visualize",)  # commands that run without the eval extra


def toolkit_register(register: Callable[..., None]) -> Callable[..., None]:
    """``register`` for the toolkit's commands: each needs :data:`EVAL_MODULES` unless it says otherwise.

    Example:
        >>> seen = {}
        >>> toolkit_register(lambda name, configure, run, **kw: seen.update({name: kw}))("sweep", print, print)
        >>> seen["sweep"]["requires"], seen["sweep"]["install"]
        (('pandas', 'scipy'), "pip install 'percept-torch[eval]' (from a clone of percept: pip install -e '.[eval]')")
    """

    def toolkit(name: str, configure: Any, run: Any, **options: Any) -> None:
        options.setdefault("requires", () if name in NEEDS_NO_EXTRA else EVAL_MODULES)
        options.setdefault("install", EVAL_INSTALL)
        register(name, configure, run, **options)

    return toolkit


@hookimpl
def register_presets(register: Callable[..., None]) -> None:
    """The toolkit's presets (:mod:`percept.eval.presets`)."""
    importlib.import_module("percept.eval.presets").register_presets(register)


@hookimpl
def register_commands(register: Callable[..., None]) -> None:
    """The toolkit's commands: one line per command module."""
    toolkit = toolkit_register(register)
    importlib.import_module("percept.eval.cli").register_commands(toolkit)  # sweep, select, finetune, visualize
    importlib.import_module("percept.eval.learn.cli").register_commands(toolkit)  # learn
    importlib.import_module("percept.eval.agreement").register_commands(toolkit)  # agreement


__all__ = ["EVAL_INSTALL", "EVAL_MODULES", "register_commands", "register_presets", "toolkit_register"]
