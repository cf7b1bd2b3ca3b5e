"""Spec strings: one string names a whole metric.

Grammar::

    spec    := ensemble "(" inner ")" | inner
    inner   := preset | backbone [":" taps] ["/" readout ["/" distance]]
    ensemble:= "elpips"                   E-LPIPS' transformation ensemble around the inner spec
    taps    := "all" | tap ("," tap)*
    tap     := name ["=" weight]          weight: a finite float >= 0, at most 3.4e38 (float32)

Examples: ``vgg16:conv3``, ``vgg16:conv1,conv2,conv3=0.5``, ``alexnet:all/unit/l2``, ``lpips-vgg``,
``elpips(lpips-alex)``, ``elpips(vgg16:conv3/unit/l2)``.
Defaults: the backbone's canonical taps, readout ``raw``, distance ``mse``.
``str(parse_spec(s))`` gives the canonical form, and ``parse_spec(str(parse_spec(s))) == parse_spec(s)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from percept.errors import SpecError, unknown_name

DEFAULT_READOUT = "raw"
DEFAULT_DISTANCE = "mse"
MAX_SPEC_LENGTH = 4096
ENSEMBLES = ("elpips",)
"""Names of the ensembles a spec may wrap itself in (:mod:`percept.ensemble`)."""

FLOAT32_MAX = 3.4028234663852886e38
"""The largest layer weight accepted: distances are summed in float32, where a larger one is Inf."""

_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_NAME_RE = re.compile(rf"^{_NAME}$")
_TAP_RE = re.compile(rf"^(?P<name>{_NAME})(?:=(?P<weight>[^=]*))?$")
_WRAPPED_RE = re.compile(rf"^(?P<name>{_NAME})\((?P<inner>.*)\)$", re.DOTALL)


@dataclass(frozen=True)
class TapSpec:
    """One tap of a spec, with its layer weight (``None``: the default, 1)."""

    name: str
    weight: float | None = None

    def __str__(self) -> str:
        return self.name if self.weight is None else f"{self.name}={_format_float(self.weight)}"


@dataclass(frozen=True)
class Spec:
    """A parsed spec string.

    Attributes:
        backbone: backbone name, or the preset name when ``preset`` is true.
        taps: the taps asked for, or ``None`` for the backbone's canonical taps (``all``).
        readout: readout name, ``None`` for the default (``raw``).
        distance: distance name, ``None`` for the default (``mse``).
        preset: whether ``backbone`` names a preset (``lpips-vgg``) rather than a backbone; set by
            :func:`percept.pipeline.resolve_spec`, which looks the name up (:func:`parse_spec` cannot tell).
        ensemble: the ensemble wrapped around the metric (``"elpips"`` for ``elpips(<spec>)``), or ``None``.
    """

    backbone: str
    taps: tuple[TapSpec, ...] | None = None
    readout: str | None = None
    distance: str | None = None
    preset: bool = False
    ensemble: str | None = None

    def __str__(self) -> str:
        if self.ensemble is not None:
            return f"{self.ensemble}({replace(self, ensemble=None)})"
        if self.preset:
            return self.backbone
        out = self.backbone
        if self.taps is not None:
            out += ":" + ",".join(str(t) for t in self.taps)
        if self.readout is not None or self.distance is not None:
            out += "/" + (self.readout or DEFAULT_READOUT)
        if self.distance is not None:
            out += "/" + self.distance
        return out

    @property
    def readout_name(self) -> str:
        return self.readout or DEFAULT_READOUT

    @property
    def distance_name(self) -> str:
        return self.distance or DEFAULT_DISTANCE


def _format_float(value: float) -> str:
    short = format(value, "g")
    return short if float(short) == value else repr(value)


def check_layer_weight(tap: str, value: object, where: str = "") -> float:
    """A tap's layer weight as a float, checked: finite, ``>= 0`` and at most :data:`FLOAT32_MAX`.

    The one check behind both routes to a weight: ``tap=weight`` in a spec string and the
    ``layer_weights=`` argument (a list or a dict).

    Args:
        tap: the tap the weight belongs to (named in the error).
        value: the weight: a number (an int, a float, a NumPy scalar, a 0-d tensor).
        where: where it came from, for the error (``"in spec 'vgg16:conv3=2'"``, ``"in layer_weights"``).

    Raises:
        SpecError: not a number, NaN, Inf, negative, or too large for float32 (``1e300`` would make
            every distance Inf); the message names the tap and the value.

    Example:
        >>> check_layer_weight("conv3", 0.5)
        0.5
        >>> check_layer_weight("conv3", float("nan"), "in layer_weights")
        Traceback (most recent call last):
        ...
        percept.errors.SpecError: weight of tap 'conv3' in layer_weights must be a finite number >= 0 and at most \
