"""Exceptions and warnings raised by percept; every message says what was expected and what came."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PerceptError(Exception):
    """Base class of every error percept raises on purpose."""


class SpecError(PerceptError, ValueError):
    """A spec string, or a backbone, tap, readout, distance or preset name, is malformed or unknown."""


class InputError(PerceptError, ValueError):
    """An image or feature tensor has the wrong shape, dtype, range or device, or holds NaN/Inf."""


class WeightsError(PerceptError, RuntimeError):
    """Weights could not be found, downloaded, read, or do not fit the network."""


class RegistrationError(PerceptError, RuntimeError):
    """A plugin registered something invalid, or a name that is already taken."""


class PluginWarning(UserWarning):
    """A plugin was skipped because it failed to import or to register."""


class RandomWeightsWarning(UserWarning):
    """A network runs with random weights: its distances say nothing about perception."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest of ``choices`` to ``name``, or ``""``."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)]
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def unknown_name(kind: str, name: str, choices: Iterable[str], limit: int = 60) -> str:
    """Message for an unknown ``name`` of ``kind``, listing the valid ``choices`` and the nearest ones."""
    choices = sorted(choices)
    shown = ", ".join(choices[:limit]) + (f", ... ({len(choices) - limit} more)" if len(choices) > limit else "")
    return f"unknown {kind} {name!r}.{did_you_mean(name, choices)} Valid {kind}s: {shown or '(none registered)'}."
