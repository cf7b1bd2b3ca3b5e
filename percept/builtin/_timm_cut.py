"""How percept cuts a timm model into stages: timm's own ``features_only`` rule, found per architecture.

Where timm runs the feature modules in sequence (``FeatureListNet``), the stages are those modules,
with the blocks inside a stage split out where running them in order was checked to give the
stage's output exactly (:func:`_expand_blocks`); where timm reads features through
``forward_intermediates`` (vision transformers), :class:`IntermediatesBackbone` runs it with
``stop_early``. :mod:`percept.builtin.timm` builds backbones with these.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from percept.backbones.base import SHAPE_ERRORS, Backbone, flatten_stages
from percept.errors import SpecError


def _timm():
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
    return _timm().create_model(name, **kwargs, **dict(dynamic))


@functools.lru_cache(maxsize=64)
def _plan(name: str) -> tuple[Dynamic, str]:
    """The size keywords the architecture accepts (the first set of :data:`_DYNAMIC` its constructor takes) and
    how timm's own ``features_only`` runs it: its modules in sequence (``FeatureListNet`` and the model-specific
    feature classes) or through ``forward_intermediates`` (``FeatureGetterNet``: vision transformers, whose
    position embeddings, rotary embeddings and prefix tokens live in ``forward``). Built on the meta device."""
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


def _build(
    name: str, kind: str, dynamic: Dynamic, pretrained: bool = False, overlay: dict | None = None
) -> tuple[TimmModel, str]:
    """The timm model ready to cut, and how: a ``FeatureListNet`` over its feature modules (``SEQUENTIAL``) or
    the model without its head (``INTERMEDIATES``, also where the sequential cut fails)."""
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
        return _build(name, INTERMEDIATES, dynamic, pretrained, overlay)
    raise SpecError(
        f"timm model {name!r} cannot be cut into sequential stages ({errors[-1]}) and has no forward_intermediates; "
        "percept supports timm models with a sequential feature path or forward_intermediates"
    )


@functools.lru_cache(maxsize=8)
def _arch(name: str, kind: str, dynamic: Dynamic, expanded: frozenset[str] = frozenset()) -> TimmModel:
    """The cut model without weights, on the meta device, for shape tracing (cached: it holds no data)."""
    with torch.device("meta"):
        model, _ = _build(name, kind, dynamic)
    if kind == SEQUENTIAL:
        model._percept_expanded = set(expanded)
    return model


def _sequence_of(path: str, module: TimmModel) -> list[tuple[str, nn.Module]] | None:
    """The blocks a feature module runs one after the other, if it shows them: an ``nn.Sequential``, or a
    timm stage made of ``downsample`` then ``blocks`` (ConvNeXt, Swin, MaxViT, DaViT ...)."""
    if isinstance(module, nn.Sequential):
        return [(f"{path}.{n}", m) for n, m in module.named_children()]
    names = [n for n, _ in module.named_children()]
    if names in (["downsample", "blocks"], ["blocks"]) and isinstance(module.blocks, nn.Sequential):
        head = [(f"{path}.downsample", module.downsample)] if names[0] == "downsample" else []
        return head + [(f"{path}.blocks.{n}", m) for n, m in module.blocks.named_children()]
    return None


def _feature_stages(model: TimmModel) -> list[tuple[str, nn.Module]]:
    stages: list[tuple[str, nn.Module]] = []
    expanded: set[str] = getattr(model, "_percept_expanded", set())
    for path, module in model.items():
        parts = _sequence_of(path, module) if path in expanded else None
        for sub_path, sub in parts or [(path, module)]:
            stages.extend(flatten_stages(sub, sub_path))
    return stages


def _expand_blocks(model: TimmModel, native: int) -> None:
    """Mark the feature modules whose blocks may be run (and tapped) one by one: those :func:`_sequence_of`
    splits and whose blocks, run in order on the model's own activations (a 64-pixel random image, or one
    at the ``native`` size for a network that runs at that size only), give the module's output exactly.
    A stage whose ``forward`` does more (TinyViT's and MetaFormer's reshape their tokens) stays whole."""
    candidates = {path for path, module in model.items() if _sequence_of(path, module) is not None}
    model._percept_expanded = set()
    for size in (64, native) if candidates else ():
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        expanded: set[str] = set()
        try:
            with torch.no_grad():
                for path, module in model.items():
                    y = module(x)
                    if path in candidates and _same_in_sequence(_sequence_of(path, module) or [], x, y):
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


def _intermediate_stages(model: TimmModel) -> list[tuple[str, nn.Module]]:
    """One ``(module path, module)`` per ``feature_info`` entry of a model run by ``forward_intermediates``.

    Where timm's ``feature_info`` names a module the model lacks (MViTv2 says ``block.1`` for ``stages.1``),
    the entry of the model's one top-level container with as many children (preferring ``stages``,
    ``blocks`` or ``layers``) stands in.
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
