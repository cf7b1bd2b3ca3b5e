"""Embedding metrics (DreamSim style): a vision transformer's class token or image embedding, compared by cosine.

A transformer's ordinary taps (:mod:`percept.builtin.timm`, :mod:`percept.builtin.vit`) are maps of its patch
tokens: the class token is dropped there, and the final norm and head are pruned. The backbones
``embed.<backbone>`` read what those leave out, each as an ``(N, D, 1, 1)`` map (one "pixel"), so that every
readout and distance applies unchanged (``cosine`` on one pixel is ``1 - cos`` of the two vectors):

========== ===================================================================================================
tap        what it is
========== ===================================================================================================
cls        the class token after the last block, before the final norm (DreamSim's DINO feature)
pooled     the final norm and the model's own pooling (timm's ``forward_head(pre_logits=True)``: the class
           token, or the patch mean, or attention pooling, as the model pools)
embedding  the model's image embedding (canonical): for a CLIP image tower, ``pooled`` through the image-text
           projection (DreamSim's CLIP feature); for any other model the same as ``pooled``
========== ===================================================================================================

``<backbone>`` is ``timm.<model>[.<tag>]`` for timm models with ``forward_intermediates`` (ViT, DeiT, DINO,
DINOv2, CLIP and SigLIP towers, EVA ...) or torchvision's ``vit_b_16`` family. Specs:
``embed.timm.vit_small_patch16_224.dino:cls/raw/cosine``,
``embed.timm.vit_base_patch16_clip_224.openai:embedding/center/cosine``.

Several backbones: :func:`create_embedding_ensemble` (preset ``embedding-ensemble``) concatenates their
embeddings (optionally each L2-normalised first), and the readout ``center`` subtracts the mean of the whole
vector, as DreamSim's ``normalize_embeds`` does, before ``1 - cos``. The preset ``dreamsim`` is DreamSim's
ensemble (see :func:`create_dreamsim`); ``learned-embedding`` reloads a LoRA-tuned one (:mod:`percept.builtin.lora`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from percept.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone, PretrainedCfg
from percept.backbones.weights import WeightsArg, is_path, search_dirs, warn_random
from percept.builtin.vit import ViTEmbed
from percept.distances.base import FusedDistance
from percept.errors import SpecError, WeightsError, first_line, unknown_name
from percept.hookspecs import hookimpl
from percept.pipeline import Pipeline
from percept.readouts.base import Readout

PREFIX = "embed"
TORCHVISION_VITS = ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14")
TAPS = ("cls", "pooled", "embedding")


class EmbeddingBackbone(Backbone):
    """A vision transformer read at its class token and image embedding: taps ``cls``, ``pooled``, ``embedding``.

    Each tap is an ``(N, D, 1, 1)`` map (see the module docstring for what each holds). Build one with
    :func:`create_embedding_backbone` (``embed.<backbone>`` in a spec).

    Args:
        name: the registered name (``"embed.timm.vit_small_patch16_224.dino"``).
        model: a timm model with ``forward_intermediates`` and ``forward_head``, or a torchvision ViT.
        kind: ``"timm"`` or ``"torchvision"``.
        projection: ``embedding`` is the head's output (a CLIP tower's image-text projection), else ``pooled``.
        **kwargs: :class:`~percept.backbones.base.Backbone`'s options (``mean``, ``std``, ``input_range``,
            ``input_size``, ``resize``, ``interpolation``, ``fixed_size``, ``pretrained_cfg``).

    Example:
        >>> bb = create_embedding_backbone("timm.vit_tiny_patch16_224", weights=None)  # doctest: +SKIP
        >>> {k: tuple(v.shape) for k, v in bb(torch.rand(2, 3, 32, 32), ["cls", "embedding"]).items()}  # doctest: +SKIP
        {'cls': (2, 192, 1, 1), 'embedding': (2, 192, 1, 1)}
    """

    def __init__(self, name: str, model: Any, kind: str, *, projection: bool = False, **kwargs: Any) -> None:
        self._kind = kind
        self._has_cls = kind == "torchvision" or (
            getattr(model, "cls_token", None) is not None and int(getattr(model, "num_prefix_tokens", 0)) > 0
        )
        stages: list[tuple[str, nn.Module]]
        if kind == "torchvision":
            stages = [("encoder.layers", model.encoder.layers), ("encoder.ln", model.encoder.ln)]
        else:
            stages = [("blocks", model.blocks), ("norm", model.norm)] + ([("head", model.head)] if projection else [])
        self._stage_taps = ["cls", "pooled", "embedding"][: len(stages)]
        if not self._has_cls:  # no class token: the blocks give no vector of their own
            stages, self._stage_taps = stages[1:], self._stage_taps[1:]
        taps = [(tap, path, tap == "embedding") for tap, (path, _) in zip(self._stage_taps, stages, strict=True)]
        if self._stage_taps[-1] != "embedding":
            taps.append(("embedding", stages[-1][0], True))
        super().__init__(name, model, stages, taps, **kwargs)

    def _trace_shapes(self) -> list[tuple[int, int]]:
        # Known without running the network: each stage gives one vector (reduction: the whole input size).
        if self._shapes is None:
            model: Any = self.model
            width = int(model.hidden_dim if self._kind == "torchvision" else model.embed_dim)
            pooled = width if self._kind == "torchvision" else int(model.num_features)
            sizes = {
                "cls": width,
                "pooled": pooled,
                "embedding": int(getattr(getattr(model, "head", None), "out_features", pooled)),
            }
            self._shapes = [(sizes[tap], _whole(self.input_size)) for tap in self._stage_taps]
        return self._shapes

    def min_size(self, taps: Sequence[str] | None = None) -> int:
        # Known without a search: one patch (any size where timm pads to whole patches).
        if self.resize:
            return 1
        if self.fixed_size and self.input_size is not None:
            return max(self.input_size)
        model: Any = self.model
        if self._kind == "torchvision":
            return int(model.patch_size)
        embed = model.patch_embed
        return 1 if getattr(embed, "dynamic_img_pad", False) else int(max(embed.patch_size))

    def _iter_run(self, net: Any, x: torch.Tensor, last: int, wanted: set[int]) -> Iterator[tuple[int, torch.Tensor]]:
        vectors = self._vectors(x, set(self._stage_taps[: last + 1]))
        for index, tap in enumerate(self._stage_taps[: last + 1]):
            if index in wanted:
                yield index, vectors[tap][:, :, None, None]

    def _vectors(self, x: torch.Tensor, needed: set[str]) -> dict[str, torch.Tensor]:
        """``{tap: (N, D)}`` for the taps in ``needed`` (and those computed on the way)."""
        model: Any = self.model
        if self._kind == "torchvision":
            tokens = model.encoder.layers(ViTEmbed(model)(x))
            out = {"cls": tokens[:, 0]}
            if "pooled" in needed:
                out["pooled"] = model.encoder.ln(tokens)[:, 0]
            return out
        indices = [len(model.blocks) - 1]
        if needed == {"cls"}:  # the final norm and pooling are not needed
            inter = model.forward_intermediates(
                x, indices=indices, return_prefix_tokens=True, output_fmt="NLC", intermediates_only=True
            )
            return {"cls": inter[0][1][:, 0]}
        final, inter = model.forward_intermediates(
            x, indices=indices, return_prefix_tokens=self._has_cls, output_fmt="NLC"
        )
        out = {"cls": inter[0][1][:, 0]} if self._has_cls else {}
        out["pooled"] = model.forward_head(final, pre_logits=True)
        if "embedding" in needed:
            out["embedding"] = model.forward_head(final)
        return out


def _whole(size: tuple[int, int] | None) -> int:
    """The reduction of a tap holding one vector for the whole image: the input side, as a power of two."""
    return 2 ** round(math.log2(max(size or (224, 224))))


def _timm():
    try:
        import timm
    except ImportError:  # pragma: no cover - timm is a dependency of the test extra
        raise SpecError("embed.timm.* backbones need timm: `pip install timm`") from None
    return timm


def _timm_source(name: str, weights: WeightsArg) -> tuple[str, bool, dict[str, str] | None]:
    """The full timm name to build, whether pretrained, and the local file overlay (if one is used)."""
    timm = _timm()
    arch, _, tag = name.partition(".")
    if not arch or not timm.is_model(arch):
        raise SpecError(
            unknown_name("timm model", arch, timm.list_models("*vit*"), context=f"in '{PREFIX}.timm.{name}'")
        )
    if weights is not None and not is_path(weights) and str(weights).lower() not in ("imagenet", "default"):
        tag = str(weights)
    full = f"{arch}.{tag}" if tag else arch
    if weights is None:
        warn_random(f"{PREFIX}.timm.{name}")
        return full, False, None
    if is_path(weights):
        path = Path(weights).expanduser()  # type: ignore[arg-type]
        if not path.is_file():
            raise WeightsError(f"weight file '{path}' does not exist")
        return full, True, {"file": str(path)}
    for folder in search_dirs():
        for suffix in (".safetensors", ".pth", ".bin"):
            if (folder / f"{full}{suffix}").is_file():
                return full, True, {"file": str(folder / f"{full}{suffix}")}
    return full, True, None


def _timm_model(name: str, weights: WeightsArg) -> tuple[nn.Module, bool, str]:
    """The timm model (any input size where it allows), whether it runs at its input size only, its full name."""
    full, pretrained, overlay = _timm_source(name, weights)
    extra: dict[str, Any] = {"pretrained_cfg_overlay": overlay} if overlay else {}
    for dynamic in ({"dynamic_img_size": True, "dynamic_img_pad": True}, {"dynamic_img_size": True}, {}):
        try:
            model = _timm().create_model(full, pretrained=pretrained, **extra, **dynamic)
        except TypeError:  # the constructor does not take the size keywords
            continue
        except Exception as exc:
            if not pretrained:
                raise
            raise WeightsError(
                f"could not get timm weights for {full!r} ({first_line(exc, with_type=True, limit=200)}); put the file "
                f"in $PERCEPT_WEIGHTS_DIR as '{full}.safetensors' or pass weights='/path/to/file'"
            ) from exc
        for needed in ("forward_intermediates", "forward_head", "blocks", "norm"):
            if not hasattr(model, needed):
                raise SpecError(
                    f"timm model {full!r} has no {needed!r}; {PREFIX}.timm.* reads vision transformers with "
                    "forward_intermediates (ViT, DeiT, DINO, CLIP, EVA ...)"
                )
        return model.eval().requires_grad_(False), not dynamic, full
    raise SpecError(f"timm model {full!r} could not be built")  # pragma: no cover - the last try takes no keywords


def is_projection(full_name: str, model: nn.Module) -> bool:
    """Whether a timm model's head is a CLIP image tower's image-text projection (not a classifier).

    Example:
        >>> is_projection("vit_base_patch16_clip_224.openai_ft_in1k", nn.Identity())
        False
    """
    arch, _, tag = full_name.partition(".")
    return "clip" in arch and "ft_" not in tag and int(getattr(model, "num_classes", 0) or 0) > 0


def create_embedding_backbone(
    name: str,
    weights: WeightsArg = "imagenet",
    *,
    input_range: tuple[float, float] = (0.0, 1.0),
    resize: bool = False,
) -> EmbeddingBackbone:
    """Build ``embed.<name>``: the class token and image embedding of the transformer ``name``.

    Args:
        name: ``timm.<model>[.<tag>]`` (a timm model with ``forward_intermediates``) or a torchvision ViT
            (``vit_b_16``, ``vit_b_32``, ``vit_l_16``, ``vit_l_32``, ``vit_h_14``).
        weights: ``"imagenet"`` (the tag in ``name`` or the model's default), another tag, a file, or ``None``.
        input_range: the range of the images passed, ``(0, 1)`` or ``(-1, 1)``.
        resize: resize inputs to the weights' input size (bicubic, antialiased) first.

    Returns:
        A frozen :class:`EmbeddingBackbone` with taps ``cls`` (where the model has a class token), ``pooled``
        and ``embedding`` (canonical), each ``(N, D, 1, 1)``.

    Raises:
        SpecError: an unknown model, or one that is not a vision transformer percept can read.
        WeightsError: weights not found offline.

    Example:
        >>> bb = create_embedding_backbone("timm.vit_tiny_patch16_224", weights=None)  # doctest: +SKIP
        >>> bb.tap_names  # doctest: +SKIP
        ['cls', 'pooled', 'embedding']
    """
    common: dict[str, Any] = {"input_range": input_range, "resize": resize, "interpolation": "bicubic"}
    if name in TORCHVISION_VITS:
        from percept.backbones.factory import create_backbone

        inner = create_backbone(name, weights=weights)
        size = inner.input_size or (224, 224)
        return EmbeddingBackbone(
            f"{PREFIX}.{name}", inner.model, "torchvision", mean=inner.mean.flatten().tolist(),
            std=inner.std.flatten().tolist(), input_size=size,
            pretrained_cfg=inner.pretrained_cfg, **common,
        )  # fmt: skip
    if not name.startswith("timm."):
        choices = [f"timm.{n}" for n in ("vit_small_patch16_224.dino", "vit_base_patch16_clip_224.openai")]
        raise SpecError(
            unknown_name("transformer", name, [*TORCHVISION_VITS, *choices], context=f"in '{PREFIX}.{name}'")
            + f" ({PREFIX}.timm.<model> takes any timm vision transformer)"
        )
    model, fixed, full = _timm_model(name[len("timm.") :], weights)
    cfg: Any = getattr(model, "pretrained_cfg", None) or {}
    cfg = dict(cfg) if isinstance(cfg, dict) else cfg.to_dict()
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    size = tuple(cfg.get("input_size") or (3, 224, 224))[-2:]
    record = None
    if weights is not None:
        floats = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        record = PretrainedCfg(
            cfg.get("tag") or "default", str(cfg.get("hf_hub_id") or "timm"), mean=floats[0], std=floats[1]
        )
    return EmbeddingBackbone(
        f"{PREFIX}.{name}", model, "timm", projection=is_projection(full, model), mean=mean, std=std,
        input_size=size, fixed_size=fixed, pretrained_cfg=record, **common,
    )  # fmt: skip


class Center(Readout):
    """Each channel vector minus its mean over channels, then divided by its norm (DreamSim's ``normalize_embeds``).

    With ``cosine`` after it, the distance is one minus the Pearson correlation of the two vectors' entries.

    Example:
        >>> Center()(torch.tensor([[1.0, 2.0, 3.0]])[:, :, None, None]).flatten().tolist()
        [-0.7071067690849304, 0.0, 0.7071067690849304]
    """

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        centred = features - features.mean(dim=1, keepdim=True)
        return centred / torch.linalg.vector_norm(centred, dim=1, keepdim=True).clamp_min(1e-12)


class EmbeddingEnsemble(Backbone):
    """Several embedding backbones as one: tap ``embedding``, the concatenation of each member's chosen tap.

    Args:
        members: ``(backbone, tap)`` pairs; each backbone takes images in ``[0, 1]`` and normalises them itself.
        normalize_each: L2-normalise each member's vector before concatenating (so each counts alike);
            DreamSim does not (it centres and normalises the whole vector: the ``center`` readout).
        input_range: the range of the images passed.
        size: resize inputs to ``(size, size)`` (bicubic, antialiased) before the members; ``None``: as given.
        name: the registered name to report.

    The tap is ``(N, sum of D, 1, 1)``.

    Example:
        >>> a = create_embedding_backbone("timm.vit_tiny_patch16_224", weights=None)  # doctest: +SKIP
        >>> ens = EmbeddingEnsemble([(a, "cls"), (a, "embedding")])  # doctest: +SKIP
        >>> ens(torch.rand(1, 3, 32, 32))["embedding"].shape  # doctest: +SKIP
        torch.Size([1, 384, 1, 1])
    """

    def __init__(
        self,
        members: Sequence[tuple[Backbone, str]],
        *,
        normalize_each: bool = False,
        input_range: tuple[float, float] = (0.0, 1.0),
        size: int | None = None,
        name: str = "embedding-ensemble",
    ) -> None:
        if not members:
            raise SpecError("an embedding ensemble needs at least one member")
        for backbone, _ in members:
            if tuple(backbone.input_range) != (0.0, 1.0):
                raise SpecError(f"ensemble member {backbone.name!r} must take images in (0, 1)")
        self._member_taps = [backbone.tap_info(tap).name for backbone, tap in members]
        self.normalize_each = bool(normalize_each)
        model = nn.ModuleList([backbone for backbone, _ in members])
        super().__init__(
            name, model, [("members", model)], [("embedding", "members", True)], mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0), input_range=input_range, input_size=(size, size) if size else None,
            resize=size is not None, interpolation="bicubic",
        )  # fmt: skip

    def _trace_shapes(self) -> list[tuple[int, int]]:
        if self._shapes is None:
            width = sum(backbone.tap_info(tap).channels for backbone, tap in self.members)
            self._shapes = [(width, _whole(self.input_size))]
        return self._shapes

    @property
    def members(self) -> list[tuple[Backbone, str]]:
        """The ``(backbone, tap)`` pairs, in concatenation order."""
        backbones = cast("list[Backbone]", list(self.model.children()))
        return list(zip(backbones, self._member_taps, strict=True))

    def _iter_run(self, net: Any, x: torch.Tensor, last: int, wanted: set[int]) -> Iterator[tuple[int, torch.Tensor]]:
        parts = []
        for backbone, tap in self.members:
            vector = backbone(x, [tap])[tap].flatten(1)
            if self.normalize_each:
                vector = vector / torch.linalg.vector_norm(vector, dim=1, keepdim=True).clamp_min(1e-12)
            parts.append(vector)
        yield 0, torch.cat(parts, dim=1)[:, :, None, None]

    def min_size(self, taps: Sequence[str] | None = None) -> int:
        if self.resize:
            return 1
        return max(backbone.min_size([tap]) for backbone, tap in self.members)

    def extra_repr(self) -> str:
        return f"taps={self._member_taps}, normalize_each={self.normalize_each}"


def member_backbone(text: str, weights: WeightsArg, **options: Any) -> tuple[EmbeddingBackbone, str]:
    """``("timm.vit_small_patch16_224.dino:cls", weights)`` -> the embedding backbone and the tap name.

    The ``embed.`` prefix is optional; the tap defaults to ``embedding``.

    Example:
        >>> bb, tap = member_backbone("timm.vit_tiny_patch16_224:cls", None)  # doctest: +SKIP
        >>> bb.name, tap  # doctest: +SKIP
        ('embed.timm.vit_tiny_patch16_224', 'cls')
    """
    name, _, tap = str(text).partition(":")
    name = name.strip().removeprefix(f"{PREFIX}.")
    backbone = create_embedding_backbone(name, weights, **options)
    return backbone, backbone.tap_info(tap.strip() or "embedding").name


def embedding_pipeline(ensemble: EmbeddingEnsemble, *, center: bool, spec: str) -> Pipeline:
    """The pipeline ``ensemble -> (center) -> 1 - cosine`` with its spec text ``spec``.

    Example:
        >>> metric = embedding_pipeline(EmbeddingEnsemble([(bb, "cls")]), center=True, spec="mine")  # doctest: +SKIP
        >>> metric(x, y).shape  # doctest: +SKIP
        torch.Size([2])
    """
    readout: Readout = Center() if center else _raw()
    return Pipeline(ensemble, ["embedding"], [readout], _cosine(), spec=spec)


def _raw() -> Readout:
    from percept.builtin.readouts import Raw

    return Raw()


def _cosine() -> FusedDistance:
    from percept.builtin.distances import Cosine

    return Cosine()


def _center(channels: int | None = None, **kwargs: Any) -> Center:
    return Center()


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register(
        PREFIX,
        create_embedding_backbone,
        description="a transformer's class token and image embedding as embed.<backbone>, e.g. "
        "embed.timm.vit_small_patch16_224.dino:cls (taps cls, pooled, embedding; (N, D, 1, 1) each)",
        prefix=True,
    )


@hookimpl
def register_readouts(register: Callable[..., None]) -> None:
    register("center", _center, description="channel vector minus its mean, unit-normalised (DreamSim's embeddings)")


__all__: Sequence[str] = (
    "Center",
    "EmbeddingBackbone",
    "EmbeddingEnsemble",
    "create_embedding_backbone",
    "embedding_pipeline",
    "is_projection",
    "member_backbone",
)
