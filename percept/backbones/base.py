"""The backbone contract: a network with named taps that declare themselves.

A :class:`Backbone` wraps a network as an ordered list of *stages* (leaf modules, with nested
``nn.Sequential`` containers expanded, each known by its module path such as ``features.15``).
A *tap* is the output of one stage. Each backbone declares its taps in ``feature_info``: canonical
names (``conv1``..``conv5`` for VGG/AlexNet, the taps LPIPS uses), finer names (``relu3_1``,
``pool2``), and module paths work as a fallback. A forward pass runs only up to the deepest tap
asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from percept.errors import InputError, SpecError, TapError, unknown_name
from percept.validation import check_images

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# What a network raises when it cannot run at an input size: PyTorch's shape errors, timm's assertions.
SHAPE_ERRORS = (RuntimeError, AssertionError, ValueError, IndexError)


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


def flatten_stages(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Expand nested ``nn.Sequential`` containers into an ordered list of ``(path, leaf)``."""
    if isinstance(module, nn.Sequential):
        out: list[tuple[str, nn.Module]] = []
        for name, child in module.named_children():
            out.extend(flatten_stages(child, f"{prefix}.{name}" if prefix else name))
        return out
    return [(prefix, module)]


class Backbone(nn.Module):
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
    (with ``resize``, ``H, W`` are those of ``input_size``).
    """

    mean: torch.Tensor  # buffers, (1, 3, 1, 1)
    std: torch.Tensor
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
        stage_fn: Callable[[nn.Module], Sequence[tuple[str, nn.Module]]] | None = None,
        pretrained_cfg: PretrainedCfg | None = None,
        to_map: Callable[[int, torch.Tensor, tuple[int, int]], torch.Tensor] | None = None,
        input_size: tuple[int, int] | None = None,
        resize: bool = False,
        interpolation: str = "bilinear",
        fixed_size: bool = False,
    ) -> None:
        super().__init__()
        if (resize or fixed_size) and input_size is None:
            raise ValueError(f"backbone {name!r}: resize and fixed_size need an input_size")
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.resize = bool(resize)
        self.interpolation = check_interpolation(interpolation)
        self.fixed_size = bool(fixed_size)
        self.name = name
        self.model = model
        self._stages = list(stages)
        self._paths = [p for p, _ in self._stages]
        self.input_range = _check_range(input_range)
        self.norm_domain = (0.0, 1.0)
        self.pretrained_cfg = pretrained_cfg
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self._arch = arch
        self._stage_fn = stage_fn
        self._to_map = to_map
        self._shapes: list[tuple[int, int]] | None = None
        self._min_size_cache: dict[int, int] = {}
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

    @property
    def module_paths(self) -> list[str]:
        """Every stage path, usable as a tap name when no finer name exists."""
        return list(self._paths)

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

    def _path_index(self, path: str) -> int | None:
        if path in self._paths:
            return self._paths.index(path)
        inside = [i for i, p in enumerate(self._paths) if p.startswith(path + ".")]
        return inside[-1] if inside else None

    # -- shapes ------------------------------------------------------------------------------------

    def _network(self, trace: bool = False) -> tuple[Any, torch.device]:
        """What :meth:`_run` runs: the stage modules (``trace``: copies on the meta device where the
        backbone knows how to build one, for shape tracing without weights) and their device."""
        if trace and self._arch is not None and self._stage_fn is not None:
            # Built once: a size search runs the network a dozen times, and building it is the slow part.
            if self.__dict__.get("_meta_stages") is None:
                with torch.device("meta"):
                    model = self._arch()
                self.__dict__["_meta_stages"] = [m.eval() for _, m in self._stage_fn(model)]
            return self.__dict__["_meta_stages"], torch.device("meta")
        return [m for _, m in self._stages], torch.device("cpu")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_meta_stages", None)  # rebuilt on demand; holds no data
        return state

    def _iter_run(self, net: Any, x: torch.Tensor, last: int, wanted: set[int]) -> Iterator[tuple[int, Any]]:
        """Run ``net`` (see :meth:`_network`) on a preprocessed batch up to stage ``last``, yielding
        ``(stage index, raw output)`` for the stages in ``wanted`` as each finishes, shallow to deep.
        Subclasses that run their network otherwise override this and :meth:`_network`."""
        for i in range(last + 1):
            x = net[i](x)
            if i in wanted:
                # An in-place activation next would overwrite this tap's output.
                yield i, (x.clone() if i < last and getattr(net[i + 1], "inplace", False) else x)

    def _run(self, net: Any, x: torch.Tensor, last: int, wanted: set[int]) -> dict[int, Any]:
        """:meth:`_iter_run` collected: ``{stage index: raw output}``."""
        return dict(self._iter_run(net, x, last, wanted))

    def _trace_shapes(self) -> list[tuple[int, int]]:
        """(channels, reduction) of every stage output, traced once at ``input_size`` (else 224)."""
        if self._shapes is None:
            self._shapes = self._trace(max(self.input_size) if self.input_size else 224)
        return self._shapes

    def _trace(self, size: int) -> list[tuple[int, int]]:
        net, device = self._network(trace=True)
        last = len(self._stages) - 1
        was_training = [m.training for _, m in self._stages]
        self.model.eval()
        try:
            with torch.no_grad():
                outputs = self._run(net, torch.zeros(1, 3, size, size, device=device), last, set(range(last + 1)))
        finally:
            for (_, m), t in zip(self._stages, was_training, strict=True):
                m.train(t)
        out: list[tuple[int, int]] = []
        for i in range(last + 1):
            y = self._tap_map(i, outputs[i], (size, size))
            reduction = 2 ** round(math.log2(size / max(y.shape[-1], 1)))
            out.append((int(y.shape[1]), int(reduction)))
        return out

    def runs_at(self, size: int | tuple[int, int], last: int | None = None) -> bool:
        """Whether the network runs on a ``size`` input up to stage ``last`` (default: every stage) and
        every stage gives at least one pixel; tried without weights where possible (meta device).

        Example:
            >>> create_backbone("alexnet", weights=None).runs_at(8)  # doctest: +SKIP
            False
        """
        height, width = (size, size) if isinstance(size, int) else size
        last = len(self._stages) - 1 if last is None else last
        net, device = self._network(trace=True)
        try:
            with torch.no_grad():
                x = torch.zeros(1, 3, height, width, device=device)
                outputs = self._run(net, x, last, set(range(last + 1)))
                for i, y in outputs.items():
                    y = self._tap_map(i, y, (height, width))
                    if y.dim() < 4 or min(y.shape[-2:]) < 1:
                        return False
            return True
        except SHAPE_ERRORS:
            return False

    def min_size(self, taps: Sequence[str] | None = None) -> int:
        """Smallest height/width of input for which every tap in ``taps`` has at least one pixel.

        With ``resize`` every size runs (1); a ``fixed_size`` network without it needs ``input_size``.
        """
        if self.resize:
            return 1
        if self.fixed_size and self.input_size is not None:  # __init__ gives every fixed-size network one
            return max(self.input_size)
        last = max(t.index for t in self.resolve_taps(taps))
        if last not in self._min_size_cache:
            self._min_size_cache[last] = self._search_min_size(last)
        return self._min_size_cache[last]

    def _search_min_size(self, last: int) -> int:
        low, high = 1, 16
        while not self.runs_at(high, last):
            low, high = high, high * 2
            if high > 8192:
                raise RuntimeError(f"backbone {self.name!r}: found no input size up to 8192 that reaches stage {last}")
        while low < high:
            mid = (low + high) // 2
            if self.runs_at(mid, last):
                high = mid
            else:
                low = mid + 1
        return high

    def _tap_map(self, index: int, output: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return output if self._to_map is None else self._to_map(index, output, size)

    # -- forward -----------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> Backbone:
        # A frozen feature extractor stays in eval mode (BatchNorm statistics, dropout) whatever
        # the module holding it does.
        return super().train(False)

    def set_normalization(
        self, mean: Sequence[float], std: Sequence[float], domain: tuple[float, float] = (0.0, 1.0)
    ) -> Backbone:
        """Use ``(x - mean) / std`` on images mapped to ``domain`` (LPIPS: shift/scale on [-1, 1]), in the
        reference implementation's own arithmetic: float32 results identical to it, not just equal up to rounding."""
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.mean.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.std.device).view(1, -1, 1, 1)
        self.norm_domain = _check_range(domain)
        return self

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Map images in ``input_range`` to the network's input: grey to colour, range, mean/std, and with
        ``resize`` the size the network expects."""
        (low, high), (d_low, d_high) = self.input_range, self.norm_domain
        if self.resize and self.input_size is not None:  # as fixed_size, resize comes with an input_size
            x = resize_images(x, self.input_size, self.interpolation)
        if (low, high) != (d_low, d_high):
            if (low, high) == (0.0, 1.0):
                x = x * (d_high - d_low) + d_low
            else:
                x = (x - low) * ((d_high - d_low) / (high - low)) + d_low
        if x.shape[1] == 1 and self.mean.shape[1] == 3:
            x = x.expand(-1, 3, -1, -1)
        mean = self.mean.to(dtype=x.dtype)
        std = self.std.to(dtype=x.dtype)
        return (x - mean) / std

    def check_input(self, x: torch.Tensor, taps: Sequence[str] | None = None, name: str = "x") -> torch.Tensor:
        """Validate an image batch for this backbone and the given taps (see :func:`check_images`)."""
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            self._check_size(x, name)  # before the size check of check_images: it names the resize option
        return check_images(x, name, input_range=self.input_range, min_size=self.min_size(taps))

    def _check_size(self, x: torch.Tensor, name: str = "x") -> None:
        if self.fixed_size and not self.resize and self.input_size and tuple(x.shape[-2:]) != self.input_size:
            h, w = self.input_size
            raise InputError(
                f"backbone {self.name!r} runs at {h}x{w} only, got {name} of size {x.shape[-2]}x{x.shape[-1]}: crop "
                f"or resize your images to {h}x{w}, or build it with resize=True to resize them to {h}x{w} "
                f"({self.interpolation}, antialiased) on the way in"
            )

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
        h = self.preprocess(x)
        size = (int(h.shape[-2]), int(h.shape[-1]))
        seen: set[int] = set()
        for i, output in self._iter_run(self._network()[0], h, max(wanted), set(wanted)):
            if i not in wanted or i in seen:
                continue
            seen.add(i)
            feature = self._tap_map(i, output, size)
            if not isinstance(feature, torch.Tensor) or feature.dim() != 4:
                got = tuple(feature.shape) if isinstance(feature, torch.Tensor) else type(feature).__name__
                raise TapError(
                    f"backbone {self.name!r}: tap {wanted[i][0]!r} (stage {self._paths[i]!r}) gave {got}, not an "
                    "(N, C, h, w) map"
                )
            for tap_name in wanted[i]:
                yield tap_name, feature
        missing = [n for i, names in sorted(wanted.items()) if i not in seen for n in names]
        if missing:
            raise TapError(
                f"backbone {self.name!r} ran without producing tap(s) {missing}: its network never reached those "
                "stages (a plugin's _iter_run must yield every stage asked for)"
            )

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


INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "area")
_INTERPOLATION_ALIASES = {"lanczos": "bicubic", "hamming": "bicubic", "box": "area", "random": "bicubic"}


def check_interpolation(mode: str) -> str:
    """The :func:`torch.nn.functional.interpolate` mode for a PIL/timm interpolation name.

    PIL's ``lanczos`` and ``hamming`` (which ``interpolate`` lacks) become ``bicubic``, the closest
    antialiased kernel it has; ``box`` becomes ``area``.

    Example:
        >>> check_interpolation("bicubic"), check_interpolation("lanczos")
        ('bicubic', 'bicubic')
    """
    mode = str(mode).lower()
    mode = _INTERPOLATION_ALIASES.get(mode, mode)
    if mode not in INTERPOLATIONS:
        raise InputError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {mode!r}")
    return mode


def resize_images(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(N, C, H, W)`` images to ``size = (h, w)``, differentiably; unchanged if already that size.

    ``bilinear`` and ``bicubic`` are antialiased (as PIL's); values keep their range up to bicubic overshoot.

    Example:
        >>> resize_images(torch.rand(2, 3, 64, 48), (32, 32), "bicubic").shape
        torch.Size([2, 3, 32, 32])
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    mode = check_interpolation(mode)
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False, antialias=True)
    return F.interpolate(x, size=tuple(size), mode=mode)


def _check_range(input_range: Sequence[float]) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise InputError(
            f"input_range must be a pair (low, high) such as (0, 1) or (-1, 1), got {input_range!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InputError(f"input_range must be finite with low < high, got {input_range!r}")
    return (low, high)


def _paths_hint(backbone: Backbone) -> str:
    paths = backbone.module_paths
    shown = ", ".join(paths[:12]) + (", ..." if len(paths) > 12 else "")
    return f" Module paths also work: {shown} (see `percept taps {backbone.name}`)."
