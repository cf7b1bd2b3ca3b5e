"""E-LPIPS' transformation ensemble (Kettunen et al. 2019) around any pipeline.

E-LPIPS ("Robust Perceptual Image Similarity via Random Transformation Ensembles") scores a pair of
images as the expectation, over random transformations ``T`` applied identically to both images, of
a deep-feature distance ``d(T(x), T(y))``. It is estimated by averaging ``n`` draws: many when it is
used as a metric, one per step when it is used as a loss (the expectation is then taken by the
optimiser over the steps). An attack on a fixed network (PGD against LPIPS) has to survive every
transformation at once, which is why the ensemble is robust.

One draw of ``T``, in E-LPIPS' order (the laws are those of ``mkettune/elpips``' ``sample_ensemble``):

1. **downscale** by an integer ``s`` in ``1..8`` with ``P(s) ∝ 1/s²``, one ``s`` per draw for the whole
   batch: reflect-pad by a random offset in ``[0, s)`` (and up to a multiple of ``s``), then average
   each ``s × s`` box;
2. **translate** by ``(dy, dx)``, each uniform in ``0..7``, per image: reflect-pad ``7 - d`` before and
   ``d`` after (the image grows by 7 pixels per side);
3. **flip** per image, uniform over {horizontal, vertical, both, none};
4. **transpose** (swap height and width), with probability 1/2, one for the batch;
5. **permute** the colour channels per image, uniform over the 6 permutations of RGB;
6. **gain** per image and channel ``0.2 + 0.8·U`` with ``U ~ U[0, 1)``, applied to images in ``[0, 1]``;
7. **dropout** of the features at every tap with keep probability 0.99 (inverted: kept values are
   divided by 0.99), one mask per tap shared by the two images.

How percept's ensemble differs from E-LPIPS' TensorFlow code, on purpose:

- E-LPIPS drops activations at the input of every convolution inside its VGG or SqueezeNet; percept
  wraps any network, so it drops the features it reads, at each tap, between the backbone and the
  readout (the one place every pipeline shares).
- E-LPIPS draws flips, gains and permutations of one batch by Latin hypercube sampling (stratified
  over the batch); percept draws them independently per image, so each image's law is the one above.
- E-LPIPS keeps 8 scales whatever the image size. Percept keeps the scales whose downscaled image,
  once translated, is still at least the pipeline's smallest input (:func:`largest_scale`), and
  renormalises ``P(s) ∝ 1/s²`` over them; images under 8 pixels a side are refused (the translation's
  reflect padding needs 8).

Randomness: a seed makes a call deterministic (the same images and seed give the same value). Without
a seed, a call that builds a graph for an input (a loss) draws fresh transformations from torch's
global generator (``torch.manual_seed`` governs them), and any other call (a metric) uses seed 0, so
that a metric is reproducible by default.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from percept.errors import InputError, SpecError

ENSEMBLE_NAME = "elpips"
MAX_SCALE = 8
MAX_OFFSET = 7
KEEP_PROBABILITY = 0.99
GAIN_MIN = 0.2
EVAL_SAMPLES = 200
"""Draws averaged by a metric call when ``n`` is not given (E-LPIPS' evaluation default)."""


class _Scorable(Protocol):
    """What the ensemble needs of a :class:`percept.pipeline.Pipeline` (named here without importing it)."""

    check_inputs: bool
    layer_weights: list[float]

    @property
    def min_size(self) -> int: ...

    @property
    def input_range(self) -> tuple[float, float]: ...

    def check(self, x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ...) -> None: ...

    def features(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]: ...

    def feature_distances(
        self, fx: Mapping[str, torch.Tensor], fy: Mapping[str, torch.Tensor], *, spatial: bool = False
    ) -> dict[str, torch.Tensor]: ...


def scale_probabilities(max_scale: int = MAX_SCALE) -> torch.Tensor:
    """E-LPIPS' law of the downscale factor: ``P(s) ∝ 1/s²`` for ``s = 1..max_scale``.

    Returns:
        ``(max_scale,)`` float64 probabilities summing to 1 (entry ``s - 1`` is ``P(s)``).

    Example:
        >>> [round(p, 3) for p in scale_probabilities(3).tolist()]
        [0.735, 0.184, 0.082]
    """
    weights = 1.0 / torch.arange(1, max_scale + 1, dtype=torch.float64) ** 2
    return weights / weights.sum()


def downscaled_side(side: int, scale: int) -> int:
    """Length of one side of an image after :func:`box_downscale` by ``scale``: ``floor((side + 2·scale - 2) / scale)``.

    Example:
        >>> downscaled_side(64, 1), downscaled_side(64, 3), downscaled_side(10, 4)
        (64, 22, 4)
    """
    return (side + 2 * scale - 2) // scale


def largest_scale(
    height: int, width: int, min_size: int, max_scale: int = MAX_SCALE, max_offset: int = MAX_OFFSET
) -> int:
    """The largest downscale factor the ensemble may draw for ``height x width`` images.

    A factor ``s`` is kept when the reflect padding is possible (``2s - 2 < side``), the downscaled image
    can be translated (``side' > max_offset``) and, translated, still feeds the network
    (``side' + max_offset >= min_size``); ``s = 1`` needs only ``side > max_offset``.

    Raises:
        InputError: an image side of ``max_offset`` pixels or less (8 for E-LPIPS), which the
            translation's reflect padding cannot handle.

    Example:
        >>> largest_scale(64, 64, min_size=16), largest_scale(64, 64, min_size=63), largest_scale(12, 40, 1)
        (8, 1, 1)
    """
    side = min(height, width)
    if side <= max_offset:
        raise InputError(
            f"E-LPIPS' ensemble translates images by up to {max_offset} px with reflect padding, which needs "
            f"images of at least {max_offset + 1} px a side; got {height}x{width}"
        )
    best = 1
    for s in range(2, max_scale + 1):
        small = downscaled_side(side, s)
        if 2 * s - 2 < side and small > max_offset and small + max_offset >= min_size:
            best = s
    return best


@dataclass(frozen=True)
class Transformation:
    """One draw of E-LPIPS' random transformation for a batch of ``N`` image pairs.

    Attributes:
        scale: the downscale factor ``s`` (``1..8``), shared by the batch.
        scale_offset: ``(dy, dx)``, each in ``[0, s)``: the reflect padding before the image.
        offsets: ``(N, 2)`` long, ``(dy, dx)`` in ``0..max_offset`` per image.
        flips: ``(N,)`` long in ``0..3``: 0 flips left-right, 1 up-down, 2 both, 3 neither.
        transpose: swap height and width (the whole batch).
        permutations: ``(N, C)`` long, a permutation of the channels per image.
        gains: ``(N, C)`` float in ``[0.2, 1)``, per image and channel.
        max_offset: the translation's range (7 in E-LPIPS).
    """

    scale: int
    scale_offset: tuple[int, int]
    offsets: torch.Tensor
    flips: torch.Tensor
    transpose: bool
    permutations: torch.Tensor
    gains: torch.Tensor
    max_offset: int = MAX_OFFSET

    def apply(self, x: torch.Tensor, input_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
        """The transformed batch: ``x`` ``(N, C, H, W)`` in ``input_range`` to ``(N, C, H', W')`` in that range.

        ``H' = ceil-downscaled H + max_offset`` (``W'`` alike), swapped when ``transpose``.

        Example:
            >>> t = sample_transformation(torch.Generator().manual_seed(0), 2, 3, max_scale=1)
            >>> t.apply(torch.rand(2, 3, 16, 20)).shape[-2:] in (torch.Size([23, 27]), torch.Size([27, 23]))
            True
        """
        dev = x.device
        x = box_downscale(x, self.scale, self.scale_offset)
        x = translate(x, self.offsets.to(dev), self.max_offset)
        x = flip(x, self.flips.to(dev))
        if self.transpose:
            x = x.transpose(-1, -2)
        x = permute_channels(x, self.permutations.to(dev))
        return apply_gain(x, self.gains.to(device=dev, dtype=x.dtype), input_range)


def sample_scale(generator: torch.Generator, max_scale: int = MAX_SCALE) -> int:
    """Draw ``s`` in ``1..max_scale`` with ``P(s) ∝ 1/s²``.

    Example:
        >>> sample_scale(torch.Generator().manual_seed(0), 8) in range(1, 9)
        True
    """
    return int(torch.multinomial(scale_probabilities(max_scale), 1, generator=generator).item()) + 1


def sample_transformation(
    generator: torch.Generator,
    n: int,
    channels: int = 3,
    *,
    max_scale: int = MAX_SCALE,
    max_offset: int = MAX_OFFSET,
) -> Transformation:
    """Draw one :class:`Transformation` for ``n`` image pairs of ``channels`` channels (on the CPU).

    Example:
        >>> t = sample_transformation(torch.Generator().manual_seed(0), 4)
        >>> t.offsets.shape, t.permutations.shape, bool(((t.gains >= 0.2) & (t.gains < 1)).all())
        (torch.Size([4, 2]), torch.Size([4, 3]), True)
    """
    g = generator
    scale = sample_scale(g, max_scale)
    dy, dx = torch.randint(0, scale, (2,), generator=g).tolist()
    offsets = torch.randint(0, max_offset + 1, (n, 2), generator=g)
    flips = torch.randint(0, 4, (n,), generator=g)
    transpose = bool(torch.randint(0, 2, (1,), generator=g).item())
    table = torch.tensor(list(itertools.permutations(range(channels))), dtype=torch.long)
    permutations = table[torch.randint(0, len(table), (n,), generator=g)]
    gains = GAIN_MIN + (1.0 - GAIN_MIN) * torch.rand(n, channels, generator=g)
    return Transformation(scale, (dy, dx), offsets, flips, transpose, permutations, gains, max_offset)


def box_downscale(x: torch.Tensor, scale: int, offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Average ``scale x scale`` boxes after reflect padding ``offset`` before and the rest after.

    The padded side is ``floor((side + 2·scale - 2) / scale) · scale``, as E-LPIPS pads: at least
    ``scale - 1`` pixels of padding even when ``scale`` divides the side.

    Args:
        x: ``(N, C, H, W)``.
        scale: the factor (1 returns ``x``).
        offset: ``(dy, dx)``, each in ``[0, scale)``.

    Example:
        >>> out = box_downscale(torch.arange(16.0).reshape(1, 1, 4, 4), 2)  # padded to 6 x 6: 0 before, 2 after
        >>> out.shape[-2:], out[0, 0, 0].tolist()
        (torch.Size([3, 3]), [2.5, 4.5, 3.5])
    """
    if scale == 1:
        return x
    h, w = x.shape[-2:]
    pads = []
    for side, before in ((w, offset[1]), (h, offset[0])):  # F.pad takes the last dimension first
        full = downscaled_side(side, scale) * scale
        pads += [before, full - side - before]
    return F.avg_pool2d(F.pad(x, pads, mode="reflect"), scale)


def translate(x: torch.Tensor, offsets: torch.Tensor, max_offset: int = MAX_OFFSET) -> torch.Tensor:
    """Per image, reflect-pad ``max_offset - d`` before and ``d`` after each spatial axis.

    Args:
        x: ``(N, C, H, W)`` with ``H, W > max_offset``.
        offsets: ``(N, 2)`` long ``(dy, dx)`` in ``0..max_offset``.

    Returns:
        ``(N, C, H + max_offset, W + max_offset)``: image ``i`` shifted by ``max_offset - d`` pixels.

    Example:
        >>> x = torch.arange(64.0).reshape(1, 1, 8, 8)
        >>> translate(x, torch.tensor([[7, 7]]))[0, 0, 0, :3].tolist()  # shifted by 0: starts at x[0, 0]
        [0.0, 1.0, 2.0]
    """
    if max_offset == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, [max_offset] * 4, mode="reflect")
    rows = offsets[:, 0, None] + torch.arange(h + max_offset, device=x.device)  # (N, H')
    cols = offsets[:, 1, None] + torch.arange(w + max_offset, device=x.device)  # (N, W')
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, -1, padded.shape[-1]))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h + max_offset, -1))


def flip(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Flip each image: ``flips`` ``(N,)`` in ``0..3`` (0 left-right, 1 up-down, 2 both, 3 neither).

    Example:
        >>> flip(torch.tensor([[[[1.0, 2.0]]]]), torch.tensor([0])).flatten().tolist()
        [2.0, 1.0]
    """
    lr = ((flips == 0) | (flips == 2)).view(-1, 1, 1, 1)
    ud = ((flips == 1) | (flips == 2)).view(-1, 1, 1, 1)
    x = torch.where(lr, x.flip(-1), x)
    return torch.where(ud, x.flip(-2), x)


def permute_channels(x: torch.Tensor, permutations: torch.Tensor) -> torch.Tensor:
    """Reorder each image's channels: output channel ``k`` of image ``i`` is input channel ``permutations[i, k]``.

    Example:
        >>> x = torch.arange(3.0).view(1, 3, 1, 1)
        >>> permute_channels(x, torch.tensor([[2, 0, 1]])).flatten().tolist()
        [2.0, 0.0, 1.0]
    """
    index = permutations[:, :, None, None].expand(-1, -1, *x.shape[-2:])
    return x.gather(1, index)


def apply_gain(x: torch.Tensor, gains: torch.Tensor, input_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Multiply each image's channels by ``gains`` ``(N, C)`` as images in ``[0, 1]``: ``lo + (x - lo)·g``.

    Example:
        >>> apply_gain(torch.ones(1, 2, 1, 1), torch.tensor([[0.5, 0.2]])).flatten().tolist()
        [0.5, 0.20000000298023224]
        >>> apply_gain(torch.ones(1, 1, 1, 1), torch.tensor([[0.5]]), (-1.0, 1.0)).item()
        0.0
    """
    lo = input_range[0]
    g = gains[:, :, None, None]
    return x * g if lo == 0 else lo + (x - lo) * g


def dropout_masks(
    generator: torch.Generator, features: Mapping[str, torch.Tensor], keep: float = KEEP_PROBABILITY
) -> dict[str, torch.Tensor]:
    """One inverted-dropout mask per tap: ``1/keep`` with probability ``keep``, else 0, shaped like its features.

    ``generator`` must be on the features' device. The same masks multiply both images' features.

    Example:
        >>> m = dropout_masks(torch.Generator().manual_seed(0), {"conv1": torch.zeros(1, 4, 8, 8)}, keep=0.5)
        >>> sorted(set(m["conv1"].flatten().tolist()))
        [0.0, 2.0]
    """
    out = {}
    for tap, f in features.items():
        draw = torch.rand(f.shape, generator=generator, device=f.device)
        out[tap] = (draw < keep).to(f.dtype) / keep
    return out


@dataclass(frozen=True)
class Ensemble:
    """E-LPIPS' random transformation ensemble, as settings; calling it scores a pair through a pipeline.

    Attach one to any pipeline with the spec form ``elpips(<spec>)`` or ``ensemble=`` of
    :func:`percept.pipeline.build_pipeline` (which :class:`~percept.PerceptualLoss`,
    :class:`~percept.PerceptualMetric` and :func:`~percept.perceptual_distance` pass on); the pipeline's
    ``forward`` then runs ``ensemble(pipeline, x, y)``.

    Args:
        n: draws averaged per call. ``None``: 1 in a call that builds a graph for an input (a loss:
            one draw per optimisation step, as E-LPIPS optimises), :data:`EVAL_SAMPLES` (200, E-LPIPS'
            evaluation default) in any other call (a metric).
        seed: seed of the draws. An int: every call draws the same transformations (same images, same
            value). ``None``: a loss call draws fresh ones from torch's global generator, a metric call
            uses seed 0. The transformations are drawn on the CPU, so a seed gives the same ones on every
            device; the dropout masks are drawn on the images' device, whose generator (CUDA's or the
            CPU's) decides them, so a seeded value is reproducible per device type.
        keep: keep probability of the feature dropout (0.99); 1 turns dropout off.
        max_scale: largest downscale factor (8); 1 turns downscaling off.
        max_offset: largest translation in pixels (7); 0 turns translation off.

    The value of a call is ``(1/n) Σ_k Σ_l w_l d_l(T_k x, T_k y)``, shape ``(N,)``; gradients flow to
    the inputs through every transformation (all are linear in the image).

    Example:
        >>> from percept.pipeline import build_pipeline
        >>> p = build_pipeline("elpips(alexnet:conv1,conv2/unit/l2)", weights=None)  # doctest: +SKIP
        >>> p.ensemble  # doctest: +SKIP
        Ensemble(n=None, seed=None, keep=0.99, max_scale=8, max_offset=7)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> e = Ensemble(n=4, seed=0)
        >>> e.draws(x.shape, min_size=1)[0].scale in range(1, 9)
        True
    """

    n: int | None = None
    seed: int | None = None
    keep: float = KEEP_PROBABILITY
    max_scale: int = MAX_SCALE
    max_offset: int = MAX_OFFSET

    def __post_init__(self) -> None:
        if self.n is not None and (isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1):
            raise SpecError(f"ensemble n must be a whole number >= 1 or None, got {self.n!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise SpecError(f"ensemble seed must be an int or None, got {self.seed!r}")
        if not 0.0 < float(self.keep) <= 1.0:
            raise SpecError(f"ensemble keep must be in (0, 1], got {self.keep!r}")
        for name, low in (("max_scale", 1), ("max_offset", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SpecError(f"ensemble {name} must be a whole number >= {low}, got {value!r}")

    def plan(self, graph: bool) -> tuple[int, torch.Generator]:
        """The number of draws and the CPU generator of a call (``graph``: the call is a loss's).

        Example:
            >>> Ensemble().plan(graph=False)[0], Ensemble().plan(graph=True)[0], Ensemble(n=3).plan(False)[0]
            (200, 1, 3)
        """
        n = self.n if self.n is not None else (1 if graph else EVAL_SAMPLES)
        seed = self.seed
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item()) if graph else 0
        return n, torch.Generator().manual_seed(seed)

    def draws(
        self, shape: Sequence[int], min_size: int, generator: torch.Generator | None = None, n: int | None = None
    ) -> list[Transformation]:
        """The transformations of a call on images of ``shape`` ``(N, C, H, W)`` (seeded as :meth:`plan` says).

        Args:
            shape: the images' shape.
            min_size: the pipeline's smallest input side (bounds the downscale, :func:`largest_scale`).
            generator: draw from it instead of a fresh seeded one.
            n: the number of draws (default: :meth:`plan`'s for a metric call).
        """
        count, fresh = self.plan(graph=False)
        g = generator if generator is not None else fresh
        top = min(self.max_scale, largest_scale(shape[-2], shape[-1], min_size, self.max_scale, self.max_offset))
        kw = {"max_scale": top, "max_offset": self.max_offset}
        return [sample_transformation(g, shape[0], shape[1], **kw) for _ in range(n or count)]

    def __call__(self, pipeline: _Scorable, x: torch.Tensor, y: torch.Tensor, *, spatial: bool = False) -> torch.Tensor:
        """Ensemble distance of ``x`` and ``y`` ``(N, C, H, W)`` through ``pipeline``: ``(N,)``, ``>= 0``.

        Raises:
            SpecError: ``spatial=True`` (transformed maps do not align with the input).
            InputError: bad images (the pipeline's checks), or sides of 7 pixels or less.
        """
        if spatial:
            raise SpecError("an E-LPIPS ensemble gives one distance per pair, no spatial map (spatial=True)")
        if pipeline.check_inputs:
            pipeline.check(x, y)
        graph = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
        n, generator = self.plan(graph)
        transformations = self.draws(x.shape, pipeline.min_size, generator, n)
        device_generator = None
        if self.keep < 1.0:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
            device_generator = torch.Generator(device=x.device).manual_seed(seed)
        total: torch.Tensor | None = None
        for t in transformations:
            fx, fy = pipeline.features(t.apply(x, pipeline.input_range), t.apply(y, pipeline.input_range))
            if device_generator is not None:
                masks = dropout_masks(device_generator, fx, self.keep)
                fx = {k: v * masks[k] for k, v in fx.items()}
                fy = {k: v * masks[k] for k, v in fy.items()}
            per_tap = pipeline.feature_distances(fx, fy)
            value = sum(d * w for d, w in zip(per_tap.values(), pipeline.layer_weights, strict=True))
            assert isinstance(value, torch.Tensor)
            total = value if total is None else total + value
        assert total is not None
        return total / len(transformations)
