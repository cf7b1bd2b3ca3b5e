"""The machinery shared by torchvision's families: how a family is described, cut, built and listed.

Each family file (:mod:`percept.builtin.vgg`, :mod:`percept.builtin.resnet` ...) holds a ``FAMILIES``
table of :class:`Family` records, one per registered name, and registers them with
:func:`register_families`, which states each name's weight sets (:func:`torchvision_records`, read from
torchvision's weight enums when listed, never at ``import percept``). :func:`create_torchvision_backbone`
builds any of them by name; :func:`all_families` gathers the tables of :data:`FAMILY_MODULES`.

Finer tap names (``relu3_1``, ``conv3_1`` before its ReLU, ``pool2``, ``fire4``, ``block7``) and module
paths (``features.15``, ``layer2.1``) work besides the canonical ones; ``percept taps NAME`` lists them.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from percept.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone, PretrainedCfg, flatten_stages
from percept.backbones.weights import (
    ShippedFile,
    WeightsArg,
    checksum_of,
    fetch_url,
    find_shipped,
    is_path,
    load_into,
    load_state_dict_file,
    shipped_path,
    warn_random,
)
from percept.errors import WeightsError, unknown_name

Taps = list[tuple[str, str, bool]]
Stages = list[tuple[str, nn.Module]]
Norm = tuple[tuple[float, ...], tuple[float, ...]]
# A torchvision model as the stage and tap functions see it: its submodules are reached by attribute name
# (model.features, model.encoder.layers), which torch's annotations give as `Tensor | Module`.
Model = Any
# torchvision states no licence per weight file: its code is BSD-3-Clause, and its README adds: "The pre-trained
# models provided in this library may have their own licenses or terms and conditions derived from the dataset
# used for training." Where a weight enum names a licence (the SWAG sets: a link), that one is given instead.
# `percept list` prints the whole note once (percept.cli.listing.TORCHVISION_LICENCE_NOTE).
LICENSE = "torchvision's BSD-3-Clause; dataset terms may apply"
# The family files whose FAMILIES tables all_families() gathers, in this order.
FAMILY_MODULES = (
    "alexnet", "vgg", "dists", "squeezenet", "resnet", "densenet", "mobilenet", "mnasnet", "shufflenet",
    "efficientnet", "convnext", "regnet", "inception", "vit", "swin", "segmentation", "maxvit",
)  # fmt: skip


@dataclass(frozen=True)
class Family:
    """How to cut one torchvision architecture into stages and name its taps.

    Attributes:
        stages: the model's forward pass as ordered ``(module path, module)`` stages.
        taps: ``(tap name, module path, canonical)`` for the model.
        drop: heads never run: replaced by ``nn.Identity`` (and never initialised).
        description: one line for ``percept list backbones``.
        model: torchvision's builder name when it differs from the registered name.
        patch: changes applied to the built model (``vgg16_l2pool``: L2 pooling, an input tap).
        build_kwargs: extra arguments of the builder (never download a backbone's weights).
        to_map: ``to_map(index, output, (H, W))`` for stages whose outputs are not ``(N, C, h, w)``.
        meta_init: random weights may be made on the meta device and initialised by
            :func:`init_like_torchvision` (False where the model holds raw parameters or computed
            buffers, such as ViT's class token or Swin's relative position index).
        meta_trace: the builder runs on the meta device, so shapes are traced there (RegNet's
            builder computes its widths with tensors and cannot).
        norm: ``(mean, std)`` the weights expect, when not ImageNet's.
        task, data: what the default weights were trained for, and on what.
        fixed_size: the network runs at its weights' crop size only (MaxViT's windows and grids are
            fixed at construction): other sizes are refused unless the backbone is built with ``resize``.
        normalizes_itself: the patched network normalises its input in a stage of its own (so the
            image can be tapped as given): the backbone passes the image on unnormalised.
        shipped: weight files of this network that installed packages ship, loaded from there before
            any download (:func:`~percept.backbones.weights.fetch_url`).
    """

    stages: Callable[[nn.Module], Stages]
    taps: Callable[[nn.Module], Taps]
    drop: tuple[str, ...]
    description: str
    model: str | None = None
    patch: Callable[[nn.Module], None] | None = None
    build_kwargs: dict[str, Any] = field(default_factory=dict)
    to_map: Callable[[int, torch.Tensor, tuple[int, int]], torch.Tensor] | None = None
    meta_init: bool = True
    meta_trace: bool = True
    norm: Norm | None = None
    task: str = "classification"
    data: str = "ImageNet-1k"
    fixed_size: bool = False
    normalizes_itself: bool = False
    shipped: tuple[ShippedFile, ...] = ()


@functools.cache
def all_families() -> Mapping[str, Family]:
    """Every torchvision family percept registers, by name, gathered from the family files.

    Example:
        >>> all_families()["vgg16"].drop
        ('avgpool', 'classifier')
    """
    out: dict[str, Family] = {}
    for name in FAMILY_MODULES:
        out.update(importlib.import_module(f"percept.builtin.{name}").FAMILIES)
    return out


def family_of(arch: str) -> Family:
    """The :class:`Family` registered as ``arch`` (``KeyError`` naming the close names if none is).

    Example:
        >>> family_of("resnet50").drop
        ('avgpool', 'fc')
    """
    families = all_families()
    if arch not in families:
        raise KeyError(unknown_name("torchvision backbone", arch, families))
    return families[arch]


def __getattr__(name: str) -> Any:
    if name == "FAMILIES":  # the old module's table, kept for the shim percept.backbones.torchvision
        return all_families()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- stages and taps shared by several families ----------------------------------------------------


def features_stages(model: Model) -> Stages:
    """``model.features`` flattened into stages (AlexNet, VGG, SqueezeNet, DenseNet, MobileNet ...)."""
    return flatten_stages(model.features, "features")


def children_stages(model: Model, names: Sequence[str], prefix: str = "") -> Stages:
    """The named children of ``model``, in order, each flattened into stages."""
    out: Stages = []
    for name in names:
        out.extend(flatten_stages(getattr(model, name), f"{prefix}{name}"))
    return out


def named_children(names: Sequence[str]) -> Callable[[nn.Module], Stages]:
    """A picklable ``stages`` function running the children ``names`` in order."""
    return functools.partial(children_stages, names=tuple(names))


def module_stride(module: nn.Module) -> int:
    """How much a block reduces resolution: the largest stride of a conv or pool inside it."""
    stride = 1
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            stride = max(stride, int(s))
    return stride


def stride_taps(children: Sequence[tuple[str, nn.Module]], fine: str | None = None) -> Taps:
    """``stage1, stage2, ...``: the last child at each resolution (canonical); ``fine`` names each child."""
    reduction, last_at = 1, {}
    for path, module in children:
        reduction *= module_stride(module)
        last_at[reduction] = path
    taps: Taps = [(f"stage{i + 1}", path, True) for i, path in enumerate(last_at.values()) if path]
    if fine:
        taps += [(f"{fine}{i}", path, False) for i, (path, _) in enumerate(children)]
    return taps


def features_stride_taps(model: Model) -> Taps:
    """:func:`stride_taps` over ``model.features``, each block also tapped as ``block<i>``."""
    return stride_taps([(f"features.{n}", m) for n, m in model.features.named_children()], fine="block")


def children_stride_taps(model: Model, names: tuple[str, ...]) -> Taps:
    """:func:`stride_taps` over the named children of ``model``."""
    return stride_taps([(n, getattr(model, n)) for n in names])


def named_stride_taps(names: Sequence[str]) -> Callable[[nn.Module], Taps]:
    """A picklable ``taps`` function: :func:`children_stride_taps` over ``names``."""
    return functools.partial(children_stride_taps, names=tuple(names))


def canonical_first(taps: Taps) -> Taps:
    """The canonical taps first, each group in its order."""
    return [t for t in taps if t[2]] + [t for t in taps if not t[2]]


# -- building --------------------------------------------------------------------------------------


def init_like_torchvision(model: Model, arch: str) -> None:
    """Random initialisation with the schemes torchvision's constructors use (AlexNet: PyTorch's
    defaults; SqueezeNet: Kaiming uniform; the others: Kaiming normal, fan-out), on a model whose
    heads were dropped so the 100M-parameter classifiers are never initialised.

    Example:
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> init_like_torchvision(m, "vgg16"); float(m[0].bias.detach().abs().sum())
        0.0
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            if arch == "alexnet":
                module.reset_parameters()
                continue
            if arch.startswith("squeezenet"):
                nn.init.kaiming_uniform_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d | nn.Linear | nn.LayerNorm | nn.GroupNorm):
            module.reset_parameters()


