"""The backbone contract: a network with named taps that declare themselves.

A :class:`Backbone` wraps a network as an ordered list of *stages* (leaf modules, with nested
``nn.Sequential`` containers expanded, each known by its module path such as ``features.15``).
A *tap* is the output of one stage. Each backbone declares its taps in ``feature_info``: canonical
names (``conv1``..``conv5`` for VGG/AlexNet, the taps LPIPS uses), finer names (``relu3_1``,
``pool2``), and module paths work as a fallback. A forward pass runs only up to the deepest tap
asked for.

The class is put together from one part per concern, each in its own module (as timm keeps feature
extraction apart from building):

- :mod:`percept.backbones.preprocessing`: the input contract and the mapping of images to the network's
  input (:class:`~percept.backbones.preprocessing.Preprocessing`, :func:`resize_images`);
- :mod:`percept.backbones.runner`: the stages and their run (:class:`~percept.backbones.runner.StageRunner`,
  :func:`flatten_stages`);
- :mod:`percept.backbones.probe`: the traced stage shapes and the minimum-size search
  (:class:`~percept.backbones.probe.ShapeProbe`, :func:`~percept.backbones.probe.stage_shapes`);
- here: the taps and their names, and the one way every part of percept reads them (:meth:`Backbone.iter_taps`).

The names each part defines stay importable from here (``from percept.backbones.base import flatten_stages``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from percept.backbones.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATIONS,
    Preprocessing,
    check_interpolation,
    resize_images,
)
from percept.backbones.probe import SHAPE_ERRORS, ShapeProbe, StageShape
from percept.backbones.runner import StageFn, ToMap, flatten_stages
from percept.errors import SpecError, unknown_name
from percept.validation import check_images

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
    "SHAPE_ERRORS",
    "Backbone",
    "PretrainedCfg",
    "StageShape",
    "TapInfo",
    "check_interpolation",
    "flatten_stages",
    "resize_images",
]


@dataclass(frozen=True)
class TapInfo:
    """One tap: its name, the stage whose output it is, its channels and its reduction (stride)."""

    name: str
    module: str
    index: int
    channels: int
    reduction: int
    canonical: bool = False


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a backbone's weights come from and the input they expect."""

    tag: str
    source: str
    url: str | None = None
    filename: str | None = None
    license: str = ""
    task: str = "classification"
    data: str = "ImageNet-1k"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_range: tuple[float, float] = (0.0, 1.0)
    extra: dict = field(default_factory=dict)
    checksum: str | None = None  # SHA-256 (or its first hex digits) of the weight file, where known
    aliases: tuple[str, ...] = ()  # other tags that load this set ("imagenet" for a library's default)


