"""Any timm model as a backbone: ``timm.<model>[.<pretrained tag>]`` (``timm.resnet50.a1_in1k``).

The registry holds one *prefix* entry, ``timm``, that serves every name starting with ``timm.``,
so no list of timm's ~1200 architectures is built (nor timm imported) until such a name is asked
for; a few configurations worth listing (small ones of each kind, self-supervised ones) are also
registered by name (:data:`CATALOGUE`).

One rule cuts every family, the one timm's own ``features_only`` follows for the model:

* where timm runs the feature modules in sequence (CNNs, Swin, MaxViT, ConvNeXt, DaViT, PVT ...),
  the stages are those modules (timm's ``FeatureListNet``), and channels-last outputs (Swin) are
  turned into ``(N, C, h, w)`` maps;
* where timm reads features through ``forward_intermediates`` (ViT, DeiT, DINO, CLIP towers, EVA,
  BEiT, CaiT, LeViT, Hiera ...: position and rotary embeddings and prefix tokens live in the model's
  ``forward``), the backbone runs ``forward_intermediates`` with ``stop_early``, one stage per
  entry of the model's ``feature_info`` (a transformer's blocks), prefix tokens dropped and tokens
  reshaped to maps by timm.

Taps: ``stages_0``, ``stages_1``, ... (canonical: timm's ``feature_info``, with its channels and
reductions); ``stages_<k>_block<j>``, the blocks inside stage ``k`` where the stage is an
``nn.Sequential`` or timm's ``downsample`` + ``blocks`` (ConvNeXt ``stages.2.blocks.1`` is
``stages_2_block1``, ResNet ``layer3.2`` is ``stages_3_block2``), offered only where running the
blocks in order was checked, at construction, to give the stage's output exactly (TinyViT and
MetaFormer stages reshape between blocks and stay whole); and the module paths of the cut
(``layer3.2``, ``stages_2.blocks.1``, ``blocks.5``). A hierarchical model on the
``forward_intermediates`` path (Hiera, MViT) has no finer taps: timm exposes none there.

Input: the model's ``pretrained_cfg`` mean and std are applied (CLIP towers: CLIP's), after mapping
the input range. Models are built with ``dynamic_img_size`` (and ``dynamic_img_pad``) where the
architecture takes them, so ViTs, EVAs and Swins run at any size; ``resize=True`` resizes inputs to
the configuration's ``input_size`` with its ``interpolation`` (antialiased, differentiable), and
models that run at that size only are detected and refuse other sizes unless ``resize=True``.

Weights: ``weights="imagenet"`` loads the pretrained tag named (or timm's default tag for the
architecture) through timm, which reads Hugging Face's cache and downloads there; before that,
``$PERCEPT_WEIGHTS_DIR/<model>.<tag>.safetensors`` (or ``.pth``/``.bin``) is used if present.
Every file is read by timm with ``weights_only=True`` or safetensors. ``weights=PATH`` loads a local
timm-format file, ``weights=None`` gives random weights.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from percept.backbones.base import SHAPE_ERRORS, Backbone, PretrainedCfg, flatten_stages
from percept.backbones.weights import WeightsArg, is_path, search_dirs, warn_random
from percept.errors import SpecError, WeightsError, first_line, unknown_name
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
    ("swin_tiny_patch4_window7_224.ms_in1k", "classification", "ImageNet-1k", "Swin-T (Liu 2021), any input size"),
    (
        "eva02_tiny_patch14_224.mim_in22k",
        "self-supervised (masked image modelling of EVA-CLIP features)",
        "ImageNet-22k (no labels)",
        "EVA-02-Ti/14 (Fang 2023), rotary position embedding",
    ),
    ("levit_128s.fb_dist_in1k", "classification (distillation)", "ImageNet-1k", "LeViT-128S (Graham 2021), 224 only"),
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


# Keyword sets tried in order: any input size where the architecture allows it (vision transformers
# pad to whole patches and resample their position embedding; Swin pads to whole windows).
Dynamic = tuple[tuple[str, bool], ...]
_DYNAMIC: tuple[Dynamic, ...] = (
    (("dynamic_img_size", True), ("dynamic_img_pad", True)),
    (("dynamic_img_size", True),),
    (),
)

SEQUENTIAL, INTERMEDIATES = "sequential", "intermediates"


def channels_last_to_map(index: int, out: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Channels-last maps ``(N, h, w, C)`` (timm's Swin family) to ``(N, C, h, w)``.

    Example:
        >>> channels_last_to_map(0, torch.zeros(2, 7, 5, 96), (224, 160)).shape
        torch.Size([2, 96, 7, 5])
    """
    return out.permute(0, 3, 1, 2)


def _timm_model(name: str, dynamic: Dynamic, **kwargs) -> nn.Module:
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
) -> tuple[nn.Module, str]:
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
            features = FeatureListNet(model, out_indices=indices, flatten_sequential=flatten)
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
def _arch(name: str, kind: str, dynamic: Dynamic, expanded: frozenset[str] = frozenset()) -> nn.Module:
    """The cut model without weights, on the meta device, for shape tracing (cached: it holds no data)."""
    with torch.device("meta"):
        model, _ = _build(name, kind, dynamic)
    if kind == SEQUENTIAL:
        model._percept_expanded = set(expanded)
    return model


