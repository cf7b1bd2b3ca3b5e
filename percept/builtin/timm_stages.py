"""How percept cuts a timm model into stages: timm's own ``features_only`` rule, found per architecture.

Where timm runs the feature modules in sequence (``FeatureListNet``), the stages are those modules,
with the blocks inside a stage split out where running them in order was checked to give the
stage's output exactly (:func:`expand_blocks`); where timm reads features through
``forward_intermediates`` (vision transformers), :class:`IntermediatesBackbone` runs it with
``stop_early``. :mod:`percept.builtin.timm` builds backbones with these, in this order:
:func:`plan_cut` (which way, with which size keywords), :func:`build_cut` (the model ready to cut),
then :func:`expand_blocks` and :func:`sequential_stages` or :func:`intermediate_stages` (the stages);
:func:`meta_cut` gives the same cut without weights, for shape tracing.

Example:
    >>> from torch import nn
    >>> [path for path, _ in block_sequence("layer1", nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))]
    ['layer1.0', 'layer1.1']
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from percept.backbones.base import SHAPE_ERRORS, Backbone, flatten_stages
from percept.errors import SpecError


def import_timm() -> Any:
    """The ``timm`` module, or a :class:`~percept.errors.SpecError` saying how to install it.

    Returns:
        The imported ``timm`` package.

    Raises:
        SpecError: timm is not installed.

    Example:
        >>> import_timm().__name__  # doctest: +SKIP
        'timm'
    """
    try:
        import timm
    except ImportError:  # pragma: no cover - timm is a dependency of the test extra
        raise SpecError("timm backbones need timm: `pip install timm`") from None
    return timm


# Keyword sets tried in order: any input size where the architecture allows it (vision transformers
# pad to whole patches and resample their position embedding; Swin pads to whole windows).
Dynamic = tuple[tuple[str, bool], ...]
_DYNAMIC: tuple[Dynamic, ...] = (
    (("dynamic_img_size", True), ("dynamic_img_pad", True)),
    (("dynamic_img_size", True),),
    (),
)

SEQUENTIAL, INTERMEDIATES = "sequential", "intermediates"
# A timm model or its FeatureListNet, as these functions see it: submodules and timm's own attributes
# (feature_info, return_layers, output_fmt) reached by name, which torch's annotations give as `Tensor | Module`.
TimmModel = Any


def _timm_model(name: str, dynamic: Dynamic, **kwargs: Any) -> TimmModel:
    return import_timm().create_model(name, **kwargs, **dict(dynamic))


@functools.lru_cache(maxsize=64)
def plan_cut(name: str) -> tuple[Dynamic, str]:
    """How to cut the timm architecture ``name``: its size keywords and which way timm reads its features.

    The size keywords are the first set of :data:`_DYNAMIC` its constructor takes (``dynamic_img_size``
    and ``dynamic_img_pad`` where it allows any input size). The way is the one timm's own
    ``features_only`` takes: its modules in sequence (:data:`SEQUENTIAL`: ``FeatureListNet`` and the
    model-specific feature classes) or through ``forward_intermediates`` (:data:`INTERMEDIATES`:
    ``FeatureGetterNet``, vision transformers, whose position embeddings, rotary embeddings and prefix
    tokens live in ``forward``). Built on the meta device, so no weights are made or read; cached.

    Args:
        name: a timm architecture, with or without a pretrained tag (``"resnet18"``, ``"vit_small_patch16_224"``).

    Returns:
        ``(size keywords, way)``: ``((keyword, value), ...)`` to pass to ``timm.create_model``, and
        :data:`SEQUENTIAL` or :data:`INTERMEDIATES`.

    Example:
        >>> plan_cut("resnet18")  # doctest: +SKIP
        ((), 'sequential')
        >>> plan_cut("vit_tiny_patch16_224")  # doctest: +SKIP
        ((('dynamic_img_size', True), ('dynamic_img_pad', True)), 'intermediates')
    """
    for dynamic in _DYNAMIC:
        try:
            with torch.device("meta"):
                features = _timm_model(name, dynamic, pretrained=False, features_only=True)
        except TypeError:  # the constructor does not take the keywords
            continue
        except Exception:  # noqa: BLE001 - no features_only mode: the sequential cut says why it fails
            break
        getter = type(features).__name__ in ("FeatureGetterNet", "FeatureHooksNet")
        return dynamic, INTERMEDIATES if getter else SEQUENTIAL
    for dynamic in _DYNAMIC:
        try:
            with torch.device("meta"):
                _timm_model(name, dynamic, pretrained=False)
            return dynamic, SEQUENTIAL
        except TypeError:
            continue
    return (), SEQUENTIAL


def build_cut(
    name: str, kind: str, dynamic: Dynamic, pretrained: bool = False, overlay: dict | None = None
) -> tuple[TimmModel, str]:
    """The timm model ready to cut, and how it is cut.

    Args:
        name: the timm architecture (with its pretrained tag, if any).
        kind: the way :func:`plan_cut` found: :data:`SEQUENTIAL` or :data:`INTERMEDIATES`.
        dynamic: the size keywords :func:`plan_cut` found.
        pretrained: load timm's pretrained weights (timm reads its cache or downloads).
        overlay: timm's ``pretrained_cfg_overlay`` (a local weight file, say), or None.

    Returns:
        ``(model, way)``: a ``FeatureListNet`` over the feature modules (:data:`SEQUENTIAL`), or the model
        with its head and unused blocks pruned (:data:`INTERMEDIATES`, also where the sequential cut fails
        and the model has ``forward_intermediates``).

    Raises:
        SpecError: the model can be cut neither way.

    Example:
        >>> model, kind = build_cut("resnet18", "sequential", ())  # doctest: +SKIP
        >>> type(model).__name__, kind  # doctest: +SKIP
        ('FeatureListNet', 'sequential')
    """
    kwargs: dict = {"pretrained": pretrained}
    if overlay:
        kwargs["pretrained_cfg_overlay"] = overlay
    model = _timm_model(name, dynamic, **kwargs)
    if kind == INTERMEDIATES:
        if not hasattr(model, "forward_intermediates"):
            raise SpecError(
                f"timm model {name!r} runs its features in its own forward and has no forward_intermediates; "
                "percept supports timm models with a sequential feature path or forward_intermediates"
            )
        model.prune_intermediate_layers(list(range(len(model.feature_info))), prune_norm=True, prune_head=True)
        return model, INTERMEDIATES
    from timm.models import FeatureListNet

    indices = tuple(range(len(model.feature_info)))
    errors = []
    for flatten in (False, True):
        try:
            features: TimmModel = FeatureListNet(model, out_indices=indices, flatten_sequential=flatten)
        except AssertionError as exc:  # timm asserts the feature modules are reachable in sequence
            errors.append(str(exc))
            continue
        fmt = getattr(model, "output_fmt", "NCHW")
        features.output_fmt = str(getattr(fmt, "value", fmt))  # timm's Format enum or a string
        return features, SEQUENTIAL
    if hasattr(model, "forward_intermediates"):
        return build_cut(name, INTERMEDIATES, dynamic, pretrained, overlay)
    raise SpecError(
        f"timm model {name!r} cannot be cut into sequential stages ({errors[-1]}) and has no forward_intermediates; "
        "percept supports timm models with a sequential feature path or forward_intermediates"
    )


@functools.lru_cache(maxsize=8)
def meta_cut(name: str, kind: str, dynamic: Dynamic, expanded: frozenset[str] = frozenset()) -> TimmModel:
    """The cut model without weights, on the meta device, for shape tracing (cached: it holds no data).

    Args:
        name: the timm architecture, as for :func:`build_cut`.
        kind: the way :func:`plan_cut` found.
        dynamic: the size keywords :func:`plan_cut` found.
        expanded: the feature modules :func:`expand_blocks` marked on the real model (their blocks are stages).

    Returns:
        What :func:`build_cut` returns first, on the meta device.

    Example:
        >>> list(meta_cut("resnet18", "sequential", ()).keys())[-2:]  # doctest: +SKIP
        ['layer3', 'layer4']
    """
    with torch.device("meta"):
        model, _ = build_cut(name, kind, dynamic)
    if kind == SEQUENTIAL:
        model._percept_expanded = set(expanded)
    return model


def block_sequence(path: str, module: TimmModel) -> list[tuple[str, nn.Module]] | None:
    """The blocks a feature module runs one after the other, if it shows them.

    Args:
        path: the module's path in the cut model (``"stages.2"``).
        module: an ``nn.Sequential``, or a timm stage made of ``downsample`` then ``blocks`` (ConvNeXt, Swin,
            MaxViT, DaViT ...).

    Returns:
        ``(path, block)`` per block in running order (``"stages.2.downsample"``, ``"stages.2.blocks.0"``,
        ...), or None for any other module.

    Example:
        >>> from torch import nn
        >>> block_sequence("head", nn.Linear(4, 2)) is None
        True
    """
    if isinstance(module, nn.Sequential):
        return [(f"{path}.{n}", m) for n, m in module.named_children()]
    names = [n for n, _ in module.named_children()]
    if names in (["downsample", "blocks"], ["blocks"]) and isinstance(module.blocks, nn.Sequential):
        head = [(f"{path}.downsample", module.downsample)] if names[0] == "downsample" else []
        return head + [(f"{path}.blocks.{n}", m) for n, m in module.blocks.named_children()]
    return None


def sequential_stages(model: TimmModel) -> list[tuple[str, nn.Module]]:
    """The stages of a model cut :data:`SEQUENTIAL`: its feature modules, the blocks of marked ones split out.

    Args:
        model: a ``FeatureListNet`` from :func:`build_cut` or :func:`meta_cut`, after :func:`expand_blocks`.

    Returns:
        ``(module path, module)`` per stage in running order (``nn.Sequential`` containers flattened).

    Example:
        >>> [path for path, _ in sequential_stages(meta_cut("resnet18", "sequential", ()))][:5]  # doctest: +SKIP
        ['conv1', 'bn1', 'act1', 'maxpool', 'layer1.0']
    """
    stages: list[tuple[str, nn.Module]] = []
    expanded: set[str] = getattr(model, "_percept_expanded", set())
    for path, module in model.items():
        parts = block_sequence(path, module) if path in expanded else None
        for sub_path, sub in parts or [(path, module)]:
            stages.extend(flatten_stages(sub, sub_path))
    return stages


def expand_blocks(model: TimmModel, native: int) -> None:
    """Mark the feature modules whose blocks may be run (and tapped) one by one, on ``model`` itself.

    Those are the modules :func:`block_sequence` splits and whose blocks, run in order on the model's own
    activations (a 64-pixel random image, or one at the ``native`` size for a network that runs at that size
    only), give the module's output exactly. A stage whose ``forward`` does more (TinyViT's and MetaFormer's
    reshape their tokens) stays whole. The marks are read by :func:`sequential_stages`.

    Args:
        model: a ``FeatureListNet`` with real weights (random ones do), from :func:`build_cut`.
        native: the side the network was trained at, tried where 64 pixels do not run.

    Example:
        >>> model, _ = build_cut("convnext_atto", "sequential", ())  # doctest: +SKIP
        >>> expand_blocks(model, 224)  # doctest: +SKIP
        >>> sorted(model._percept_expanded)[:1]  # doctest: +SKIP
        ['stages_0']
    """
    candidates = {path for path, module in model.items() if block_sequence(path, module) is not None}
    model._percept_expanded = set()
    for size in (64, native) if candidates else ():
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        expanded: set[str] = set()
        try:
            with torch.no_grad():
                for path, module in model.items():
                    y = module(x)
                    if path in candidates and _same_in_sequence(block_sequence(path, module) or [], x, y):
                        expanded.add(path)
                    x = y
        except SHAPE_ERRORS:  # the network does not run at this size
            continue
        model._percept_expanded = expanded
        return


def _same_in_sequence(parts: list[tuple[str, nn.Module]], x: torch.Tensor, y: torch.Tensor) -> bool:
    try:
        for _, part in parts:
            x = part(x)
    except SHAPE_ERRORS:
        return False
    return x.shape == y.shape and bool(torch.allclose(x, y, rtol=1e-5, atol=1e-6))


class IntermediatesBackbone(Backbone):
    """A :class:`Backbone` over a timm model that runs through ``forward_intermediates``: one stage per entry
    of the model's ``feature_info`` (a vision transformer's blocks, a Hiera's stages), tokens without prefix
    tokens reshaped to ``(N, C, h, w)`` maps by timm, stopping after the deepest tap asked for."""

    def _network(self, trace: bool = False) -> tuple[Any, torch.device]:
        if trace and self._arch is not None:
            with torch.device("meta"):
                model = self._arch()
            return model.eval(), torch.device("meta")
        return self.model, torch.device("cpu")

    def _iter_run(self, net: Any, x: torch.Tensor, last: int, wanted: set[int]) -> Iterator[tuple[int, torch.Tensor]]:
        # timm computes every intermediate in one call; they are handed on in turn.
        indices = sorted(wanted)
        outputs = net.forward_intermediates(
            x, indices=indices, norm=False, stop_early=True, output_fmt="NCHW", intermediates_only=True
        )
        yield from zip(indices, outputs, strict=True)


def intermediate_stages(model: TimmModel) -> list[tuple[str, nn.Module]]:
    """One ``(module path, module)`` per ``feature_info`` entry of a model run by ``forward_intermediates``.

    Where timm's ``feature_info`` names a module the model lacks (MViTv2 says ``block.1`` for ``stages.1``),
    the entry of the model's one top-level container with as many children (preferring ``stages``,
    ``blocks`` or ``layers``) stands in.

    Args:
        model: a model cut :data:`INTERMEDIATES` (:func:`build_cut`, :func:`meta_cut`).

    Returns:
        ``(module path, module)`` per stage, in ``feature_info`` order.

    Raises:
        SpecError: a ``feature_info`` entry names no module and no container stands in.

    Example:
        >>> dynamic, kind = plan_cut("vit_tiny_patch16_224")  # doctest: +SKIP
        >>> vit = meta_cut("vit_tiny_patch16_224", kind, dynamic)  # doctest: +SKIP
        >>> [path for path, _ in intermediate_stages(vit)][:2]  # doctest: +SKIP
        ['blocks.0', 'blocks.1']
    """
    out = []
    count = len(model.feature_info)
    for k, f in enumerate(model.feature_info):
        try:
            out.append((f["module"], model.get_submodule(f["module"])))
            continue
        except AttributeError:
            pass
        containers = [
            n for n, m in model.named_children() if isinstance(m, nn.Sequential | nn.ModuleList) and len(m) == count
        ]
        if len(containers) > 1:  # Twins: blocks, patch_embeds and pos_block have one entry per stage each
            containers = [n for n in containers if n in ("stages", "blocks", "layers")]
        if len(containers) != 1:
            raise SpecError(
                f"timm model {type(model).__name__}: feature_info names module {f['module']!r}, which it does not "
                "have; percept cannot tell where its stages are"
            )
        out.append((f"{containers[0]}.{k}", model.get_submodule(f"{containers[0]}.{k}")))
    return out
