"""The research toolkit as a plugin of percept: its presets and its commands, through percept's own entry point.

``pyproject.toml`` names this module under ``[project.entry-points.percept]`` as ``toolkit``. The
registry loads it with the entry points (percept's own load even with
``PERCEPT_DISABLE_PLUGIN_AUTOLOAD`` set), so the core never imports the toolkit:

- ``register_presets`` (:mod:`percept.eval.presets`): ``map-selection`` and ``channel-weights``, the
  metrics that ``percept select`` and ``percept finetune`` write;
- ``register_commands`` (:mod:`percept.eval.cli`): ``percept sweep``, ``select``, ``finetune`` and
  ``visualize``.

Importing this module is light (no torch, pandas or scipy): those load when a preset is built or a
command runs.
"""

from __future__ import annotations

from percept.eval.cli import register_commands
from percept.eval.presets import register_presets

__all__ = ["register_commands", "register_presets"]