def weight_tags(arch: str) -> dict[str, Any]:
    """The weight tags torchvision knows for ``arch``: ``imagenet`` (its default; for segmentation
    nets also ``coco``) and each enum name in lower case, mapped to the enum member.

    Example:
        >>> sorted(weight_tags("vgg16"))
        ['imagenet', 'imagenet1k_features', 'imagenet1k_v1']
    """
    import torchvision

    family = all_families().get(arch)
    enum = torchvision.models.get_model_weights(family.model or arch if family else arch)
    tags: dict[str, Any] = {"imagenet": enum.DEFAULT}
    if family is not None and family.task == "segmentation":
        tags["coco"] = enum.DEFAULT
    tags.update({member.name.lower(): member for member in enum})
    return tags


def build_arch(arch: str) -> nn.Module:
    """torchvision's ``arch`` without weights, with the family's patch applied (for shape tracing).

    Example:
        >>> type(build_arch("vgg16_l2pool").features[4]).__name__
        'L2Pool'
    """
    import torchvision

    family = family_of(arch)
    model = torchvision.models.get_model(family.model or arch, weights=None, **family.build_kwargs)
    if family.patch is not None:
        family.patch(model)
    return model


def _data_of(tag: str, family: Family) -> str:
    tag = tag.upper()
    if "SWAG" in tag:
        return "Instagram-3.6B hashtags (weakly supervised SWAG), then ImageNet-1k" + (
            " (trunk frozen, linear head)" if "LINEAR" in tag else ""
        )
    return family.data


