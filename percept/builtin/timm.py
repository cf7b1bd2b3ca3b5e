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

import contextlib
import functools
import os
import socket
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from percept.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone, PretrainedCfg
from percept.backbones.weights import WeightsArg, checksum_of, is_path, search_dirs, warn_random
from percept.builtin._maps import channels_last_to_map
from percept.builtin.timm_stages import (
    INTERMEDIATES,
    SEQUENTIAL,
    Dynamic,
    IntermediatesBackbone,
    TimmModel,
    block_sequence,
    build_cut,
    expand_blocks,
    import_timm,
    intermediate_stages,
    meta_cut,
    plan_cut,
    sequential_stages,
)
from percept.errors import SpecError, WeightsError, first_line, unknown_name
from percept.hookspecs import hookimpl

Stages = list[tuple[str, nn.Module]]
Taps = list[tuple[str, str, bool]]

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


def _split(name: str) -> tuple[str, str | None]:
    arch, _, tag = name.partition(".")
    return arch, tag or None


def _check_name(name: str) -> None:
    timm = import_timm()
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
    full, pretrained, overlay, source = _resolve(name, weights)
    model, kind, dynamic = _built(full, pretrained, overlay)
    pcfg = _pretrained_cfg(model, full)
    mean, std = tuple(pcfg.get("mean", IMAGENET_MEAN)), tuple(pcfg.get("std", IMAGENET_STD))
    if len(mean) == 1:
        mean, std = mean * 3, std * 3
    input_size = tuple(pcfg.get("input_size") or (3, 224, 224))[-2:]
    stages, taps, to_map, cls = _cut(model, kind, max(input_size))
    backbone = cls(
        f"timm.{name}",
        model,
        stages,
        taps,
        mean=mean,
        std=std,
        input_range=input_range,
        arch=functools.partial(meta_cut, full, kind, dynamic, frozenset(getattr(model, "_percept_expanded", ()))),
        stage_fn=sequential_stages if kind == SEQUENTIAL else None,
        pretrained_cfg=_loaded_record(pcfg, source, mean, std) if pretrained else None,
        to_map=to_map,
        input_size=input_size,
        interpolation=pcfg.get("interpolation") or "bicubic",
    )
    if kind == INTERMEDIATES:
        _check_channels(full, model, backbone)
    # Fixed size: runs neither one 32-pixel step above nor below the size it was trained at (a network
    # that needs multiples of 32, such as DLA, runs at both).
    native = max(input_size)
    backbone.fixed_size = not any(backbone.runs_at(s) for s in (native + 32, native - 32))
    backbone.resize = bool(resize)
    return backbone


def _built(full: str, pretrained: bool, overlay: dict[str, str] | None) -> tuple[TimmModel, str, Dynamic]:
    """The model cut ready, frozen; how it is cut; its size keywords. A failure to get weights is a ``WeightsError``."""
    dynamic, kind = plan_cut(full)
    try:
        with hub_offline_if_unreachable(pretrained and not overlay):
            model, kind = build_cut(full, kind, dynamic, pretrained, overlay)
    except SpecError:
        raise
    except Exception as exc:
        if not pretrained:
            raise
        raise WeightsError(_weights_message(full, exc)) from exc
    model.eval().requires_grad_(False)
    return model, kind, dynamic


def _loaded_record(
    pcfg: dict[str, Any], source: str | None, mean: tuple[float, ...], std: tuple[float, ...]
) -> PretrainedCfg:
    """The record of the weights a timm backbone was built with (``source``: the local file, if one was read)."""
    return PretrainedCfg(
        tag=pcfg.get("tag") or "default",
        source=source or (pcfg.get("hf_hub_id") or pcfg.get("url") or "timm"),
        url=pcfg.get("url") or None,
        filename=Path(source).name if source else None,
        license=pcfg.get("license") or "",
        mean=mean,
        std=std,
        extra={k: pcfg[k] for k in ("input_size", "interpolation", "crop_pct", "hf_hub_id") if pcfg.get(k)},
    )


def _check_channels(full: str, model: TimmModel, backbone: Backbone) -> None:
    """A ``forward_intermediates`` model's traced channels must be those its ``feature_info`` declares."""
    declared = [int(f["num_chs"]) for f in model.feature_info]
    traced = [t.channels for t in backbone.feature_info]
    if declared != traced:
        raise SpecError(
            f"timm model {full!r}: forward_intermediates gives {traced} channels where feature_info declares "
            f"{declared}; percept cannot tell its stages apart"
        )


def _resolve(name: str, weights: WeightsArg) -> tuple[str, bool, dict[str, str] | None, str | None]:
    """The full timm name to build (``arch.tag``), whether pretrained, the file overlay and the file used."""
    arch, tag = _split(name)
    if weights is not None and not is_path(weights) and str(weights).lower() not in ("imagenet", "default"):
        tag = str(weights)
        _check_name(f"{arch}.{tag}")
    full = f"{arch}.{tag}" if tag else arch
    if weights is None:
        warn_random(f"timm.{name}")
        return full, False, None, None
    if is_path(weights):
        path = Path(weights).expanduser()  # type: ignore[arg-type]
        if not path.is_file():
            raise WeightsError(f"weight file '{path}' does not exist")
        return full, True, {"file": str(path)}, str(path)
    resolved = full if tag else _default_name(arch)
    local = _local_file(resolved)
    if local is not None:
        return resolved, True, {"file": str(local)}, str(local)
    return resolved, True, None, None