3.4e+38 (float32), got nan
    """
    place = f" {where}" if where else ""
    expected = f"must be a finite number >= 0 and at most {FLOAT32_MAX:.2g} (float32)"
    try:
        valid = not isinstance(value, (str, bytes))
        weight = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, RuntimeError):
        valid, weight = False, math.nan
    if not valid:
        raise SpecError(f"weight of tap {tap!r}{place} {expected}, got {value!r} ({type(value).__name__})")
    if not math.isfinite(weight) or weight < 0 or weight > FLOAT32_MAX:
        raise SpecError(f"weight of tap {tap!r}{place} {expected}, got {_format_float(weight)}")
    return weight + 0.0  # -0.0 as 0.0


def _check_name(kind: str, name: str, spec: str) -> None:
    if not name:
        raise SpecError(f"empty {kind} name in spec {spec!r}; expected {_GRAMMAR}")
    if not _NAME_RE.match(name):
        raise SpecError(
            f"bad {kind} name {name!r} in spec {spec!r}: names are letters, digits, '_', '.' and '-', "
            f"starting with a letter or '_'; expected {_GRAMMAR}"
        )


_GRAMMAR = "'<backbone>[:<taps>][/<readout>[/<distance>]]' or a preset name, e.g. 'vgg16:conv3' or 'lpips-vgg'"


def _parse_taps(text: str, spec: str) -> tuple[TapSpec, ...] | None:
    if text.strip() == "all":
        return None
    taps: list[TapSpec] = []
    seen: set[str] = set()
    for part in text.split(","):
        part = part.strip()
        match = _TAP_RE.match(part)
        if not match:
            _check_name("tap", part.split("=", 1)[0].strip(), spec)
            raise SpecError(f"bad tap {part!r} in spec {spec!r}: expected 'name' or 'name=weight' (e.g. 'conv3=0.5')")
        name, weight_text = match.group("name"), match.group("weight")
        if name == "all":
            raise SpecError(f"'all' cannot be combined with other taps or a weight in spec {spec!r}")
        if name in seen:
            raise SpecError(f"tap {name!r} appears twice in spec {spec!r}")
        seen.add(name)
        weight = None
        if weight_text is not None:
            try:
                weight = float(weight_text)
            except ValueError:
                raise SpecError(
                    f"bad weight {weight_text!r} for tap {name!r} in spec {spec!r}: expected a number >= 0"
                ) from None
            weight = check_layer_weight(name, weight, f"in spec {spec!r}")
        taps.append(TapSpec(name, weight))
    return tuple(taps)


def parse_spec(spec: str | Spec) -> Spec:
    """Parse a spec string such as ``"vgg16:conv1,conv2,conv3=0.5/unit/l2"``: the grammar only.

    No plugin is loaded and no name is looked up: ``parse_spec("vgg61")`` parses. Names are resolved
    where they are used, by :func:`percept.pipeline.resolve_spec` (which :func:`~percept.build_pipeline`
    calls): whether a bare name is a preset, and whether each name is registered.

    Args:
        spec: the spec string (or an already parsed :class:`Spec`, returned as is).

    Returns:
        The parsed :class:`Spec` (``preset`` is false: only resolution can tell a preset).

    Raises:
        SpecError: malformed text (empty, a bad name, a bad tap weight, too many parts); the message
            says what was expected.

    Example:
        >>> s = parse_spec("vgg16:conv1,conv3=0.5/unit/l2")
        >>> s.backbone, [t.name for t in s.taps], s.readout, s.distance
        ('vgg16', ['conv1', 'conv3'], 'unit', 'l2')
        >>> str(s)
        'vgg16:conv1,conv3=0.5/unit/l2'
    """
    if isinstance(spec, Spec):
        return spec
    if not isinstance(spec, str):
        raise SpecError(f"a spec must be a string such as 'vgg16:conv3', got {type(spec).__name__}")
    if len(spec) > MAX_SPEC_LENGTH:
        raise SpecError(f"spec is {len(spec)} characters long; at most {MAX_SPEC_LENGTH} are accepted")
    text = spec.strip()
    if not text:
        raise SpecError(f"empty spec; expected {_GRAMMAR}")
    wrapped = _WRAPPED_RE.match(text)
    if wrapped:
        return _parse_wrapped(wrapped.group("name"), wrapped.group("inner"), spec)
    head, *rest = text.split("/")
    if len(rest) > 2:
        raise SpecError(f"spec {spec!r} has {len(rest) + 1} '/'-separated parts; expected at most 3: {_GRAMMAR}")
    readout = rest[0].strip() if rest else None
    distance = rest[1].strip() if len(rest) > 1 else None
    backbone, sep, tap_text = head.partition(":")
    backbone = backbone.strip()
    _check_name("backbone", backbone, spec)
    if sep and not tap_text.strip():
        raise SpecError(f"empty tap list after ':' in spec {spec!r}; expected e.g. 'vgg16:conv3' or 'vgg16:all'")
    taps = _parse_taps(tap_text, spec) if sep else None
    if readout is not None:
        _check_name("readout", readout, spec)
    if distance is not None:
        _check_name("distance", distance, spec)
    return Spec(backbone, taps, readout, distance)


def _parse_wrapped(name: str, inner: str, spec: str) -> Spec:
    """``name(inner)``: an ensemble around the spec ``inner`` (one level, no nesting)."""
    if name not in ENSEMBLES:
        raise SpecError(f"in spec {spec!r}: " + unknown_name("ensemble", name, ENSEMBLES))
    parsed = parse_spec(inner)
    if parsed.ensemble is not None:
        raise SpecError(f"spec {spec!r} wraps one ensemble in another; expected e.g. '{name}(lpips-alex)'")
    return replace(parsed, ensemble=name)