class Backbone(ShapeProbe, Preprocessing):
    """A network run stage by stage, returning the outputs of the taps asked for.

    Args:
        name: registered name (``"vgg16"``).
        model: the network; its ``state_dict`` keys are those of the source library.
        stages: ordered ``(path, module)`` pairs making up the forward pass up to the last tap.
        taps: named taps, as ``(name, module path, canonical)``; channels and reduction are traced.
        mean, std: per-channel normalisation applied after mapping the input to ``[0, 1]``.
        input_range: the range of the images users pass (``(0, 1)`` or ``(-1, 1)``).
        arch: a function building the same architecture without weights (for shape tracing on the
            meta device); defaults to none, in which case shapes are traced on a CPU copy.
        stage_fn: the ``stages`` of a model ``arch`` builds (with ``arch``: tracing on the meta device).
        pretrained_cfg: where the weights came from.
        to_map: ``to_map(stage index, stage output, input (H, W))`` gives a tap's ``(N, C, h, w)`` map
            when stages pass something else along (a transformer's tokens, channels-last maps); a
            module-level function or ``functools.partial``, so the backbone pickles.
        input_size: ``(H, W)`` the weights were trained at (shapes are traced there; ``None``: 224).
        resize: resize every input to ``input_size`` first (:func:`resize_images`: ``interpolation``,
            antialiased when shrinking, differentiable); the taps are then maps of the resized image.
        interpolation: ``"bicubic"``, ``"bilinear"``, ``"nearest"`` or ``"area"`` (for ``resize``).
        fixed_size: the network runs at ``input_size`` only (a Swin or MaxViT with fixed windows, a
            transformer with a fixed position embedding); without ``resize``, other sizes are refused
            with an :class:`~percept.errors.InputError` naming the size and the ``resize=True`` option.

    Inputs to :meth:`forward` are ``(N, C, H, W)`` with ``C`` 1 (grey, repeated) or 3, values in
    ``input_range``. Outputs are a dict tap name -> ``(N, channels, H / reduction, W / reduction)``
    (with ``resize``, ``H, W`` are those of ``input_size``). Its parts: see the module docstring.
    """

    random_seed: int | None = None  # the seed of random weights (set by create_backbone), else None

    def __init__(
        self,
        name: str,
        model: nn.Module,
        stages: Sequence[tuple[str, nn.Module]],
        taps: Sequence[tuple[str, str, bool]],
        *,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        input_range: tuple[float, float] = (0.0, 1.0),
        arch: Callable[[], nn.Module] | None = None,
        stage_fn: StageFn | None = None,
        pretrained_cfg: PretrainedCfg | None = None,
        to_map: ToMap | None = None,
        input_size: tuple[int, int] | None = None,
        resize: bool = False,
        interpolation: str = "bilinear",
        fixed_size: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self._init_preprocessing(
            name, mean=mean, std=std, input_range=input_range, input_size=input_size, resize=resize,
            interpolation=interpolation, fixed_size=fixed_size,
        )  # fmt: skip
        self._init_stages(model, stages, arch=arch, stage_fn=stage_fn, to_map=to_map)
        self.pretrained_cfg = pretrained_cfg
        self._init_probe()
        shapes = self._trace_shapes()
        self.feature_info: list[TapInfo] = []
        for tap_name, path, canonical in taps:
            index = self._path_index(path)
            if index is None:
                raise ValueError(f"backbone {name!r}: tap {tap_name!r} names unknown module {path!r}")
            self.feature_info.append(TapInfo(tap_name, path, index, *shapes[index], canonical))
        self._by_name = {t.name: t for t in self.feature_info}

    # -- taps --------------------------------------------------------------------------------------

    @property
    def canonical_taps(self) -> list[str]:
        """Names of the canonical taps, shallow to deep (what ``all`` means)."""
        return [t.name for t in self.feature_info if t.canonical]

    @property
    def tap_names(self) -> list[str]:
        """Every named tap, canonical and finer, shallow to deep."""
        return [t.name for t in self.feature_info]

    def tap_info(self, name: str) -> TapInfo:
        """Describe the tap ``name`` (a tap name or a module path); ``SpecError`` if unknown.

        Example:
            >>> from percept import create_backbone
            >>> create_backbone("vgg16", weights=None).tap_info("conv3").module  # doctest: +SKIP
            'features.15'
        """
        if name in self._by_name:
            return self._by_name[name]
        index = self._path_index(name)
        if index is None:
            raise SpecError(
                unknown_name("tap", name, self.tap_names, context=f"of backbone {self.name!r}") + _paths_hint(self)
            )
        shape = self._trace_shapes()[index]
        return TapInfo(name, self._paths[index], index, *shape, False)

    def resolve_taps(self, names: Sequence[str] | None) -> list[TapInfo]:
        """Tap infos for ``names`` (``None`` or ``["all"]``: the canonical taps)."""
        if names is None or list(names) == ["all"]:
            names = self.canonical_taps
        return [self.tap_info(n) for n in names]

    def min_size(self, taps: Sequence[str] | None = None) -> int:
        """Smallest height/width of input for which every tap in ``taps`` has at least one pixel.

        With ``resize`` every size runs (1); a ``fixed_size`` network without it needs ``input_size``.
        Otherwise found once per deepest stage by a search over sizes (:mod:`percept.backbones.probe`).
        """
        if self.resize:
            return 1
        if self.fixed_size and self.input_size is not None:  # __init__ gives every fixed-size network one
            return max(self.input_size)
        return self._min_size_to(max(t.index for t in self.resolve_taps(taps)))

    # -- forward -----------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> Backbone:
        # A frozen feature extractor stays in eval mode (BatchNorm statistics, dropout) whatever
        # the module holding it does.
        return super().train(False)

    def check_input(self, x: torch.Tensor, taps: Sequence[str] | None = None, name: str = "x") -> torch.Tensor:
        """Validate an image batch for this backbone and the given taps (see :func:`check_images`)."""
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            self._check_size(x, name)  # before the size check of check_images: it names the resize option
        return check_images(x, name, input_range=self.input_range, min_size=self.min_size(taps))

    def iter_taps(self, x: torch.Tensor, taps: Sequence[str] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
        """Run ``x`` once up to the deepest of ``taps``, yielding each tap's map as its stage finishes.

        The one way every part of percept reads taps (:meth:`forward`, the pipeline, the research
        toolkit): each tap's output is converted to an ``(N, C, h, w)`` map (a transformer's tokens, a
        channels-last map, a pyramid's ``(band, lowpass)`` pair), and a consumer that is done with a
        map before asking for the next one never holds two stages' outputs at once (in the spirit of
        timm's ``forward_intermediates``). Networks that compute their taps in one call (timm models
        run through ``forward_intermediates``) yield them in turn after that call.

        Args:
            x: ``(N, 1 or 3, H, W)`` images in ``input_range`` (not validated here; see
                :meth:`check_input`).
            taps: tap names or module paths; ``None`` or ``["all"]`` for the canonical taps. Two names
                of one stage each get the same map.

        Yields:
            ``(tap name, (N, C_tap, H_tap, W_tap) map)``, shallow to deep (stage order; names of one
            stage in the order asked for).

        Raises:
            InputError: a ``fixed_size`` network without ``resize`` got another size.
            TapError: the network finished without producing a tap asked for (names backbone and tap).

        Example:
            >>> bb = create_backbone("alexnet", weights=None)  # doctest: +SKIP
            >>> x = torch.rand(1, 3, 64, 64)  # doctest: +SKIP
            >>> [(k, tuple(v.shape)) for k, v in bb.iter_taps(x, ["conv2", "conv1"])]  # doctest: +SKIP
            [('conv1', (1, 64, 15, 15)), ('conv2', (1, 192, 7, 7))]
        """
        return self._iter_taps(x, self.resolve_taps(taps))

    def _iter_taps(self, x: torch.Tensor, infos: Sequence[TapInfo]) -> Iterator[tuple[str, torch.Tensor]]:
        self._check_size(x)
        wanted: dict[int, list[str]] = {}
        for info in infos:
            names = wanted.setdefault(info.index, [])
            if info.name not in names:
                names.append(info.name)
        yield from self._stage_maps(self.preprocess(x), wanted)

    def forward(self, x: torch.Tensor, taps: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Run ``x`` up to the deepest of ``taps`` and return each tap's output (:meth:`iter_taps`, collected).

        Args:
            x: ``(N, 1 or 3, H, W)`` images in ``input_range``; not validated here (see
                :meth:`check_input`), so the hot path does no extra reduction.
            taps: tap names or module paths; ``None`` for the canonical taps.

        Returns:
            ``{tap name: (N, C_tap, H_tap, W_tap)}`` in the order asked for.

        Raises:
            InputError: a ``fixed_size`` network without ``resize`` got another size.

        Example:
            >>> bb = create_backbone("alexnet", weights=None)  # doctest: +SKIP
            >>> {k: v.shape for k, v in bb(torch.rand(1, 3, 64, 64), ["conv1"]).items()}  # doctest: +SKIP
            {'conv1': torch.Size([1, 64, 15, 15])}
        """
        infos = self.resolve_taps(taps)
        found = dict(self._iter_taps(x, infos))
        return {info.name: found[info.name] for info in infos}


def _paths_hint(backbone: Backbone) -> str:
    paths = backbone.module_paths
    shown = ", ".join(paths[:12]) + (", ..." if len(paths) > 12 else "")
    return f" Module paths also work: {shown} (see `percept taps {backbone.name}`)."