def _sequence_of(path: str, module: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The blocks a feature module runs one after the other, if it shows them: an ``nn.Sequential``, or a
    timm stage made of ``downsample`` then ``blocks`` (ConvNeXt, Swin, MaxViT, DaViT ...)."""
    if isinstance(module, nn.Sequential):
        return [(f"{path}.{n}", m) for n, m in module.named_children()]
    names = [n for n, _ in module.named_children()]
    if names in (["downsample", "blocks"], ["blocks"]) and isinstance(module.blocks, nn.Sequential):
        head = [(f"{path}.downsample", module.downsample)] if names[0] == "downsample" else []
        return head + [(f"{path}.blocks.{n}", m) for n, m in module.blocks.named_children()]
    return None


def _feature_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    stages: list[tuple[str, nn.Module]] = []
    expanded = getattr(model, "_percept_expanded", set())
    for path, module in model.items():
        parts = _sequence_of(path, module) if path in expanded else None
        for sub_path, sub in parts or [(path, module)]:
            stages.extend(flatten_stages(sub, sub_path))
    return stages


def _expand_blocks(model: nn.Module, native: int) -> None:
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


def _intermediate_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
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


def create_timm_backbone(
    name: str,
    weights: WeightsArg = "imagenet",
    *,
    input_range: tuple[float, float] = (0.0, 1.0),
    resize: bool = False,
) -> Backbone:
    """Build timm's model ``name`` (``"resnet50"``, ``"resnet50.a1_in1k"``) as a :class:`Backbone`.

    Args:
        name: a timm model name, optionally with a pretrained tag after a dot.
        weights: ``"imagenet"`` (the tag in ``name``, else timm's default for the architecture:
            from ``$PERCEPT_WEIGHTS_DIR/<model>.<tag>.safetensors``, Hugging Face's cache, or a
            download), another pretrained tag, a path to a timm-format file, or ``None`` (random).
        input_range: range of the images passed, ``(0, 1)`` or ``(-1, 1)``.
        resize: resize every input to the model's ``pretrained_cfg["input_size"]`` with its
            ``interpolation`` (antialiased, differentiable) before the network, as timm's own
            transforms do. Off by default: networks that run at any size see the images as given.
            Networks that run at their input size only (BEiT, CaiT, LeViT, Hiera, MaxViT ...; found by
            trying other sizes without weights) then refuse other sizes with an
            :class:`~percept.errors.InputError` naming the size and this option, rather than
            silently rescaling what the loss compares.

    Returns:
        A frozen :class:`Backbone` with taps ``stages_0``.. (timm's ``feature_info``, as maps ``(N, C, h, w)``),
        ``stages_<k>_block<j>`` for the blocks inside a stage where timm runs them in sequence, and the
        module paths of the cut (``layer3.2``, ``stages_2.blocks.1``, ``blocks.5``).

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
    dynamic, kind = _plan(full)
    try:
        model, kind = _build(full, kind, dynamic, pretrained, overlay)
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
    input_size = tuple(pcfg.get("input_size") or (3, 224, 224))[-2:]
    interpolation = pcfg.get("interpolation") or "bicubic"
    if kind == SEQUENTIAL:
        _expand_blocks(model, max(input_size))
        stages = _feature_stages(model)
        taps = [(f"stages_{i}", key, True) for i, key in enumerate(model.return_layers)]
        for i, key in enumerate(model.return_layers):
            if key in model._percept_expanded:
                parts = _sequence_of(key, model[key]) or []
                blocks = [p for p, _ in parts if not p.endswith(".downsample")]
                taps += [(f"stages_{i}_block{j}", p, False) for j, p in enumerate(blocks)]
        to_map = channels_last_to_map if model.output_fmt == "NHWC" else None
        cls = Backbone
    else:
        stages = _intermediate_stages(model)
        taps = [(f"stages_{i}", path, True) for i, (path, _) in enumerate(stages)]
        to_map = None
        cls = IntermediatesBackbone
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
    backbone = cls(
        f"timm.{name}",
        model,
        stages,
        taps,
        mean=mean,
        std=std,
        input_range=input_range,
        arch=functools.partial(_arch, full, kind, dynamic, frozenset(getattr(model, "_percept_expanded", ()))),
        stage_fn=_feature_stages if kind == SEQUENTIAL else None,
        pretrained_cfg=info if pretrained else None,
        to_map=to_map,
        input_size=input_size,
        interpolation=interpolation,
    )
    if kind == INTERMEDIATES:
        declared = [int(f["num_chs"]) for f in model.feature_info]
        traced = [t.channels for t in backbone.feature_info]
        if declared != traced:
            raise SpecError(
                f"timm model {full!r}: forward_intermediates gives {traced} channels where feature_info declares "
                f"{declared}; percept cannot tell its stages apart"
            )
    # Fixed size: runs neither one 32-pixel step above nor below the size it was trained at (a network
    # that needs multiples of 32, such as DLA, runs at both).
    native = max(input_size)
    backbone.fixed_size = not any(backbone.runs_at(s) for s in (native + 32, native - 32))
    backbone.resize = bool(resize)
    return backbone


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
    return (
        f"could not get timm weights for {name!r} ({first_line(exc, with_type=True, limit=200)}). Download "
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


__all__: Sequence[str] = ("CATALOGUE", "IntermediatesBackbone", "channels_last_to_map", "create_timm_backbone")
