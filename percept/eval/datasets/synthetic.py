"""Synthetic 2AFC and JND sets whose judgements come from a known hidden observer.

Learning a perceptual metric can only be checked offline against people whose taste is known. A
:class:`PlantedObserver` is such a person: it looks at a network's channel-unit-normalised features
and weighs a random, seeded subset of each tap's channels (the *planted* channels). :func:`make_2afc`
and :func:`make_jnd` write image sets in the layouts the readers know (BAPPS 2AFC, NIGHTS, a CSV
triplet manifest, BAPPS JND) with simulated judgements drawn from that observer, so a learner that
finds the planted channels must reach the observer's own agreement, and one that weighs every
channel alike falls short.

Images are smooth random textures (bicubically upsampled noise over several octaves, a random mean
colour) with random distortions (additive noise, blur, a colour shift, a contrast change, blocks);
everything is made with torch ops from one seeded generator, written as 8-bit PNG, and judged as
written (the observer sees the quantised images). The same arguments give the same files.

Example:
    >>> from percept.eval.datasets import load_database
    >>> observer = PlantedObserver("alexnet", seed=0)  # doctest: +SKIP
    >>> path = make_2afc("/tmp/syn", observer, layout="bapps", n_train=200, n_val=100)  # doctest: +SKIP
    >>> load_database("bapps", path).table["subset"].unique().tolist()  # doctest: +SKIP
    ['train/synthetic', 'val/synthetic']
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from percept.errors import InputError, SpecError, unknown_name
from percept.eval.datasets.synthetic_images import (
    DISTORTIONS,
    SET_NAME,
    distort,
    quantise,
    save_png,
    textures,
    triplets,
    write_2afc_layout,
)

if TYPE_CHECKING:  # pragma: no cover
    from percept.backbones.base import Backbone

LAYOUTS = ("bapps", "nights", "csv")
"""The 2AFC layouts :func:`make_2afc` writes (the names ``load_database`` reads them by: ``bapps``,
``nights``, ``triplets``)."""
__all__ = [
    "DISTORTIONS",
    "LAYOUTS",
    "PlantedObserver",
    "distort",
    "make_2afc",
    "make_jnd",
    "observer_distance",
    "save_png",
    "simulate_judges",
    "textures",
    "triplets",
]
BATCH = 64  # images per observer pass while generating


class PlantedObserver:
    """A hidden observer: ``d(x, y) = sum_t mean_hw sum_{c in planted[t]} w_c (u_x - u_y)^2``.

    ``u`` are the channel-unit-normalised features of ``backbone`` at tap ``t`` (each pixel's channel
    vector divided by its norm, as LPIPS and the ``unit`` readout do). In every tap a random
    ``fraction`` of the channels (at least one) is planted, with weights ``w_c ~ U(0.5, 1.5)``; the
    other channels weigh 0. Both draws come from ``seed``, so two observers with the same arguments
    on the same network agree.

    Args:
        backbone: a percept :class:`~percept.backbones.base.Backbone` (preferred: a learner that
            shares the same network can find the planted channels exactly), or a backbone name,
            optionally with taps (``"alexnet"``, ``"vgg16:conv1,conv3"``), built with the random weights
            ``weights="random:<seed>"`` (the network ``--weights random:<seed>`` builds on the command line).
        taps: the taps to plant channels in; default the backbone's canonical taps (or the spec's).
        fraction: share of each tap's channels that is planted, in ``(0, 1]``.
        seed: seeds the planted channels, their weights, and a network built from a name.
        input_range: the range of the images :meth:`distance` receives (``(0, 1)``; ``(-1, 1)`` for
            LPIPS' convention); they are mapped to the backbone's own input range.

    Attributes:
        planted: tap -> ``LongTensor`` of planted channel indices, ascending.
        channel_weights: tap -> ``(C,)`` float32 weights, zero outside ``planted``.
        backbone: the network.
        taps: the tap names, shallow to deep.

    Example:
        >>> observer = PlantedObserver("alexnet", fraction=0.1, seed=0)  # doctest: +SKIP
        >>> {t: len(c) for t, c in observer.planted.items()}  # doctest: +SKIP
        {'conv1': 6, 'conv2': 19, 'conv3': 38, 'conv4': 26, 'conv5': 26}
        >>> observer.distance(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)).shape  # doctest: +SKIP
        torch.Size([2])
    """

    def __init__(
        self,
        backbone: Backbone | str,
        taps: Sequence[str] | None = None,
        *,
        fraction: float = 0.1,
        seed: int = 0,
        input_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 1.0):
            raise InputError(f"fraction must be a number in (0, 1], got {fraction!r}")
        self.backbone, spec_taps = _backbone(backbone, seed)
        self.taps = [info.name for info in self.backbone.resolve_taps(list(taps) if taps else spec_taps)]
        low, high = (float(v) for v in input_range)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise InputError(f"input_range must be finite with low < high, got {input_range!r}")
        self.input_range = (low, high)
        self.fraction = float(fraction)
        self.seed = int(seed)
        generator = torch.Generator().manual_seed(self.seed)
        self.planted: dict[str, torch.Tensor] = {}
        self.channel_weights: dict[str, torch.Tensor] = {}
        for tap in self.taps:
            channels = self.backbone.tap_info(tap).channels
            count = max(1, round(self.fraction * channels))
            chosen = torch.randperm(channels, generator=generator)[:count].sort().values
            weights = torch.zeros(channels)
            weights[chosen] = 0.5 + torch.rand(count, generator=generator)
            self.planted[tap] = chosen
            self.channel_weights[tap] = weights

    def channel_errors(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per tap, each channel's ``mean_hw (u_x - u_y)^2`` (the terms :meth:`distance` weighs).

        ``x`` and ``y`` go through the network as one batch, in one pass up to the deepest tap.

        Args:
            x, y: ``(N, 3, H, W)`` images in ``input_range``.

        Returns:
            ``{tap: (N, C_tap)}`` float32, non-negative.

        Example:
            >>> errors = observer.channel_errors(x, y)  # doctest: +SKIP
            >>> d = sum(e @ observer.channel_weights[t] for t, e in errors.items())  # doctest: +SKIP
        """
        if x.shape != y.shape or x.dim() != 4:
            raise InputError(f"expected x and y of one shape (N, 3, H, W), got {tuple(x.shape)} and {tuple(y.shape)}")
        n = x.shape[0]
        return {t: (u[:n] - u[n:]).pow(2).mean(dim=(2, 3)) for t, u in self._unit_features(torch.cat([x, y]))}

    def _unit_features(self, images: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """``(tap, unit-normalised features)`` of images in ``input_range``, one pass, tap by tap."""
        from percept.ops.reference import unit_normalize

        device = next((t.device for t in self.backbone.parameters()), torch.device("cpu"))
        images = self._to_backbone_range(images.to(device=device, dtype=torch.float32))
        for tap, feature in self.backbone.iter_taps(images, self.taps):
            yield tap, unit_normalize(feature.float())

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The observer's distance between ``x`` and ``y`` (see the class docstring).

        Args:
            x, y: ``(N, 3, H, W)`` images in ``input_range`` (default ``[0, 1]``).

        Returns:
            ``(N,)`` float32 distances, ``>= 0``, 0 for identical images.

        Example:
            >>> observer.distance(x, x).abs().max().item()  # doctest: +SKIP
            0.0
        """
        total = torch.zeros(x.shape[0])
        for tap, errors in self.channel_errors(x, y).items():
            total = total + (errors @ self.channel_weights[tap].to(errors.device)).cpu()
        return total

    def describe(self) -> dict:
        """The observer as JSON-ready data: backbone, taps, seed, fraction, planted channels and their weights.

        ``weights`` is ``"random:<seed>"`` for random weights (what rebuilds them), else ``None``; the
        checksum of the network's weights identifies it either way.

        Example:
            >>> sorted(observer.describe())  # doctest: +SKIP
            ['backbone', 'channel_weights', 'fraction', 'planted', 'seed', 'taps', 'weights', 'weights_checksum']
        """
        from percept.backbones.weights import state_dict_checksum

        seed = getattr(self.backbone, "random_seed", None)
        return {
            "backbone": self.backbone.name,
            "weights": None if seed is None else f"random:{seed}",
            "weights_checksum": state_dict_checksum(self.backbone),
            "taps": list(self.taps),
            "seed": self.seed,
            "fraction": self.fraction,
            "planted": {t: c.tolist() for t, c in self.planted.items()},
            "channel_weights": {t: [float(w) for w in self.channel_weights[t][c]] for t, c in self.planted.items()},
        }

    def _to_backbone_range(self, images: torch.Tensor) -> torch.Tensor:
        (low, high), (b_low, b_high) = self.input_range, self.backbone.input_range
        if (low, high) == (b_low, b_high):
            return images
        return (images - low) * ((b_high - b_low) / (high - low)) + b_low

    def _from_unit_range(self, images: torch.Tensor) -> torch.Tensor:
        low, high = self.input_range
        return images if (low, high) == (0.0, 1.0) else images * (high - low) + low

    def _distance_01(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """:meth:`distance` of ``[0, 1]`` images, in batches, without gradients."""
        out = []
        with torch.no_grad():
            for start in range(0, x.shape[0], BATCH):
                a, b = x[start : start + BATCH], y[start : start + BATCH]
                out.append(self.distance(self._from_unit_range(a), self._from_unit_range(b)))
        return torch.cat(out).double()

    def _triplet_distances(self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor) -> torch.Tensor:
        """``(N, 2)`` float64 distances ``d(ref, p0), d(ref, p1)`` of ``[0, 1]`` images: each image through the
        network once, in batches, without gradients."""
        out = []
        with torch.no_grad():
            for start in range(0, ref.shape[0], BATCH):
                batch = [images[start : start + BATCH] for images in (ref, p0, p1)]
                n = batch[0].shape[0]
                d = torch.zeros(n, 2, dtype=torch.float64)
                for tap, u in self._unit_features(self._from_unit_range(torch.cat(batch))):
                    weights = self.channel_weights[tap].to(u.device).double()
                    for j in (0, 1):
                        errors = (u[:n] - u[(j + 1) * n : (j + 2) * n]).pow(2).mean(dim=(2, 3))
                        d[:, j] += (errors.double() @ weights).cpu()
                out.append(d)
        return torch.cat(out)


def _backbone(backbone: Backbone | str, seed: int) -> tuple[Backbone, list[str] | None]:
    """The network an observer looks through, and the taps a spec string names (``None``: default)."""
    from percept.backbones.base import Backbone

    if isinstance(backbone, Backbone):
        return backbone, None
    if not isinstance(backbone, str):
        raise InputError(f"backbone must be a percept Backbone or a backbone name, got {type(backbone).__name__}")
    import warnings

    from percept.backbones.factory import create_backbone
    from percept.errors import RandomWeightsWarning
    from percept.spec import parse_spec

    spec = parse_spec(backbone)
    if spec.readout is not None or spec.distance is not None or spec.ensemble is not None:
        raise SpecError(f"a planted observer needs a backbone name with optional taps (e.g. 'alexnet:conv1,conv2'), "
                        f"got {backbone!r}")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)  # random on purpose: the observer is made up
        net = create_backbone(spec.backbone, weights=f"random:{seed}")
    return net, None if spec.taps is None else [t.name for t in spec.taps]


# -- judgements ----------------------------------------------------------------------------------------


def _temperature(differences: torch.Tensor, temperature: float | None) -> float:
    """The given temperature, checked, or a quarter of the median ``|d0 - d1|``: at the median gap 98% of
    people choose the closer image, at a tenth of it 60%, so judgements are informative without all being
    unanimous (about two thirds of 5-person judgements are)."""
    if temperature is not None:
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise InputError(f"temperature must be a finite number > 0 (or None for a data-driven scale), "
                             f"got {temperature!r}")  # fmt: skip
        return float(temperature)
    scale = float(differences.abs().median()) / 4.0
    return scale if scale > 0 else 1.0


def _votes(probability: torch.Tensor, judges: int, generator: torch.Generator) -> torch.Tensor:
    """The fraction of ``judges`` simulated people who say yes, each with ``probability``."""
    draws = torch.rand(probability.shape[0], judges, generator=generator, dtype=torch.float64)
    return (draws < probability.double().unsqueeze(1)).double().mean(dim=1)


def simulate_judges(
    d0: torch.Tensor,
    d1: torch.Tensor,
    *,
    judges: int = 5,
    temperature: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, float]:
    """2AFC judgements of simulated people who follow an observer's distances, with noise.

    Each of ``judges`` people chooses ``p1`` as closer with probability ``sigmoid((d0 - d1) / temperature)``.

    Args:
        d0, d1: ``(N,)`` the observer's distances from the reference to ``p0`` and ``p1``.
        judges: people per triplet.
        temperature: the noise scale (> 0); ``None``: a quarter of the median ``|d0 - d1|``.
        generator: the seeded torch generator the votes are drawn from.

    Returns:
        ``(judge, temperature)``: ``(N,)`` float64 fractions who chose ``p1``, and the temperature used.

    Example:
        >>> judge, t = simulate_judges(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), temperature=0.01)
        >>> judge.tolist()
        [1.0, 0.0]
    """
    _check_counts(judges=judges)
    scale = _temperature(d0 - d1, temperature)
    probability = torch.sigmoid((d0.double() - d1.double()) / scale)
    return _votes(probability, judges, generator or torch.Generator().manual_seed(0)), scale


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        low = 0 if name in ("n_train", "n_val") else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_size(observer: PlantedObserver, size: int) -> None:
    if not isinstance(size, int) or size < 8:
        raise InputError(f"size must be an integer >= 8, got {size!r}")
    need = observer.backbone.min_size(observer.taps)
    if size < need:
        raise InputError(f"size {size} is too small for backbone {observer.backbone.name!r} at taps "
                         f"{observer.taps}: it needs images of at least {need}x{need}")  # fmt: skip
    observer.backbone.check_input(torch.zeros(1, 3, size, size), observer.taps)  # a network of one size names it


# -- 2AFC ----------------------------------------------------------------------------------------------


def make_2afc(
    root: str | os.PathLike,
    observer: PlantedObserver,
    *,
    layout: str = "bapps",
    n_train: int = 200,
    n_val: int = 100,
    size: int = 64,
    judges: int = 5,
    temperature: float | None = None,
    seed: int = 0,
) -> Path:
    """Write a synthetic 2AFC set judged by ``observer``, in one of the layouts the readers know.

    Each triplet is a texture (the reference) and two random distortions of it, ``p0`` and ``p1``. Each
    of ``judges`` simulated people chooses ``p1`` as closer with probability
    ``sigmoid((d0 - d1) / temperature)``, ``d`` the observer's distances to the reference; ``judge``
    is the fraction who did. ``observer.json`` beside the data (in ``2afc/``, ``nights/``, or beside
    ``triplets.csv``) records the observer, the temperature and the seed.

    Args:
        root: the folder to write into (made if missing; files already there are overwritten).
        observer: the hidden observer.
        layout: ``"bapps"`` (``2afc/{train,val}/synthetic/{ref,p0,p1,judge}/000000.{png,npy}``),
            ``"nights"`` (``nights/{ref/000/000.png, distort/000/000_{0,1}.png, data.csv}``, judge in
            ``right_vote``), or ``"csv"`` (``triplets.csv`` with ``ref,p0,p1,judge,split`` and the
            images in ``ref/``, ``p0/``, ``p1/``).
        n_train, n_val: triplets in the ``train`` and ``val`` splits.
        size: image side in pixels.
        judges: simulated people per triplet (judge fractions are multiples of ``1 / judges``).
        temperature: the observer's noise scale; ``None``: a quarter of the median ``|d0 - d1|`` of the set.
        seed: seeds the images, the distortions and the votes (the same arguments give the same files).

    Returns:
        The path to give the reader: ``root`` for ``bapps`` (``load_database("bapps", path)``),
        ``root/nights`` for ``nights``, ``root/triplets.csv`` for ``csv`` (``load_database("triplets", path)``).

    Example:
        >>> path = make_2afc(tmp, PlantedObserver("alexnet"), layout="csv", n_train=20, n_val=10)  # doctest: +SKIP
        >>> load_database("triplets", path).table.groupby("subset").size().to_dict()  # doctest: +SKIP
        {'train/triplets': 20, 'val/triplets': 10}
    """
    if layout not in LAYOUTS:
        raise InputError(unknown_name("layout", str(layout), LAYOUTS))
    _check_counts(n_train=n_train, n_val=n_val, judges=judges)
    if n_train + n_val == 0:
        raise InputError("n_train + n_val must be at least 1")
    _check_size(observer, size)
    generator = torch.Generator().manual_seed(int(seed))
    n = n_train + n_val
    ref, p0, p1 = triplets(n, size, generator)
    d0, d1 = observer._triplet_distances(ref, p0, p1).unbind(1)
    judge, scale = simulate_judges(d0, d1, judges=judges, temperature=temperature, generator=generator)
    splits = ["train"] * n_train + ["val"] * n_val
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = write_2afc_layout(layout, root, ref, p0, p1, judge, splits, judges)
    folder = {"bapps": root / "2afc", "nights": root / "nights", "csv": root}[layout]
    _write_observer(
        folder, observer, kind="2afc", layout=layout, temperature=scale, judges=judges, seed=seed, size=size
    )
    return path


def _write_observer(root: Path, observer: PlantedObserver, **settings) -> None:
    text = json.dumps({**settings, "observer": observer.describe()}, indent=1)
    (root / "observer.json").write_text(text + "\n")


# -- JND -----------------------------------------------------------------------------------------------


def make_jnd(
    root: str | os.PathLike,
    observer: PlantedObserver,
    *,
    n: int = 200,
    size: int = 64,
    seed: int = 0,
    judges: int = 3,
    temperature: float | None = None,
) -> Path:
    """Write a synthetic JND set judged by ``observer``: ``jnd/val/synthetic/{p0,p1,same}/000000.{png,npy}``.

    Each pair is a texture and a random distortion of it, most of them mild. Each of ``judges``
    simulated people calls the pair the same with probability ``sigmoid((m - d) / temperature)``, ``d``
    the observer's distance and ``m`` its median over the set; ``same`` is the fraction who did.

    Args:
        root: the folder to write into.
        observer: the hidden observer.
        n: pairs.
        size: image side in pixels.
        seed: seeds images, distortions and votes.
        judges: simulated people per pair (BAPPS' JND pairs had 3).
        temperature: noise scale; ``None``: a quarter of the median ``|d - m|``.

    Returns:
        ``root``, the path to give ``load_database("bapps-jnd", path)``.

    Example:
        >>> db = load_database("bapps-jnd", make_jnd(tmp, PlantedObserver("alexnet"), n=20))  # doctest: +SKIP
        >>> db.table.columns.tolist()  # doctest: +SKIP
        ['p0', 'p1', 'same', 'subset']
    """
    import numpy as np

    _check_counts(n=n, judges=judges)
    _check_size(observer, size)
    generator = torch.Generator().manual_seed(int(seed))
    p0 = quantise(textures(n, size, generator))
    kinds = torch.randint(len(DISTORTIONS), (n,), generator=generator)
    rms = 0.1 * torch.rand(n, generator=generator) ** 2  # many near-invisible changes, some plain ones
    p1 = quantise(distort(p0, kinds, rms, generator))
    d = observer._distance_01(p0, p1)
    gap = d.median() - d
    scale = _temperature(gap, temperature)
    same = _votes(torch.sigmoid(gap / scale), judges, generator)
    root = Path(root)
    folder = root / "jnd" / "val" / SET_NAME
    for i in range(n):
        save_png(p0[i], folder / "p0" / f"{i:06d}.png")
        save_png(p1[i], folder / "p1" / f"{i:06d}.png")
        (folder / "same").mkdir(parents=True, exist_ok=True)
        np.save(folder / "same" / f"{i:06d}.npy", np.array([float(same[i])]))
    _write_observer(root / "jnd", observer, kind="jnd", layout="bapps-jnd", temperature=scale, judges=judges, seed=seed,
                    size=size)  # fmt: skip
    return root


def observer_distance(observer: PlantedObserver) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The observer as a metric ``f(x, y) -> (N,)`` on ``[0, 1]`` images (for scoring it like any metric).

    Example:
        >>> agreement(db, observer_distance(observer))  # the ceiling a learner can reach  # doctest: +SKIP
    """
    return observer._distance_01