def _cut(model: TimmModel, kind: str, native: int) -> tuple[Stages, Taps, Any, type[Backbone]]:
    """Stages, taps, ``to_map`` and the :class:`Backbone` class for a model built by :func:`build_cut`."""
    if kind != SEQUENTIAL:
        stages = intermediate_stages(model)
        return stages, [(f"stages_{i}", path, True) for i, (path, _) in enumerate(stages)], None, IntermediatesBackbone
    expand_blocks(model, native)
    taps: Taps = [(f"stages_{i}", key, True) for i, key in enumerate(model.return_layers)]
    for i, key in enumerate(model.return_layers):
        if key in model._percept_expanded:
            parts = block_sequence(key, model[key]) or []
            blocks = [p for p, _ in parts if not p.endswith(".downsample")]
            taps += [(f"stages_{i}_block{j}", p, False) for j, p in enumerate(blocks)]
    to_map = channels_last_to_map if model.output_fmt == "NHWC" else None
    return sequential_stages(model), taps, to_map, Backbone


def _default_name(arch: str) -> str:
    timm = import_timm()
    names = timm.list_pretrained(f"{arch}.*")
    return names[0] if names else arch


def _pretrained_cfg(model: TimmModel, name: str) -> dict[str, Any]:
    cfg = getattr(model, "pretrained_cfg", None)
    if cfg is None:
        timm = import_timm()
        cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return {}
    return dict(cfg) if isinstance(cfg, dict) else cfg.to_dict()


HUB_TIMEOUT = 3.0
"""Seconds one connection attempt to Hugging Face's hub may take before percept calls it unreachable."""


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """Whether Hugging Face's hub (``$HF_ENDPOINT``) answers a connection within :data:`HUB_TIMEOUT`, asked once.

    Behind a proxy (``HTTPS_PROXY`` / ``ALL_PROXY``) a direct connection says nothing: taken as reachable.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=HUB_TIMEOUT).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def hub_offline_if_unreachable(downloads: bool) -> Iterator[None]:
    """While ``downloads`` may happen and the hub is unreachable, huggingface_hub in offline mode.

    Offline, huggingface_hub retries each request with back-off (about 50 s and 20 log lines per timm
    build); in its offline mode it reads its cache and fails at once if the file is not there.
    """
    constants: Any = None
    if downloads and not hub_reachable():
        with contextlib.suppress(ImportError):
            from huggingface_hub import constants
    if constants is None:
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _weights_message(name: str, exc: BaseException) -> str:
    timm = import_timm()
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


def timm_records(name: str) -> list[PretrainedCfg]:
    """The weight set of timm's ``name`` (``"resnet50.a1_in1k"``; no tag: timm's default), from its pretrained cfg.

    Example:
        >>> [c.tag for c in timm_records("resnet50.a1_in1k")]  # doctest: +SKIP
        ['a1_in1k']
    """
    timm = import_timm()
    arch, tag = _split(name)
    known = {entry[0]: entry for entry in CATALOGUE}
    full = name if tag else _default_name(arch)
    cfg = timm.models.get_pretrained_cfg(full)
    if cfg is None:
        return []
    _, task, data, _ = known.get(name, (name, "classification", "see the model card", ""))
    filename = cfg.hf_hub_filename or ("model.safetensors" if cfg.hf_hub_id else cfg.url and cfg.url.rsplit("/", 1)[-1])
    return [
        PretrainedCfg(
            tag=cfg.tag or "default",
            source=f"huggingface.co/{cfg.hf_hub_id}" if cfg.hf_hub_id else (cfg.url or "timm"),
            url=cfg.url or None,
            filename=filename,
            license=cfg.license or "",
            task=task,
            data=data,
            mean=tuple(cfg.mean),
            std=tuple(cfg.std),
            checksum=checksum_of(cfg.url) if cfg.url and not cfg.hf_hub_id else None,
            extra={"input_size": cfg.input_size, "interpolation": cfg.interpolation, "crop_pct": cfg.crop_pct},
        )
    ]


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register(
        PREFIX,
        create_timm_backbone,
        description="any timm model as timm.<model>[.<tag>], e.g. timm.convnext_tiny or timm.resnet50.a1_in1k",
        prefix=True,
        pretrained=timm_records,
    )
    for name, task, data, description in CATALOGUE:
        register(
            f"{PREFIX}.{name}",
            functools.partial(create_timm_backbone, name),
            description=f"{description}; {task}, {data}",
            pretrained=functools.partial(timm_records, name),
        )


__all__: Sequence[str] = ("CATALOGUE", "IntermediatesBackbone", "channels_last_to_map", "create_timm_backbone")
