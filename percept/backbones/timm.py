"""Any timm model as a backbone: ``timm.<model>[.<pretrained tag>]`` (``timm.resnet50.a1_in1k``).

The registry holds one *prefix* entry, ``timm``, that serves every name starting with ``timm.``,
so no list of timm's ~1200 architectures is built (nor timm imported) until such a name is asked
for; a few configurations worth listing (small ones of each kind, self-supervised ones) are also
registered by name (:data:`CATALOGUE`).

Taps come from timm's ``feature_info``: ``stages_0``, ``stages_1``, ... (canonical), the features
timm's ``features_only`` mode returns, with their channels and reductions; each module of the
feature extractor (``layer1``, ``stages_2``, ``blocks_3`` ...) also works as a tap. Vision
transformers (timm's ``VisionTransformer`` and its variants: DeiT, DINO, MAE, CLIP image towers ...)
are cut block by block, built with ``dynamic_img_size=True`` so any size that holds one patch runs;
their taps ``block0``.. are the tokens without prefix (class, register) tokens, reshaped to maps, and
``stages_0``.. the blocks timm's ``forward_intermediates`` reports by default. The model's own
``pretrained_cfg`` mean and std are applied (CLIP towers: CLIP's), after mapping the input range.

Weights: ``weights="imagenet"`` loads the pretrained tag named (or timm's default tag for the
architecture) through timm, which reads Hugging Face's cache and downloads there; before that,
``$PERCEPT_WEIGHTS_DIR/<model>.<tag>.safetensors`` (or ``.pth``/``.bin``) is used if present.
Every file is read by timm with ``weights_only=True`` or safetensors. ``weights=PATH`` loads a local
timm-format file, ``weights=None`` gives random weights.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from percept.backbones.base import Backbone, PretrainedCfg
from percept.backbones.weights import WeightsArg, is_path, search_dirs, warn_random
from percept.errors import SpecError, WeightsError, unknown_name
from percept.hookspecs import hookimpl

PREFIX = "timm"

# Configurations listed by name (any other timm model works as timm.<name> too). Tuples:
# (model.tag, task, training data, description).
CATALOGUE: tuple[tuple[str, str, str, str], ...] = (
    ("resnet10t", "classification", "ImageNet-1k", "ResNet-10-T (timm), a tiny ResNet"),
    ("resnet18", "classification", "ImageNet-1k", "ResNet-18 (timm weights a1_in1k)"),
    ("resnet50.a1_in1k", "classification", "ImageNet-1k", "ResNet-50, ResNet Strikes Back A1 recipe"),
    (
        "resnet50.fb_ssl_yfcc100m_ft_in1k",
        "semi-supervised",
        "YFCC100M, then ImageNet-1k",
        "ResNet-50 SSL (Yalniz 2019)",
    ),
    ("resnet50.fb_swsl_ig1b_ft_in1k", "semi-weakly supervised", "Instagram-1B, then ImageNet-1k", "ResNet-50 SWSL"),
    ("efficientnet_b0", "classification", "ImageNet-1k", "EfficientNet-B0 (timm)"),
    ("mobilenetv3_small_050", "classification", "ImageNet-1k", "MobileNetV3-Small 0.5 (timm)"),
    ("convnext_atto", "classification", "ImageNet-1k", "ConvNeXt-Atto (timm), a tiny ConvNeXt"),
    ("regnetx_002", "classification", "ImageNet-1k", "RegNetX-200MF (timm)"),
    ("vit_tiny_patch16_224", "classification", "ImageNet-21k, then ImageNet-1k", "ViT-Ti/16 (AugReg)"),
    ("vit_small_patch16_224.dino", "self-supervised", "ImageNet-1k (no labels)", "ViT-S/16 DINO (Caron 2021)"),
    ("vit_base_patch16_224.mae", "self-supervised", "ImageNet-1k (no labels)", "ViT-B/16 MAE (He 2022)"),
    ("vit_small_patch14_dinov2.lvd142m", "self-supervised", "LVD-142M (no labels)", "ViT-S/14 DINOv2 (Oquab 2023)"),
    ("vit_base_patch16_clip_224.openai", "image-text contrastive", "WIT-400M image-text pairs", "CLIP ViT-B/16 tower"),
    ("deit_tiny_patch16_224", "classification (distillation recipe)", "ImageNet-1k", "DeiT-Ti/16 (Touvron 2021)"),
)


def _timm():
    try:
        import timm
    except ImportError:  # pragma: no cover - timm is a dependency of the test extra
        raise SpecError("timm backbones need timm: `pip install timm`") from None
    return timm


def _split(name: str) -> tuple[str, str | None]:
    arch, _, tag = name.partition(".")
    return arch, tag or None


def _check_name(name: str) -> None:
    timm = _timm()
    arch, tag = _split(name)
    if not arch or not timm.is_model(arch):
        raise SpecError(
            unknown_name("timm model", arch, timm.list_models(), context=f"in 'timm.{name}'", limit=20)
            + " (timm.list_models() lists them all)"
        )
    if tag is not None:
        tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{arch}.*")]
        if tags and tag not in tags:
            raise SpecError(unknown_name("pretrained tag", tag, tags, context=f"of timm model {arch!r}"))


def _local_file(name: str) -> Path | None:
    for folder in search_dirs():
        for suffix in (".safetensors", ".pth", ".bin"):
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


class TokenEmbed(nn.Module):
    """A timm ``VisionTransformer``'s input stage: patches, prefix tokens, position embedding, pre-norm."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.__dict__["vit"] = vit  # not a submodule: its parameters belong to the model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vit = self.vit
        x = vit._pos_embed(vit.patch_embed(x))
        x = vit.patch_drop(x)
        return vit.norm_pre(x)