def _record(family: Family, member: Any, default: Any) -> PretrainedCfg:
    """The record of one torchvision weight enum member (tags in lower case, as ``weights=`` takes them)."""
    mean, std = family.norm or (IMAGENET_MEAN, IMAGENET_STD)
    filename = member.url.rsplit("/", 1)[-1]
    meta = dict(member.meta)
    extra = {k: meta[k] for k in ("min_size", "num_params", "recipe") if k in meta}
    transforms = getattr(member.transforms, "keywords", {}) or {}
    if "crop_size" in transforms:
        extra["crop_size"] = transforms["crop_size"]
    aliases = ("imagenet", "coco") if family.task == "segmentation" else ("imagenet",)
    shipped = next((f for f in family.shipped if f.filename == filename), None)
    if shipped is not None:
        extra["shipped_by"] = shipped.distribution
        installed = shipped_path(shipped)  # located only: listing reads no file
        if installed is not None:
            extra["installed"] = shipped.distribution
            extra["installed_path"] = str(installed)
    return PretrainedCfg(
        tag=member.name.lower(),
        source="torchvision",
        url=member.url,
        filename=filename,
        license=f"licence: {meta['license']}" if meta.get("license") else LICENSE,
        task=family.task,
        data=_data_of(member.name, family),
        mean=tuple(mean),
        std=tuple(std),
        checksum=checksum_of(filename),
        extra=extra,
        aliases=aliases if member is default else (),
    )


def torchvision_records(arch: str) -> list[PretrainedCfg]:
    """Every weight set torchvision has for ``arch``, in its enum's order; ``aliases`` marks the default.

    Example:
        >>> [(c.tag, c.aliases) for c in torchvision_records("resnet50")]
        [('imagenet1k_v1', ()), ('imagenet1k_v2', ('imagenet',))]
    """
    import torchvision

    family = family_of(arch)
    enum = torchvision.models.get_model_weights(family.model or arch)
    return [_record(family, member, enum.DEFAULT) for member in enum]


def _load_state(arch: str, family: Family, weights: WeightsArg) -> tuple[Mapping[str, Any], str, PretrainedCfg | None]:
    """The state_dict ``weights`` names, where it came from, and its record (none for a state_dict given)."""
    if isinstance(weights, Mapping):
        return weights, "the given state_dict", None
    if is_path(weights):
        cfg = PretrainedCfg(tag="file", source=str(weights), task=family.task, data="unknown")
        return load_state_dict_file(weights), f"file '{weights}'", cfg  # type: ignore[arg-type]
    tags = weight_tags(arch)
    key = str(weights).lower()
    if key not in tags:
        raise WeightsError(
            unknown_name("weight tag", str(weights), tags, context=f"for {arch!r}") + " Or pass a file path."
        )
    member = tags[key]
    cfg = _record(family, member, tags["imagenet"])
    try:
        state = fetch_url(member.url, what=f"{arch} weights", shipped=family.shipped)
    except WeightsError as exc:
        raise WeightsError(f"{exc}{_installed_instead(family, member)}") from exc
    return state, member.url, cfg


def _installed_instead(family: Family, member: Any) -> str:
    """What the error adds when the weights asked for cannot be had but an installed package ships another set
    of the same network (``imagenet`` is torchvision's V2 set; the package holds V1): the tag that loads it."""
    for other in type(member):
        filename = other.url.rsplit("/", 1)[-1]
        shipped = next((f for f in family.shipped if f.filename == filename), None)
        if other is member or shipped is None:
            continue
        try:
            found = find_shipped(filename, family.shipped)
        except WeightsError:
            continue
        if found is not None:
            tag = other.name.lower()
            return (
                f". The installed package {shipped.distribution} ships the {tag} weights ({filename}), other "
                f"weights of the same network: pass weights='{tag}' to use them, without a download"
            )
    return ""


