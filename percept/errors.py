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


class OutputError(PerceptError, OSError):
    """An output file could not be written (full disk, read-only or missing folder, an input named as the
    output); nothing half-written is left behind (see :mod:`percept.io`)."""


class TapError(PerceptError, RuntimeError):
    """A backbone's run did not produce a tap it declares, or produced something that is not a feature map."""


class PluginWarning(UserWarning):
    """A plugin was skipped because it failed to import or to register."""


class RandomWeightsWarning(UserWarning):
    """A network runs with random weights: its distances say nothing about perception."""


def install_hint(extra: str) -> str:
    """How to install percept with one of its extras, for a message: the published name and, from a clone, the
    editable install (the two differ, and the first fails until percept-torch is on the index you use).

    Example:
        >>> install_hint("eval")
        "pip install 'percept-torch[eval]' (from a clone of percept: pip install -e '.[eval]')"
    """
    return f"pip install 'percept-torch[{extra}]' (from a clone of percept: pip install -e '.[{extra}]')"


def _edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest of ``choices`` to ``name``, or ``""``.

    Example:
        >>> did_you_mean("vgg61", ["vgg16", "alexnet"])
        " Did you mean 'vgg16'?"
    """
    choices = list(dict.fromkeys(choices))
    lowered = name.lower()
    scored = sorted((_edit_distance(lowered, c.lower()), c) for c in choices)
    limit = max(1, len(name) // 3)
    close = [c for d, c in scored if d <= limit][:3]
    if not close:
        close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def first_line(exc: BaseException, *, with_type: bool = False, limit: int = 300) -> str:
    """The first line of an exception's message, for one-line error reports.

    Args:
        exc: the exception.
        with_type: prefix the type's name (``"ValueError: bad value"``).
        limit: cut the line after this many characters (a library's message may be a whole dump).

    Returns:
        The first non-blank line of ``str(exc)``; where the message is empty, the type's name alone.

    Example:
        >>> first_line(ValueError("bad value\\nTraceback ..."), with_type=True)
        'ValueError: bad value'
        >>> first_line(KeyError())
        'KeyError'
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0][:limit]}" if with_type else lines[0][:limit]


def plural(n: int, noun: str) -> str:
    """``"1 file"``, ``"3 files"``.

    Example:
        >>> plural(2, "pair")
        '2 pairs'
    """
    return f"{n} {noun}{'' if n == 1 else 's'}"


def shorten(items: Iterable[str], limit: int = 10) -> str:
    """The first ``limit`` items joined by commas, then how many more there are.

    Example:
        >>> shorten(["a.png", "b.png", "c.png"], limit=2)
        'a.png, b.png, ... (1 more)'
    """
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def unknown_name(
    kind: str,
    name: str,
    choices: Iterable[str],
    *,
    context: str = "",
    plural: str | None = None,
    limit: int = 60,
    see: str = "",
) -> str:
    """Message for an unknown ``name`` of ``kind``, listing the valid ``choices`` and the nearest ones.

    Args:
        kind, name: what was looked up (``"backbone"``, ``"alexnett"``).
        choices: the valid names.
        context: words after the name (``"for 'vgg16'"``).
        plural: the plural of ``kind`` when it is not ``kind + "s"``.
        limit: at most this many valid names are listed.
        see: where all of them are listed (``"`percept list backbones`"``): given, and with more than 12
            choices, the message gives the nearest names and this pointer instead of a long list.

    Example:
        >>> unknown_name("distance", "l3", ["l1", "l2"])
        "unknown distance 'l3'. Did you mean 'l1' or 'l2'? Valid distances: l1, l2."
        >>> unknown_name("backbone", "alexnett", ["alexnet", *(f"vgg{i}" for i in range(10, 30))], see="`percept list`")
        "unknown backbone 'alexnett'. Did you mean 'alexnet'? All 21 backbones: `percept list`."
    """
    choices = sorted(set(choices))
    where = f" {context}" if context else ""
    kinds = plural or f"{kind}s"
    if see and len(choices) > 12:
        return f"unknown {kind} {name!r}{where}.{did_you_mean(name, choices)} All {len(choices)} {kinds}: {see}."
    shown = shorten(choices, limit)
    return (
        f"unknown {kind} {name!r}{where}.{did_you_mean(name, choices)} Valid {kinds}: {shown or '(none registered)'}."
    )