def tokens_to_map(index: int, out: torch.Tensor, size: tuple[int, int], *, patch: int, prefix: int) -> torch.Tensor:
    """Tokens ``(N, prefix + h*w, D)`` to a map ``(N, D, h, w)``, ``h, w = ceil(H / patch), ceil(W / patch)``
    (the input is padded to whole patches).

    Example:
        >>> tokens_to_map(0, torch.zeros(2, 1 + 4, 8), (32, 32), patch=16, prefix=1).shape
        torch.Size([2, 8, 2, 2])
    """
    h, w = -(-size[0] // patch), -(-size[1] // patch)
    return out[:, prefix:].transpose(1, 2).reshape(out.shape[0], out.shape[2], h, w)


def _vit_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    stages: list[tuple[str, nn.Module]] = [("embed", TokenEmbed(model))]
    stages += [(f"blocks.{i}", block) for i, block in enumerate(model.blocks)]
    stages.append(("norm", model.norm))
    return stages


def _feature_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return list(model.items())


def _is_vit(model: nn.Module) -> bool:
    from timm.models.vision_transformer import VisionTransformer

    return isinstance(model, VisionTransformer)


def _build(name: str, pretrained: bool, overlay: dict | None, features: bool, vit: bool | None = None) -> nn.Module:
    """The timm model: its ``FeatureListNet`` (CNNs) or the plain model (vision transformers, ``vit``;
    ``None``: find out by building it)."""
    timm = _timm()
    kwargs: dict = {"pretrained": pretrained}
    if overlay:
        kwargs["pretrained_cfg_overlay"] = overlay
    # Any input size for vision transformers: padded to whole patches, the position embedding resampled.
    dynamic = {"dynamic_img_size": True, "dynamic_img_pad": True}
    model = timm.create_model(name, **kwargs, **(dynamic if vit else {}))
    if _is_vit(model):
        if not vit:
            model = timm.create_model(name, **kwargs, **dynamic)
        return model
    if not features:
        return model
    from timm.models import FeatureListNet

    indices = tuple(range(len(model.feature_info)))
    errors = []
    for flatten in (False, True):
        try:
            return FeatureListNet(model, out_indices=indices, flatten_sequential=flatten)
        except AssertionError as exc:  # timm asserts the feature modules are reachable in sequence
            errors.append(str(exc))
    raise SpecError(
        f"timm model {name!r} cannot be cut into sequential stages ({errors[-1]}); percept supports timm CNNs with "
        "a sequential feature path and timm's VisionTransformer family"
    )


def _arch(name: str, vit: bool) -> nn.Module:
    return _build(name, False, None, True, vit)


def create_timm_backbone(
    name: str,
    weights: WeightsArg = "imagenet",
    *,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> Backbone:
    """Build timm's model ``name`` (``"resnet50"``, ``"resnet50.a1_in1k"``) as a :class:`Backbone`.

    Args:
        name: a timm model name, optionally with a pretrained tag after a dot.
        weights: ``"imagenet"`` (the tag in ``name``, else timm's default for the architecture:
            from ``$PERCEPT_WEIGHTS_DIR/<model>.<tag>.safetensors``, Hugging Face's cache, or a
            download), another pretrained tag, a path to a timm-format file, or ``None`` (random).
        input_range: range of the images passed, ``(0, 1)`` or ``(-1, 1)``.

    Returns:
        A frozen :class:`Backbone` with taps ``stages_0``.. (and, for vision transformers, ``block0``..).

    Raises:
        SpecError: unknown model or tag (with the closest names), or a model percept cannot cut into stages.
        WeightsError: pretrained weights not found offline (the message names the file and where to put it).

    Example:
        >>> bb = create_timm_backbone("resnet10t", weights=None)  # doctest: +SKIP
        >>> [(t.name, t.channels, t.reduction) for t in bb.feature_info][:2]  # doctest: +SKIP
        [('stages_0', 24, 2), ('stages_1', 64, 4)]
    """
    _check_name(name)
    arch, tag = _split(name)
    if weights is not None and not is_path(weights) and str(weights).lower() not in ("imagenet", "default"):
        tag = str(weights)
        _check_name(f"{arch}.{tag}")
    full = f"{arch}.{tag}" if tag else arch
    overlay = None
    cfg_source = None
    if weights is None:
        warn_random(f"timm.{name}")
        pretrained = False
    else:
        pretrained = True
        if is_path(weights):
            path = Path(weights).expanduser()
            if not path.is_file():
                raise WeightsError(f"weight file '{path}' does not exist")
            overlay, cfg_source = {"file": str(path)}, str(path)
        else:
            resolved = full if tag else _default_name(arch)
            local = _local_file(resolved)
            if local is not None:
                overlay, cfg_source = {"file": str(local)}, str(local)
            full = resolved
    try:
        model = _build(full, pretrained, overlay, True)
    except SpecError:
        raise
    except Exception as exc:
        if not pretrained:
            raise
        raise WeightsError(_weights_message(full, exc)) from exc
    model.eval().requires_grad_(False)
    pcfg = _pretrained_cfg(model, full)
    mean, std = tuple(pcfg.get("mean", (0.485, 0.456, 0.406))), tuple(pcfg.get("std", (0.229, 0.224, 0.225)))
    if len(mean) == 1:
        mean, std = mean * 3, std * 3
    if _is_vit(model):
        stages = _vit_stages(model)
        depth = len(model.blocks)
        default = {depth - 1}
        if hasattr(model, "feature_info"):
            default = {int(f["module"].split(".")[-1]) for f in model.feature_info if f["module"].startswith("blocks.")}
        taps = [(f"stages_{k}", f"blocks.{i}", True) for k, i in enumerate(sorted(default))]
        taps += [(f"block{i}", f"blocks.{i}", False) for i in range(depth) if i not in default]
        taps += [("embed", "embed", False), ("norm", "norm", False)]
        patch = model.patch_embed.patch_size
        to_map = functools.partial(tokens_to_map, patch=int(patch[0]), prefix=int(model.num_prefix_tokens))
        stage_fn = _vit_stages
    else:
        stages = _feature_stages(model)
        taps = [(f"stages_{i}", key, True) for i, key in enumerate(model.return_layers)]
        to_map = None
        stage_fn = _feature_stages
    info = PretrainedCfg(
        tag=pcfg.get("tag") or "default",
        source=cfg_source or (pcfg.get("hf_hub_id") or pcfg.get("url") or "timm"),
        url=pcfg.get("url") or None,
        filename=Path(cfg_source).name if cfg_source else None,
        license=pcfg.get("license") or "",
        mean=mean,
        std=std,
        extra={k: pcfg[k] for k in ("input_size", "interpolation", "crop_pct", "hf_hub_id") if pcfg.get(k)},
    )
    return Backbone(
        f"timm.{name}",
        model,
        stages,
        taps,
        mean=mean,
        std=std,
        input_range=input_range,
        arch=functools.partial(_arch, full, _is_vit(model)),
        stage_fn=stage_fn,
        pretrained_cfg=info if pretrained else None,
        to_map=to_map,
    )


def _default_name(arch: str) -> str:
    timm = _timm()
    names = timm.list_pretrained(f"{arch}.*")
    return names[0] if names else arch


def _pretrained_cfg(model: nn.Module, name: str) -> dict:
    cfg = getattr(model, "pretrained_cfg", None)
    if cfg is None:
        timm = _timm()
        cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return {}
    return dict(cfg) if isinstance(cfg, dict) else cfg.to_dict()


def _weights_message(name: str, exc: BaseException) -> str:
    timm = _timm()
    cfg = timm.models.get_pretrained_cfg(name)
    where = []
    if cfg is not None and cfg.hf_hub_id:
        filename = cfg.hf_hub_filename or "model.safetensors"
        where.append(f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/{filename}")
    if cfg is not None and cfg.url:
        where.append(cfg.url)
    dirs = " or ".join(f"'{d}'" for d in search_dirs()[:1]) or "$PERCEPT_WEIGHTS_DIR"
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return (
        f"could not get timm weights for {name!r} ({type(exc).__name__}: {first}). Download "
        f"{' or '.join(where) or 'the weights'} and put the file in {dirs} as '{name}.safetensors' (or .pth; set "
        "PERCEPT_WEIGHTS_DIR to choose a folder), or pass weights='/path/to/file'"
    )


def _create(name: str, weights: WeightsArg = "imagenet", **kwargs) -> Backbone:
    return create_timm_backbone(name, weights, **kwargs)


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register(
        PREFIX,
        _create,
        description="any timm model as timm.<model>[.<tag>], e.g. timm.convnext_tiny or timm.resnet50.a1_in1k",
        prefix=True,
    )
    for name, task, data, description in CATALOGUE:
        register(f"{PREFIX}.{name}", functools.partial(_create, name), description=f"{description}; {task}, {data}")


__all__: Sequence[str] = ("CATALOGUE", "create_timm_backbone", "tokens_to_map")