def _model(arch: str, family: Family, weights: WeightsArg) -> tuple[nn.Module, PretrainedCfg | None]:
    """The network with its weights (or random ones), heads dropped, patched, frozen."""
    import torchvision

    cfg: PretrainedCfg | None = None
    device = "meta" if family.meta_init else "cpu"
    if weights is None:
        warn_random(arch)
        with torch.device(device):
            model = torchvision.models.get_model(family.model or arch, weights=None, **family.build_kwargs)
        for attr in family.drop:  # never initialise the (large) heads that are never run
            setattr(model, attr, nn.Identity())
        if family.meta_init:
            model.to_empty(device="cpu")
            init_like_torchvision(model, arch)
    else:
        state, source, cfg = _load_state(arch, family, weights)
        with torch.device(device):
            model = torchvision.models.get_model(family.model or arch, weights=None, **family.build_kwargs)
        # On the meta device the file's tensors are assigned as they are: no random init, no copy.
        load_into(model, state, source, assign=family.meta_init)
    for attr in family.drop:
        setattr(model, attr, nn.Identity())
    if family.patch is not None:
        family.patch(model)
    model.eval().requires_grad_(False)
    return model, cfg


def create_torchvision_backbone(
    arch: str,
    weights: WeightsArg = "imagenet",
    *,
    input_range: tuple[float, float] = (0.0, 1.0),
    resize: bool = False,
) -> Backbone:
    """Build the torchvision network ``arch`` as a :class:`Backbone`.

    Args:
        arch: a registered torchvision name (``"vgg16"``, ``"alexnet"``, ``"convnext_tiny"``, ``"vit_b_16"`` ...).
        weights: ``"imagenet"`` (torchvision's default weights, downloaded once into torch's hub
            cache, or found in ``$PERCEPT_WEIGHTS_DIR``; for segmentation nets it is their default
            COCO weights, also called ``"coco"``), another torchvision tag such as
            ``"imagenet1k_v1"``, a path to a torchvision-format state_dict file, or ``None`` for
            random initialisation (warns: the scores then mean nothing).
        input_range: range of the images that will be passed: ``(0, 1)`` or ``(-1, 1)``.
        resize: resize every input to the crop size of the architecture's default weights (224 for
            most) with their interpolation (antialiased, differentiable) before the network. Off by
            default; networks that run at one size only (``maxvit_t``: 224x224) then refuse other
            sizes with an :class:`~percept.errors.InputError` naming the size and this option.

    Returns:
        A frozen :class:`Backbone`; its taps are ``(N, C, h, w)`` maps whatever the architecture.

    Example:
        >>> bb = create_torchvision_backbone("vgg16", weights=None)  # doctest: +SKIP
        >>> bb.tap_info("conv3")  # doctest: +SKIP
        TapInfo(name='conv3', module='features.15', index=15, channels=256, reduction=4, canonical=True)
    """
    family = family_of(arch)
    model, cfg = _model(arch, family, weights)
    mean, std = family.norm or (IMAGENET_MEAN, IMAGENET_STD)
    if family.normalizes_itself:  # the image is tapped as given; the network normalises it itself
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    size: dict[str, Any] = {}
    if resize or family.fixed_size:
        crop, interpolation = _input_size(arch)
        size = {"input_size": (crop, crop), "interpolation": interpolation, "fixed_size": family.fixed_size}
        size["resize"] = bool(resize)
    return Backbone(
        arch,
        model,
        family.stages(model),
        family.taps(model),
        mean=mean,
        std=std,
        input_range=input_range,
        arch=functools.partial(build_arch, arch) if family.meta_trace else None,  # a partial pickles, a closure not
        stage_fn=family.stages if family.meta_trace else None,
        pretrained_cfg=cfg,
        to_map=family.to_map,
        **size,
    )


def _input_size(arch: str) -> tuple[int, str]:
    """Crop size and interpolation of the default weights' transforms (224 and bilinear if they name none).

    Example:
        >>> _input_size("maxvit_t")
        (224, 'bicubic')
    """
    keywords = getattr(weight_tags(arch)["imagenet"].transforms, "keywords", {}) or {}
    crop = keywords.get("crop_size", 224)
    interpolation = keywords.get("interpolation")
    return int(crop if isinstance(crop, int) else crop[0]), str(getattr(interpolation, "value", "bilinear"))


def register_families(register: Callable[..., None], families: Mapping[str, Family]) -> None:
    """Register each family under its name, with its weight sets (read from torchvision when listed).

    Example:
        >>> from percept.builtin.vgg import FAMILIES
        >>> seen = []
        >>> register_families(lambda name, factory, **kw: seen.append(name), FAMILIES)
        >>> seen[:2]
        ['vgg11', 'vgg13']
    """
    for arch, family in families.items():
        register(
            arch,
            functools.partial(create_torchvision_backbone, arch),
            description=family.description,
            pretrained=functools.partial(torchvision_records, arch),
        )


__all__: Sequence[str] = (
    "Family",
    "all_families",
    "build_arch",
    "create_torchvision_backbone",
    "register_families",
    "torchvision_records",
    "weight_tags",
)
