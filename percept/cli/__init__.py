"""The ``percept`` command: score image pairs, list what is registered, show taps and plugins.

::

    percept score REF DIST [--spec S] [--json] [--weights W] [--device D] [-o FILE]
    percept list backbones|readouts|distances|presets [--pattern P] [--weights]
    percept taps BACKBONE
    percept plugins
    percept demo ...                       (the demo, plugged in through its entry point)
    percept sweep|select|finetune|visualize ...   (the research toolkit, plugged in the same way)

Every command comes through the ``register_commands`` hook (:mod:`percept.hookspecs`) into the
one plugin host, :mod:`percept.registry`, where commands are a kind like backbones: the core's own
(:mod:`percept.cli.score`, :mod:`percept.cli.listing`), then percept's own applications (the demo
and the toolkit), then entry-point plugins. :mod:`percept.cli.app` parses and dispatches only;
:mod:`percept.cli.common` holds what the commands share.

Exit codes: 0 success; 2 an error percept reports (bad spec, missing weights, unreadable image,
images of different sizes, an image without a partner in folder mode, bad arguments, an output that
cannot be written: full disk, read-only folder, an output path that is one of the inputs), printed as
``percept: error: <message>`` without a traceback; 1 ``list`` matched nothing or ``plugins`` found a
plugin it had to skip. ``score`` on folders scores every pair it can: one that fails is named on
stderr (and under ``errors`` with ``--json``) while the others are still scored and written, also
when the run is interrupted. Every file is written whole or not at all (:mod:`percept.io`): a
temporary file in the same folder, renamed into place once complete.

Heavy modules (torch, torchvision) load inside the commands. ``percept --help`` needs each command's
name and one-line help only: it runs no ``configure`` and imports no third-party plugin whose source
does not mention ``register_commands`` (benchmarks/cli_startup.py measures it). Every failure is one
line ``percept: error: ...`` (exit 2; interrupted: 130), every warning one line ``percept: warning:
...``, once.
"""

from __future__ import annotations

from percept.cli.app import CORE_COMMANDS, Command, build_parser, collect_commands, main
from percept.cli.common import EXIT_ERROR, EXIT_NOTHING, EXIT_OK, PROG
from percept.images import find_pairs, load_image, load_pair  # percept.cli.load_image and the like stay

__all__ = [
    "CORE_COMMANDS",
    "EXIT_ERROR",
    "EXIT_NOTHING",
    "EXIT_OK",
    "PROG",
    "Command",
    "build_parser",
    "collect_commands",
    "find_pairs",
    "load_image",
    "load_pair",
    "main",
]
