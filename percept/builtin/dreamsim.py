"""Presets of embedding metrics: ``embedding-ensemble`` (any transformers) and ``dreamsim`` (DreamSim's ensemble).

Both concatenate the embeddings of several :class:`~percept.builtin.embedding.EmbeddingBackbone` networks
(:class:`~percept.builtin.embedding.EmbeddingEnsemble`) and compare them by ``1 - cos``, after centring the
concatenated vector (the ``center`` readout) as DreamSim's ``normalize_embeds`` does.

``dreamsim`` equals the ``dreamsim`` package's (0.2.1) ``PerceptualModel`` forward on the same weights within
1e-5 (tests/test_dreamsim.py builds that package offline on percept's random weights). DreamSim's published
metric also holds LoRA matrices trained on NIGHTS, which the package downloads from GitHub; percept cannot fetch
them, so ``dreamsim`` is DreamSim's base ensemble unless tuned (``percept learn --method lora``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from percept.backbones.base import IMAGENET_MEAN, IMAGENET_STD
from percept.backbones.weights import WeightsArg
from percept.builtin.embedding import EmbeddingEnsemble, embedding_pipeline, member_backbone
from percept.errors import SpecError
from percept.hookspecs import hookimpl
from percept.pipeline import Pipeline

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# DreamSim's ensemble (dreamsim/config.py, "ensemble"): DINO ViT-B/16's class token, OpenAI CLIP ViT-B/16's
# and OpenCLIP ViT-B/16's (LAION-400M) projected embeddings. timm names the same architectures; OpenAI's
# CLIP uses QuickGELU, OpenCLIP's GELU; timm has OpenCLIP's LAION-400M weights of epoch 32 (DreamSim: 31).
DREAMSIM_MEMBERS = (
    "timm.vit_base_patch16_224.dino:cls",
    "timm.vit_base_patch16_clip_quickgelu_224.openai:embedding",
    "timm.vit_base_patch16_clip_224.laion400m_e32:embedding",
)
DREAMSIM_NORMALIZATION = (
    (IMAGENET_MEAN, IMAGENET_STD),
    (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
    (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
)


def _per_member(weights: Any, n: int) -> list[WeightsArg]:
    """One weights argument per member: ``weights`` itself, or its items when it is a list or tuple."""
    if not isinstance(weights, list | tuple):
        return [cast("WeightsArg", weights)] * n
    if len(weights) != n:
        raise SpecError(f"expected one weights argument per member ({n}), got {len(weights)}")
    return list(weights)


def create_embedding_ensemble(
    members: Sequence[str] = (),
    *,
    weights: WeightsArg | Sequence[WeightsArg] = "imagenet",
    input_range: tuple[float, float] = (0.0, 1.0),
    center: bool = True,
    normalize_each: bool = False,
    size: int | None = 224,
) -> Pipeline:
    """Several transformers' concatenated embeddings compared by ``1 - cos`` (the preset ``embedding-ensemble``).

    Args:
        members: ``"<backbone>[:<tap>]"`` strings (``"timm.vit_small_patch16_224.dino:cls"``,
            ``"vit_b_16:embedding"``; tap default ``embedding``), concatenated in this order.
        weights: one weights argument for every member, or one per member.
        input_range: the range of the images passed.
        center: subtract the concatenated vector's mean (and divide by its norm) before the cosine (DreamSim).
        normalize_each: L2-normalise each member's vector before concatenating.
        size: resize inputs to ``size x size`` (bicubic, antialiased) first, as DreamSim (224); ``None``: as given.

    Returns:
        A :class:`~percept.pipeline.Pipeline`: ``(N, 3, H, W)`` pairs in, ``(N,)`` distances in ``[0, 2]`` out.

    Example:
        >>> m = create_embedding_ensemble(["timm.vit_tiny_patch16_224:cls"], weights=None, size=32)  # doctest: +SKIP
        >>> m(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)).shape  # doctest: +SKIP
        torch.Size([2])
    """
    if isinstance(members, str):
        members = [members]
    if not members:
        raise SpecError("embedding-ensemble needs members=[...], e.g. ['timm.vit_small_patch16_224.dino:cls']")
    per_member = _per_member(weights, len(members))
    built = [member_backbone(m, w) for m, w in zip(members, per_member, strict=True)]
    ensemble = EmbeddingEnsemble(built, normalize_each=normalize_each, input_range=input_range, size=size)
    spec = f"embedding-ensemble({','.join(str(m) for m in members)})"
    return embedding_pipeline(ensemble, center=center, spec=spec)


def create_dreamsim(
    *,
    weights: WeightsArg | Sequence[WeightsArg] = "imagenet",
    input_range: tuple[float, float] = (0.0, 1.0),
    size: int | None = 224,
) -> Pipeline:
    """DreamSim's ensemble metric, as the ``dreamsim`` package's ``PerceptualModel`` computes it (preset ``dreamsim``).

    ``embed(x)`` concatenates DINO ViT-B/16's class token after its last block (before the final norm), OpenAI
    CLIP ViT-B/16's and OpenCLIP ViT-B/16's projected image embeddings (each network normalising its input with
    its own mean and std: ImageNet's for DINO, OpenAI CLIP's for both CLIPs), subtracts the concatenated
    vector's mean and divides by its norm (``normalize_embeds=True``); the distance is ``1 - cos``. Images are
    resized to 224 x 224 (bicubic) first, as DreamSim's preprocessing does (on tensors here, antialiased, not on
    PIL images).

    **No LoRA weights:** DreamSim's published metric adds LoRA adapters trained on NIGHTS to these networks;
    they are downloaded from GitHub by the ``dreamsim`` package and are not available here. With
    ``weights="imagenet"`` this is DreamSim's *base* ensemble (its "baseline" before tuning); tune it with
    ``percept learn ... --method lora`` and reload the result as ``learned-embedding``.

    Args:
        weights: ``"imagenet"`` (timm's DINO, OpenAI and LAION-400M weights), ``None`` (random), or one per network.
        input_range: the range of the images passed.
        size: the side images are resized to (DreamSim: 224); ``None``: as given.

    Returns:
        A :class:`~percept.pipeline.Pipeline`; ``pipeline.backbone`` is the :class:`EmbeddingEnsemble`.

    Example:
        >>> m = create_dreamsim(weights=None)  # doctest: +SKIP
        >>> m(torch.rand(1, 3, 224, 224), torch.rand(1, 3, 224, 224))  # doctest: +SKIP
    """
    per_member = _per_member(weights, len(DREAMSIM_MEMBERS))
    built = []
    for text, w, (mean, std) in zip(DREAMSIM_MEMBERS, per_member, DREAMSIM_NORMALIZATION, strict=True):
        backbone, tap = member_backbone(text, w)
        backbone.set_normalization(mean, std)
        built.append((backbone, tap))
    ensemble = EmbeddingEnsemble(built, input_range=input_range, size=size, name="dreamsim")
    return embedding_pipeline(ensemble, center=True, spec="dreamsim")


def _learned_embedding(**kwargs: Any) -> Pipeline:
    from percept.builtin.lora import load_embedding

    return load_embedding(**kwargs)


@hookimpl
def register_presets(register: Callable[..., None]) -> None:
    register(
        "embedding-ensemble",
        create_embedding_ensemble,
        description="concatenated transformer embeddings, 1 - cosine (members=['timm.<model>:cls', ...])",
    )
    register(
        "dreamsim",
        create_dreamsim,
        description="DreamSim's ensemble (DINO, CLIP, OpenCLIP ViT-B/16 embeddings), without its LoRA weights",
    )
    register(
        "learned-embedding",
        _learned_embedding,
        description="an embedding metric tuned with LoRA by `percept learn --method lora` (file=DIR/embedding.json)",
    )


__all__: Sequence[str] = (
    "DREAMSIM_MEMBERS",
    "DREAMSIM_NORMALIZATION",
    "create_dreamsim",
    "create_embedding_ensemble",
)
