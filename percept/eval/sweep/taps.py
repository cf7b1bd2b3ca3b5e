"""The taps a sweep visits and :class:`TapScorer`, which compares them between a reference and a batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from percept.errors import InputError, TapError

if TYPE_CHECKING:  # pragma: no cover
    from percept.backbones.base import Backbone


INPUT_TAP = "input"


@dataclass(frozen=True)
class SweepTap:
    """One tap of a sweep: its display name, module path (``""`` for the input), depth and canonicity."""

    name: str
    module: str
    depth: int
    canonical: bool


def sweep_taps(backbone: Backbone, taps: Sequence[str] | None = None) -> list[SweepTap]:
    """The taps a sweep visits: the input (depth 0) and every stage output, or the ``taps`` named.

    Each stage is named by its finer tap name where the backbone has one (``relu3_3``), else its
    canonical name (ResNet's ``layer2`` for the last block of that layer), else its module path;
    ``canonical`` marks the stages behind the backbone's canonical taps. ``depth`` is the stage's
    position (1 for the first stage), whatever name it was asked by. A name given twice, or two names
    of one stage, are one tap.

    Example:
        >>> [t.name for t in sweep_taps(create_backbone("alexnet", weights=None))][:4]  # doctest: +SKIP
        ['input', 'features.0', 'relu1', 'pool1']
    """
    by_index: dict[int, list] = {}
    for info in backbone.feature_info:
        by_index.setdefault(info.index, []).append(info)
    paths = backbone.module_paths
    chosen = [INPUT_TAP, *paths] if taps is None or list(taps) == ["all"] else list(taps)
    out: list[SweepTap] = []
    seen: set[tuple[str, int]] = set()
    for name in chosen:
        if name == INPUT_TAP:
            tap = SweepTap(INPUT_TAP, "", 0, False)
        else:
            info = backbone.tap_info(name)
            infos = by_index.get(info.index, [])
            fine = [i.name for i in infos if not i.canonical]
            named = fine or [i.name for i in infos]
            display = name if name != paths[info.index] else (named[0] if named else name)
            tap = SweepTap(display, paths[info.index], info.index + 1, any(i.canonical for i in infos))
        if (tap.name, tap.depth) not in seen:
            seen.add((tap.name, tap.depth))
            out.append(tap)
    return out


class TapScorer:
    """Compares every tap of a backbone between one reference image and batches of distorted ones.

    Args:
        backbone: the network (frozen, eval mode).
        taps: from :func:`sweep_taps`.
        measures: ``{name: f(a, b) -> (N,)}`` or per-map ``(N, C)`` functions.

    :meth:`set_reference` runs the reference once and keeps its tap maps; :meth:`score` runs a distorted
    batch once through :meth:`~percept.backbones.base.Backbone.iter_taps`, comparing each tap's map with
    the reference's as its stage finishes, so no map of the batch outlives its comparison.

    Example:
        >>> scorer = TapScorer(bb, sweep_taps(bb), {"flat-l2": make_measure("flat-l2")})  # doctest: +SKIP
        >>> scorer.set_reference(ref)  # (1, 3, H, W)  # doctest: +SKIP
        >>> scorer.score(dist)[("relu1_1", "flat-l2")].shape  # (N,)  # doctest: +SKIP
    """

    def __init__(self, backbone: Backbone, taps: Sequence[SweepTap], measures: dict[str, Callable]) -> None:
        self.backbone = backbone
        self.taps = list(taps)
        self.measures = measures
        # Stage taps by module path (what the backbone is asked for); several names may share one stage.
        self._module_taps: dict[str, list[SweepTap]] = {}
        for tap in self.taps:
            if tap.module:
                self._module_taps.setdefault(tap.module, []).append(tap)
        self._reference: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def set_reference(self, ref: torch.Tensor) -> None:
        """Run the reference ``(1, C, H, W)`` in [0, 1] and keep every tap's map."""
        self._reference = {INPUT_TAP: ref}
        if self._module_taps:
            self._reference.update(self.backbone.iter_taps(ref, list(self._module_taps)))

    @torch.no_grad()
    def score(self, dist: torch.Tensor) -> dict[tuple[str, str], torch.Tensor]:
        """Distances of a batch ``(N, C, H, W)`` to the reference, ``{(tap name, measure): (N,) or (N, C)}``.

        Raises:
            TapError: a tap yielded no map (names the backbone and the tap), so a sweep never has fewer
                rows than pairs x taps x measures without saying why.
        """
        if self._reference is None:
            raise RuntimeError("call set_reference before score")
        ref = self._reference
        if ref[INPUT_TAP].shape[1:] != dist.shape[1:]:
            raise InputError(
                f"distorted images of shape {tuple(dist.shape[1:])} do not match their reference's "
                f"{tuple(ref[INPUT_TAP].shape[1:])}; pass resize= to compare images of different sizes"
            )
        out: dict[tuple[str, str], torch.Tensor] = {}

        def compare(key: str, taps: list[SweepTap], features: torch.Tensor) -> None:
            for tap in taps:
                for name, fn in self.measures.items():
                    out[(tap.name, name)] = fn(ref[key], features).detach().cpu()

        inputs = [t for t in self.taps if t.name == INPUT_TAP]
        if inputs:
            compare(INPUT_TAP, inputs, dist)
        if self._module_taps:
            for module, features in self.backbone.iter_taps(dist, list(self._module_taps)):
                compare(module, self._module_taps[module], features)
        missing = [t.name for t in self.taps if any((t.name, m) not in out for m in self.measures)]
        if missing:
            raise TapError(f"backbone {self.backbone.name!r} gave no value for tap(s) {missing}")
        return out


def build_backbone(backbone: str | Backbone, *, weights="imagenet", network_resize: bool = False) -> Backbone:
    """The backbone a toolkit function runs: a name built with ``weights``, or a built one as it is.

    Args:
        backbone: a registered name (``"resnet50"``, ``"timm.vit_small_patch16_224.dino"``), a
            :class:`~percept.backbones.base.Backbone`, or a ``heads.json`` written by ``percept learn`` (the
            network its heads were learned on, with the recorded weights: :func:`percept.eval.learn.heads_backbone`).
        weights: as :func:`~percept.create_backbone` (``None``: random, with a warning); for a ``heads.json``,
            ``"imagenet"`` (the default) means the recorded weights, and others must have their checksum.
        network_resize: a network that runs at one input size only (MaxViT, LeViT, BEiT) is built
            with ``resize=True``: every image is resized to that size on the way in (its
            interpolation, antialiased). Other networks are built as usual.

    Example:
        >>> build_backbone("maxvit_t", weights=None, network_resize=True).resize  # doctest: +SKIP
        True
    """
    from percept.backbones.factory import create_backbone

    if not isinstance(backbone, str):
        return backbone
    if backbone.endswith(".json"):  # a learned-heads file: the network its heads were learned on
        from percept.eval.learn.files import heads_backbone

        return heads_backbone(backbone, weights="from-file" if weights == "imagenet" else weights)
    net = create_backbone(backbone, weights=weights)
    if network_resize and net.fixed_size and not net.resize:
        net = create_backbone(backbone, weights=weights, resize=True)
    return net
