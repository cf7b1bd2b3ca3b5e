"""The options of the toolkit's feature computations, as objects built once and passed whole.

:class:`FeatureOptions` says how features are computed from a database (which taps, which weights, at what
size, in what batches, where): :func:`~percept.eval.select.map_scores` and
:func:`~percept.eval.finetune.channel_errors` take it. :class:`SweepOptions` adds what a layer sweep compares
(the measures) and which share of the references this job computes (the shard):
:func:`~percept.eval.sweep.run_sweep` and :func:`~percept.eval.sweep.sweep_backbone` take it. Every
function that takes an options object also takes its fields as keywords, merged into it by
:func:`merge_options` (``run_sweep(db, nets, batch_size=4)`` is ``run_sweep(db, nets, SweepOptions(batch_size=4))``),
and so do :func:`~percept.eval.select.forward_select` and :func:`~percept.eval.select.cross_validate` with
their :class:`~percept.eval.select.SelectOptions`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from percept.errors import InputError, unknown_name
from percept.eval.sweep.shards import Shard, check_shard

DEFAULT_MEASURES = ("flat-l2",)


@dataclass(frozen=True)
class FeatureOptions:
    """How features are computed from a database's images: the settings sweep, select and finetune share.

    Attributes:
        taps: tap names or module paths (a sequence, kept as a tuple); ``None``: each computation's default
            (the sweep: the input and every stage; select: every ReLU; finetune: the canonical taps).
        weights: backbone weights when the backbone is given by name: ``"imagenet"``, a tag, a file,
            ``"random:SEED"``, or ``None`` (random, with a warning).
        resize: ``None`` (native resolution), a side ``>= 1``, or ``(height, width)``, each ``>= 1``.
        batch_size: distorted images per forward pass, ``>= 1``.
        workers: DataLoader worker processes decoding images, ``>= 0``.
        device: where the network runs (``"cpu"``, ``"cuda:0"``, a :class:`torch.device`).
        progress: show a tqdm progress bar.
        network_resize: a network that runs at one input size only resizes every image to that size
            (see :func:`percept.eval.sweep.build_backbone`).

    Raises:
        InputError: a field out of range or of the wrong kind, naming it, what it must be and what came.

    Example:
        >>> FeatureOptions(taps=["relu1", "relu2"], resize=64).taps
        ('relu1', 'relu2')
        >>> FeatureOptions(batch_size=0)
        Traceback (most recent call last):
        ...
        percept.errors.InputError: batch_size must be an integer >= 1, got 0
    """

    taps: Sequence[str] | None = None
    weights: Any = "imagenet"
    resize: int | tuple[int, int] | None = None
    batch_size: int = 8
    workers: int = 0
    device: str | torch.device = "cpu"
    progress: bool = False
    network_resize: bool = False

    def __post_init__(self) -> None:
        if self.taps is not None:
            if isinstance(self.taps, str):
                raise InputError(f"taps must be a sequence of tap names, got the string {self.taps!r}: pass a list")
            object.__setattr__(self, "taps", tuple(self.taps))
        for name, low in (("batch_size", 1), ("workers", 0)):
            _check_integer(name, getattr(self, name), low)
        _check_resize(self.resize)
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise InputError(f"device must name a torch device such as 'cpu' or 'cuda:0', got {self.device!r}") from exc

    def features(self) -> FeatureOptions:
        """Only the feature settings, as a plain :class:`FeatureOptions` (what a subclass shares with its base).

        Example:
            >>> SweepOptions(measures=["mse"], batch_size=4).features()
            FeatureOptions(taps=None, weights='imagenet', resize=None, batch_size=4, workers=0, device='cpu', \
progress=False, network_resize=False)
        """
        return FeatureOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(FeatureOptions)})


@dataclass(frozen=True)
class SweepOptions(FeatureOptions):
    """What a layer sweep shares between :func:`~percept.eval.sweep.run_sweep` and each
    :func:`~percept.eval.sweep.sweep_backbone`: the feature settings of :class:`FeatureOptions` (inherited)
    and the two below.

    Attributes:
        measures: measure names (see :mod:`percept.eval.sweep`), at least one, kept as a tuple; an unknown
            name fails when the sweep builds its measures (with the names it knows).
        shard: ``(rank, world)`` with ``0 <= rank < world``: compute only this share of the references (one
            job of several); ``None``: all of them (or, under ``torch.distributed``, the rank's, gathered).

    Raises:
        InputError: as :class:`FeatureOptions`, and for no measure or a shard out of range.

    Example:
        >>> options = SweepOptions(measures=["flat-l2", "ssim"], resize=64, shard=(0, 2))
        >>> options.measures, options.shard
        (('flat-l2', 'ssim'), (0, 2))
        >>> SweepOptions(shard=(2, 2))
        Traceback (most recent call last):
        ...
        percept.errors.InputError: shard must be (rank, world) with 0 <= rank < world, got (2, 2)
    """

    measures: Sequence[str] = DEFAULT_MEASURES
    shard: Shard | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.measures, str):
            raise InputError(f"measures must be a sequence of names, got the string {self.measures!r}: pass a list")
        measures = tuple(self.measures)
        if not measures:
            raise InputError("measures must name at least one measure, e.g. ['flat-l2'], got none")
        object.__setattr__(self, "measures", measures)
        if self.shard is not None:
            object.__setattr__(self, "shard", check_shard(self.shard))


Options = TypeVar("Options")


def merge_options(kind: type[Options], options: Any, overrides: Mapping[str, Any]) -> Options:
    """``options`` (default ``kind()``) with the keyword ``overrides`` applied, as a ``kind``, checked.

    ``kind`` is an options dataclass (:class:`FeatureOptions`, :class:`SweepOptions`,
    :class:`~percept.eval.select.SelectOptions`). Options of a base class given where a subclass is wanted
    (a :class:`FeatureOptions` for a :class:`SweepOptions`) keep their fields and take the defaults for the rest.

    Raises:
        InputError: an override that is no field of ``kind`` (with the nearest names), ``options`` of another
            kind, or a value out of range.

    Example:
        >>> merge_options(SweepOptions, FeatureOptions(resize=64), {"batch_size": 4})
        SweepOptions(taps=None, weights='imagenet', resize=64, batch_size=4, workers=0, device='cpu', \
progress=False, network_resize=False, measures=('flat-l2',), shard=None)
        >>> merge_options(FeatureOptions, None, {"batch_szie": 4})
        Traceback (most recent call last):
        ...
        percept.errors.InputError: unknown option 'batch_szie'. Did you mean 'batch_size'? ...
    """
    make: Any = kind
    names = [f.name for f in dataclasses.fields(make)]
    for key in overrides:
        if key not in names:
            raise InputError(unknown_name("option", key, names))
    if options is None:
        return make(**overrides)
    given: Any = options  # a dataclass instance when it is a ``kind``
    if isinstance(options, kind):
        return dataclasses.replace(given, **overrides)
    if dataclasses.is_dataclass(options) and not isinstance(options, type) and issubclass(kind, type(options)):
        return make(**{**{f.name: getattr(options, f.name) for f in dataclasses.fields(options)}, **overrides})
    raise InputError(f"options must be a {kind.__name__}, got {type(options).__name__}")


def _check_integer(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_resize(resize: Any) -> None:
    """``None``, a side ``>= 1`` or ``(height, width)`` of two such sides."""

    def side(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    if resize is None or side(resize):
        return
    if isinstance(resize, tuple | list) and len(resize) == 2 and all(side(s) for s in resize):
        return
    raise InputError(f"resize must be None, a side >= 1 or (height, width) with sides >= 1, got {resize!r}")
