"""Backbones from torchvision: classic CNNs, modern CNNs, vision transformers and segmentation nets.

Canonical taps (what ``all`` means):

=========================  ==========================================================================
alexnet                    ``conv1``..``conv5``: the ReLU outputs LPIPS uses (``features.1, 4, 7, 9, 11``)
vgg11..vgg19(_bn)          ``conv1``..``conv5``: the last ReLU of each block (VGG16: relu1_2 .. relu5_3)
vgg16_l2pool               VGG16 with DISTS' Hanning-window L2 pooling; also the tap ``pixel`` (the image)
squeezenet1_0/1_1          ``relu1``, the fire modules (1_1: the LPIPS taps)
resnet, wide_resnet,       ``stem`` (after the first ReLU), ``layer1``..``layer4``
resnext, fcn/deeplabv3     (segmentation nets: dilated ``layer3``/``layer4`` at stride 8, and ``head``)
regnet_x/y                 ``stem``, ``block1``..``block4``
swin_t/s/b, swin_v2_*      ``stage1``..``stage4`` (channels-last outputs turned into maps)
maxvit_t                   ``stem``, ``stage1``..``stage4`` (runs at 224x224 only: ``resize=True`` resizes)
lraspp_mobilenet_v3_large  ``stage1``..: the dilated MobileNetV3 trunk (its two-input head is not a tap)
vit_b/l/h                  every quarter of the encoder blocks (tokens without the class token, as maps)
everything else            ``stage1``, ``stage2``, ...: the last block at each resolution
=========================  ==========================================================================

Finer names (``relu3_1``, ``conv3_1`` before its ReLU, ``pool2``, ``fire4``, ``block7``) and module
paths (``features.15``, ``layer2.1``) work too; ``percept taps NAME`` lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from percept.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone, PretrainedCfg, flatten_stages
from percept.backbones.weights import WeightsArg, fetch_url, is_path, load_into, load_state_dict_file, warn_random
from percept.errors import WeightsError
from percept.hookspecs import hookimpl

Taps = list[tuple[str, str, bool]]
Stages = list[tuple[str, nn.Module]]


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
    """

    stages: Callable[[nn.Module], Stages]
    taps: Callable[[nn.Module], Taps]
    drop: tuple[str, ...]
    description: str
    model: str | None = None
    patch: Callable[[nn.Module], None] | None = None
    build_kwargs: dict = field(default_factory=dict)
    to_map: Callable[[int, torch.Tensor, tuple[int, int]], torch.Tensor] | None = None
    meta_init: bool = True
    meta_trace: bool = True
    norm: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    task: str = "classification"
    data: str = "ImageNet-1k"
    fixed_size: bool = False


# -- stages ----------------------------------------------------------------------------------------


def _features(model: nn.Module) -> Stages:
    return flatten_stages(model.features, "features")


def _children(model: nn.Module, names: Sequence[str], prefix: str = "") -> Stages:
    out: Stages = []
    for name in names:
        out.extend(flatten_stages(getattr(model, name), f"{prefix}{name}"))
    return out


def _resnet_stages(model: nn.Module) -> Stages:
    out: Stages = [(n, getattr(model, n)) for n in ("conv1", "bn1", "relu", "maxpool")]
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        out.extend(flatten_stages(getattr(model, layer), layer))
    return out


def _seg_stages(model: nn.Module) -> Stages:
    out = [(f"backbone.{n}", m) for n, m in model.backbone.named_children()]
    out = [s for path, m in out for s in flatten_stages(m, path)]
    if isinstance(model.classifier, nn.Sequential):  # FCN and DeepLab heads run on the last features
        out.extend(flatten_stages(model.classifier, "classifier"))
    return out


def _regnet_stages(model: nn.Module) -> Stages:
    return _children(model, ("stem", "trunk_output"))


def _maxvit_stages(model: nn.Module) -> Stages:
    # Each MaxViT block runs its layers (MBConv, block attention, grid attention) from a ModuleList.
    out = flatten_stages(model.stem, "stem")
    for i, block in enumerate(model.blocks):
        out += [(f"blocks.{i}.layers.{j}", layer) for j, layer in enumerate(block.layers)]
    return out


def _maxvit_taps(model: nn.Module) -> Taps:
    taps: Taps = [("stem", "stem", True)] + [(f"stage{i + 1}", f"blocks.{i}", True) for i in range(len(model.blocks))]
    layers = [f"blocks.{i}.layers.{j}" for i, block in enumerate(model.blocks) for j in range(len(block.layers))]
    return taps + [(f"block{n}", path, False) for n, path in enumerate(layers)]


def _named_children(names: Sequence[str]) -> Callable[[nn.Module], Stages]:
    return functools.partial(_children, names=tuple(names))


def _swin_stages(model: nn.Module) -> Stages:
    # The patch embedding (conv, permute, norm) stays one stage, so every stage returns (N, H, W, C).
    out: Stages = [("features.0", model.features[0])]
    for i in range(1, len(model.features)):
        out.extend(flatten_stages(model.features[i], f"features.{i}"))
    out.append(("norm", model.norm))
    return out


class ViTEmbed(nn.Module):
    """torchvision ViT's input stage: patches, class token, position embedding, dropout.

    The position embedding is resampled (bicubic, as timm does) when the patch grid is not the one
    the model was trained at, so any size that holds one patch runs; at the training size the result
    is torchvision's to the bit.

    Example:
        >>> import torchvision
        >>> vit = torchvision.models.vit_b_32(weights=None)
        >>> ViTEmbed(vit)(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 5, 768])
    """

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.__dict__["vit"] = vit  # not a submodule: its parameters belong to the model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vit = self.vit
        x = vit.conv_proj(x)
        n, d, h, w = x.shape
        x = x.reshape(n, d, h * w).permute(0, 2, 1)
        x = torch.cat([vit.class_token.expand(n, -1, -1), x], dim=1)
        pos = vit.encoder.pos_embedding
        if pos.shape[1] != h * w + 1:
            side = round((pos.shape[1] - 1) ** 0.5)
            grid = pos[:, 1:].reshape(1, side, side, d).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
            pos = torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
        return vit.encoder.dropout(x + pos)


def _vit_stages(model: nn.Module) -> Stages:
    out: Stages = [("embed", ViTEmbed(model))]
    out += [(f"encoder.layers.{n}", m) for n, m in model.encoder.layers.named_children()]
    out.append(("encoder.ln", model.encoder.ln))
    return out


def tokens_to_map(index: int, out: torch.Tensor, size: tuple[int, int], *, patch: int, prefix: int) -> torch.Tensor:
    """ViT tokens ``(N, prefix + h*w, D)`` to a map ``(N, D, h, w)``, ``h, w = H // patch, W // patch``."""
    h, w = size[0] // patch, size[1] // patch
    return out[:, prefix:].transpose(1, 2).reshape(out.shape[0], out.shape[2], h, w)


def channels_last_to_map(index: int, out: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Channels-last maps ``(N, h, w, C)`` (Swin) to ``(N, C, h, w)``."""
    return out.permute(0, 3, 1, 2)


# -- patches ---------------------------------------------------------------------------------------


class _L2PoolFunction(torch.autograd.Function):
    """``sqrt(depthwise_conv(x^2, g, stride) + 1e-12)`` keeping only ``x`` and the output for backward.

    Autograd of the three steps keeps ``x^2`` as well (as large as ``x``) and takes three passes over
    ``x`` for ``d(x^2)/dx``; here ``dx = x * conv_transpose(dout / out)`` (the 2 of ``d(x^2)`` and the
    1/2 of ``d sqrt`` cancel): one pass at the input's size. The forward's arithmetic is unchanged.
    """

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
        out = F.conv2d(x * x, weight, stride=stride, padding=padding, groups=x.shape[1])
        return out.add_(1e-12).sqrt_()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, stride, padding = inputs
        ctx.save_for_backward(x, weight, output)
        ctx.stride, ctx.padding = stride, padding

    @staticmethod
    def vmap(info, in_dims, x, weight, stride, padding):
        # torch.func.vmap: the mapped dimension folds into the batch, one call.
        x = x.expand(info.batch_size, *x.shape) if in_dims[0] is None else x.movedim(in_dims[0], 0)
        out = _L2PoolFunction.apply(x.flatten(0, 1), weight, stride, padding)
        return out.unflatten(0, (info.batch_size, -1)), 0

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, out = ctx.saved_tensors
        # conv_transpose's output_padding recovers the rows and columns the strided conv dropped.
        extra = [
            size + 2 * ctx.padding - ((o - 1) * ctx.stride + weight.shape[-1])
            for size, o in zip(x.shape[2:], out.shape[2:], strict=True)
        ]
        back = F.conv_transpose2d(
            grad / out, weight, stride=ctx.stride, padding=ctx.padding, output_padding=extra, groups=x.shape[1]
        )
        # Under torch.func the gradient is a wrapped tensor that must not be written in place.
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor(back)
        return (back * x if wrapped else back.mul_(x)), None, None, None


class L2Pool(nn.Module):
    """Hanning-window L2 pooling (DISTS, Ding et al. 2020): ``sqrt(conv(x^2, g) + 1e-12)``, stride 2.

    ``g`` is the outer product of ``hanning(filter_size)[1:-1]`` with itself, normalised to sum 1;
    the arithmetic is that of ``DISTS_pytorch`` and torchmetrics, so results agree to the bit. The
    backward is written by hand (:class:`_L2PoolFunction`): it keeps no squared copy of the input.

    Example:
        >>> L2Pool()(torch.ones(1, 2, 8, 8))[0, 0, 1, 1].item()  # a flat input passes unchanged
        1.0
    """

    def __init__(self, filter_size: int = 5, stride: int = 2) -> None:
        super().__init__()
        import numpy as np

        a = np.hanning(filter_size)[1:-1]
        g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
        self.register_buffer("filter", (g / torch.sum(g))[None, None], persistent=False)
        self.padding = (filter_size - 2) // 2
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.filter.to(x.dtype).expand(x.shape[1], 1, -1, -1)
        return _L2PoolFunction.apply(x, weight, self.stride, self.padding)


class Normalize(nn.Module):
    """``(x - mean) / std`` as a stage, for backbones that tap the image before normalising it."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def _l2pool_patch(model: nn.Module) -> None:
    """DISTS' VGG16: every max-pool replaced by L2 pooling; the image tapped before normalisation."""
    for i, module in enumerate(model.features):
        if isinstance(module, nn.MaxPool2d):
            model.features[i] = L2Pool()
    model.pixel = nn.Identity()
    model.input_norm = Normalize()


def _l2pool_stages(model: nn.Module) -> Stages:
    return [("pixel", model.pixel), ("input_norm", model.input_norm), *_features(model)]


# -- taps ------------------------------------------------------------------------------------------


def _alexnet_taps(model: nn.Module) -> Taps:
    taps: Taps = []
    conv = 0
    for name, module in _features(model):
        if isinstance(module, nn.Conv2d):
            conv += 1
        elif isinstance(module, nn.ReLU):
            taps += [(f"conv{conv}", name, True), (f"relu{conv}", name, False)]
        elif isinstance(module, nn.MaxPool2d):
            taps.append((f"pool{conv}", name, False))
    return _canonical_first(taps)


def _vgg_taps(model: nn.Module) -> Taps:
    taps: Taps = []
    block, conv, last_relu = 1, 0, None
    for name, module in _features(model):
        if isinstance(module, nn.Conv2d):
            conv += 1
            taps.append((f"conv{block}_{conv}", name, False))
        elif isinstance(module, nn.BatchNorm2d):
            taps.append((f"bn{block}_{conv}", name, False))
        elif isinstance(module, nn.ReLU):
            taps.append((f"relu{block}_{conv}", name, False))
            last_relu = name
        elif isinstance(module, nn.MaxPool2d | L2Pool):
            taps.append((f"conv{block}", last_relu, True))
            taps.append((f"pool{block}", name, False))
            block, conv = block + 1, 0
    return _canonical_first(taps)


def _l2pool_taps(model: nn.Module) -> Taps:
    return [*_vgg_taps(model), ("pixel", "pixel", False)]


def _squeezenet_taps(model: nn.Module) -> Taps:
    names = {"features.0": "conv1", "features.1": "relu1"}
    fire = 2
    for path, module in list(model.features.named_children())[2:]:
        if isinstance(module, nn.MaxPool2d):
            names[f"features.{path}"] = f"pool{fire - 1}"
        else:
            names[f"features.{path}"] = f"fire{fire}"
            fire += 1
    canonical = {"relu1", "fire3", "fire5", "fire6", "fire7", "fire8", "fire9"}
    return _canonical_first([(n, p, n in canonical) for p, n in names.items()])


def _resnet_taps(model: nn.Module) -> Taps:
    return [
        ("stem", "relu", True),
        ("layer1", "layer1", True),
        ("layer2", "layer2", True),
        ("layer3", "layer3", True),
        ("layer4", "layer4", True),
        ("pool", "maxpool", False),
    ]


def _seg_taps(model: nn.Module) -> Taps:
    names = [n for n, _ in model.backbone.named_children()]
    if "layer4" in names:  # a ResNet trunk
        taps: Taps = [("stem", "backbone.relu", True)] + [
            (f"layer{i}", f"backbone.layer{i}", True) for i in range(1, 5)
        ]
    else:  # a MobileNetV3 trunk (dilated)
        taps = _stride_taps([(f"backbone.{n}", m) for n, m in model.backbone.named_children()])
    if isinstance(model.classifier, nn.Sequential):
        relus = [i for i, m in enumerate(model.classifier) if isinstance(m, nn.ReLU)]
        taps.append(("head", f"classifier.{relus[-1]}", True))
    return taps


def _regnet_taps(model: nn.Module) -> Taps:
    return [("stem", "stem", True)] + [(f"block{i}", f"trunk_output.block{i}", True) for i in range(1, 5)]


def _swin_taps(model: nn.Module) -> Taps:
    return [(f"stage{i // 2 + 1}", f"features.{i}", True) for i in (1, 3, 5, 7)] + [
        ("embed", "features.0", False),
        ("norm", "norm", False),
    ]


def _vit_taps(model: nn.Module) -> Taps:
    depth = len(model.encoder.layers)
    quarters = {depth * q // 4 - 1 for q in (1, 2, 3, 4)}
    taps: Taps = [(f"block{i}", f"encoder.layers.encoder_layer_{i}", i in quarters) for i in range(depth)]
    return _canonical_first([("embed", "embed", False), *taps, ("norm", "encoder.ln", False)])


def _mobilenet_v2_taps(model: nn.Module) -> Taps:
    stage_ends = {1: 1, 3: 2, 6: 3, 13: 4, 17: 5}
    taps: Taps = [(f"stage{s}", f"features.{i}", True) for i, s in stage_ends.items()]
    taps.append(("stem", "features.0", False))
    taps += [(f"block{i}", f"features.{i}", False) for i in range(1, 18)]
    taps.append(("head", "features.18", False))
    return taps


def _module_stride(module: nn.Module) -> int:
    """How much a block reduces resolution: the largest stride of a conv or pool inside it."""
    stride = 1
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            stride = max(stride, int(s))
    return stride


def _stride_taps(children: Sequence[tuple[str, nn.Module]], fine: str | None = None) -> Taps:
    """``stage1, stage2, ...``: the last child at each resolution (canonical); ``fine`` names each child."""
    reduction, last_at = 1, {}
    for path, module in children:
        reduction *= _module_stride(module)
        last_at[reduction] = path
    taps: Taps = [(f"stage{i + 1}", path, True) for i, path in enumerate(last_at.values()) if path]
    if fine:
        taps += [(f"{fine}{i}", path, False) for i, (path, _) in enumerate(children)]
    return taps


def _features_stride_taps(model: nn.Module) -> Taps:
    return _stride_taps([(f"features.{n}", m) for n, m in model.features.named_children()], fine="block")


def _named_stride_taps(names: Sequence[str]) -> Callable[[nn.Module], Taps]:
    return functools.partial(_children_stride_taps, names=tuple(names))


def _children_stride_taps(model: nn.Module, names: tuple[str, ...]) -> Taps:
    return _stride_taps([(n, getattr(model, n)) for n in names])


def _mnasnet_taps(model: nn.Module) -> Taps:
    return _stride_taps([(f"layers.{n}", m) for n, m in model.layers.named_children()], fine="block")


def _mnasnet_stages(model: nn.Module) -> Stages:
    return flatten_stages(model.layers, "layers")


def _canonical_first(taps: Taps) -> Taps:
    return [t for t in taps if t[2]] + [t for t in taps if not t[2]]


# -- the families ----------------------------------------------------------------------------------

_GOOGLENET = (
    "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3", "inception4a",
    "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4", "inception5a", "inception5b",
)  # fmt: skip
_INCEPTION = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a",
    "Mixed_7b", "Mixed_7c",
)  # fmt: skip
_SHUFFLENET = ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5")
_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # GoogLeNet/Inception weights: transform_input, i.e. (x - 0.5) / 0.5

_VGG = Family(_features, _vgg_taps, ("avgpool", "classifier"), "VGG (Simonyan & Zisserman 2014), ImageNet-1k")
_RESNET = Family(_resnet_stages, _resnet_taps, ("avgpool", "fc"), "ResNet (He 2015), ImageNet-1k")


FAMILIES: dict[str, Family] = {
    "alexnet": Family(_features, _alexnet_taps, ("avgpool", "classifier"), "AlexNet (Krizhevsky 2012), ImageNet-1k"),
    **{name: _VGG for name in ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")},
    "vgg16_l2pool": Family(
        _l2pool_stages,
        _l2pool_taps,
        ("avgpool", "classifier"),
        "VGG16 with Hanning-window L2 pooling and an image tap (DISTS, Ding 2020), ImageNet-1k",
        model="vgg16",
        patch=_l2pool_patch,
    ),
    **{
        name: Family(
            _features, _squeezenet_taps, ("classifier",), f"SqueezeNet {name[-3:]} (Iandola 2016), ImageNet-1k"
        )
        for name in ("squeezenet1_0", "squeezenet1_1")
    },
    **{name: _RESNET for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
    **{
        name: Family(_resnet_stages, _resnet_taps, ("avgpool", "fc"), desc)
        for name, desc in (
            ("wide_resnet50_2", "Wide ResNet-50-2 (Zagoruyko 2016), ImageNet-1k"),
            ("wide_resnet101_2", "Wide ResNet-101-2 (Zagoruyko 2016), ImageNet-1k"),
            ("resnext50_32x4d", "ResNeXt-50 32x4d (Xie 2017), ImageNet-1k"),
            ("resnext101_32x8d", "ResNeXt-101 32x8d (Xie 2017), ImageNet-1k"),
            ("resnext101_64x4d", "ResNeXt-101 64x4d (Xie 2017), ImageNet-1k"),
        )
    },
    **{
        name: Family(
            _features, _features_stride_taps, ("classifier",), f"DenseNet-{name[8:]} (Huang 2017), ImageNet-1k"
        )
        for name in ("densenet121", "densenet161", "densenet169", "densenet201")
    },
    "mobilenet_v2": Family(_features, _mobilenet_v2_taps, ("classifier",), "MobileNetV2 (Sandler 2018), ImageNet-1k"),
    **{
        name: Family(
            _features,
            _features_stride_taps,
            ("avgpool", "classifier"),
            f"MobileNetV3-{size} (Howard 2019), ImageNet-1k",
        )
        for name, size in (("mobilenet_v3_small", "Small"), ("mobilenet_v3_large", "Large"))
    },
    **{
        f"mnasnet{w}": Family(_mnasnet_stages, _mnasnet_taps, ("classifier",), f"MnasNet {w} (Tan 2019), ImageNet-1k")
        for w in ("0_5", "0_75", "1_0", "1_3")
    },
    **{
        f"shufflenet_v2_{w}": Family(
            _named_children(_SHUFFLENET), _named_stride_taps(_SHUFFLENET), ("fc",), f"ShuffleNetV2 {w} (Ma 2018)"
        )
        for w in ("x0_5", "x1_0", "x1_5", "x2_0")
    },
    **{
        f"efficientnet_{v}": Family(
            _features, _features_stride_taps, ("avgpool", "classifier"), f"EfficientNet-{v.upper()} (Tan 2019/2021)"
        )
        for v in ("b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "v2_s", "v2_m", "v2_l")
    },
    **{
        f"convnext_{s}": Family(
            _features,
            _features_stride_taps,
            ("avgpool", "classifier"),
            f"ConvNeXt-{s.capitalize()} (Liu 2022), ImageNet-1k",
            meta_init=False,
        )
        for s in ("tiny", "small", "base", "large")
    },
    **{
        f"regnet_{k}_{s}": Family(
            _regnet_stages,
            _regnet_taps,
            ("avgpool", "fc"),
            f"RegNet{k.upper()}-{s} (Radosavovic 2020), ImageNet-1k",
            meta_init=False,
            meta_trace=False,
        )
        for k, sizes in (
            ("x", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")),
            ("y", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")),
        )
        for s in sizes
    },
    "googlenet": Family(
        _named_children(_GOOGLENET),
        _named_stride_taps(_GOOGLENET),
        ("aux1", "aux2", "avgpool", "dropout", "fc"),
        "GoogLeNet / Inception v1 (Szegedy 2015), ImageNet-1k",
        build_kwargs={"init_weights": False},
        norm=_HALF,
    ),
    "inception_v3": Family(
        _named_children(_INCEPTION),
        _named_stride_taps(_INCEPTION),
        ("AuxLogits", "avgpool", "dropout", "fc"),
        "Inception v3 (Szegedy 2016), ImageNet-1k",
        build_kwargs={"init_weights": False},
        norm=_HALF,
    ),
    **{
        f"vit_{s}_{p}": Family(
            _vit_stages,
            _vit_taps,
            ("heads",),
            f"ViT-{s.upper()}/{p} (Dosovitskiy 2021), ImageNet-1k",
            to_map=functools.partial(tokens_to_map, patch=int(p), prefix=1),
            meta_init=False,
        )
        for s, p in (("b", "16"), ("b", "32"), ("l", "16"), ("l", "32"), ("h", "14"))
    },
    **{
        name: Family(
            _swin_stages,
            _swin_taps,
            ("avgpool", "head"),
            f"Swin Transformer{' V2' if 'v2' in name else ''}-{name[-1].upper()} (Liu 2021/2022), ImageNet-1k",
            to_map=channels_last_to_map,
            meta_init=False,
        )
        for name in ("swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b")
    },
    **{
        name: Family(
            _seg_stages,
            _seg_taps,
            ("aux_classifier",),
            f"{title} segmentation (torchvision), COCO subset with the 20 VOC classes",
            build_kwargs={"weights_backbone": None, "aux_loss": True},
            task="segmentation",
            data="COCO-train2017 (VOC classes)",
        )
        for name, title in (
            ("fcn_resnet50", "FCN ResNet-50"),
            ("fcn_resnet101", "FCN ResNet-101"),
            ("deeplabv3_resnet50", "DeepLabV3 ResNet-50"),
            ("deeplabv3_resnet101", "DeepLabV3 ResNet-101"),
            ("deeplabv3_mobilenet_v3_large", "DeepLabV3 MobileNetV3-Large"),
        )
    },
    "lraspp_mobilenet_v3_large": Family(
        _seg_stages,
        _seg_taps,
        ("classifier",),  # LR-ASPP's head takes the trunk's low and high features at once: not a stage
        "LR-ASPP MobileNetV3-Large segmentation (torchvision), COCO subset with the 20 VOC classes",
        build_kwargs={"weights_backbone": None},
        task="segmentation",
        data="COCO-train2017 (VOC classes)",
    ),
    "maxvit_t": Family(
        _maxvit_stages,
        _maxvit_taps,
        ("classifier",),
        "MaxViT-T (Tu 2022), ImageNet-1k; runs at 224x224 only",
        meta_init=False,
        fixed_size=True,
    ),
}


def init_like_torchvision(model: nn.Module, arch: str) -> None:
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


def weight_tags(arch: str) -> dict[str, object]:
    """The weight tags torchvision knows for ``arch``: ``imagenet`` (its default; for segmentation
    nets also ``coco``) and each enum name in lower case.

    Example:
        >>> sorted(weight_tags("vgg16"))
        ['imagenet', 'imagenet1k_features', 'imagenet1k_v1']
    """
    import torchvision

    family = FAMILIES.get(arch)
    enum = torchvision.models.get_model_weights(family.model or arch if family else arch)
    tags: dict[str, object] = {"imagenet": enum.DEFAULT}
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

    family = FAMILIES[arch]
    model = torchvision.models.get_model(family.model or arch, weights=None, **family.build_kwargs)
    if family.patch is not None:
        family.patch(model)
    return model


def _cfg(arch: str, family: Family, member) -> PretrainedCfg:
    from percept.backbones.catalogue import checksum_of

    mean, std = family.norm or (IMAGENET_MEAN, IMAGENET_STD)
    meta = dict(member.meta)
    return PretrainedCfg(
        tag=member.name,
        source=member.url,
        url=member.url,
        filename=member.url.rsplit("/", 1)[-1],
        license="BSD-3-Clause (torchvision code); weights under the terms of their training data",
        task=family.task,
        data=_data_of(member.name, family),
        mean=mean,
        std=std,
        extra={k: meta[k] for k in ("min_size", "num_params", "recipe") if k in meta},
        checksum=checksum_of(member.url.rsplit("/", 1)[-1]),
    )


def _data_of(tag: str, family: Family) -> str:
    tag = tag.upper()
    if "SWAG" in tag:
        return "Instagram-3.6B hashtags (weakly supervised SWAG), then ImageNet-1k" + (
            " (trunk frozen, linear head)" if "LINEAR" in tag else ""
        )
    return family.data


def create_torchvision_backbone(
    arch: str,
    weights: WeightsArg = "imagenet",
    *,
    input_range: tuple[float, float] = (0.0, 1.0),
    resize: bool = False,
) -> Backbone:
    """Build the torchvision network ``arch`` as a :class:`Backbone`.

    Args:
        arch: one of ``FAMILIES`` (``"vgg16"``, ``"alexnet"``, ``"convnext_tiny"``, ``"vit_b_16"`` ...).
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
    import torchvision

    family = FAMILIES[arch]
    builder = family.model or arch
    cfg: PretrainedCfg | None = None
    device = "meta" if family.meta_init else "cpu"
    if weights is None:
        warn_random(arch)
        with torch.device(device):
            model = torchvision.models.get_model(builder, weights=None, **family.build_kwargs)
        for attr in family.drop:  # never initialise the (large) heads that are never run
            setattr(model, attr, nn.Identity())
        if family.meta_init:
            model.to_empty(device="cpu")
            init_like_torchvision(model, arch)
    else:
        if isinstance(weights, dict):
            state, source = weights, "the given state_dict"
        elif is_path(weights):
            state, source = load_state_dict_file(weights), f"file '{weights}'"
            cfg = PretrainedCfg(tag="file", source=str(weights), task=family.task, data="unknown")
        else:
            tags = weight_tags(arch)
            key = str(weights).lower()
            if key not in tags:
                from percept.errors import unknown_name

                raise WeightsError(
                    unknown_name("weight tag", str(weights), tags, context=f"for {arch!r}") + " Or pass a file path."
                )
            member = tags[key]
            state, source = fetch_url(member.url, what=f"{arch} weights"), member.url
            cfg = _cfg(arch, family, member)
        with torch.device(device):
            model = torchvision.models.get_model(builder, weights=None, **family.build_kwargs)
        # On the meta device the file's tensors are assigned as they are: no random init, no copy.
        load_into(model, state, source, assign=family.meta_init)
    for attr in family.drop:
        setattr(model, attr, nn.Identity())
    if family.patch is not None:
        family.patch(model)
    model.eval().requires_grad_(False)
    mean, std = family.norm or (IMAGENET_MEAN, IMAGENET_STD)
    if family.patch is _l2pool_patch:  # the image is tapped as given; the network normalises it itself
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    size: dict = {}
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


def _factory(arch: str) -> Callable[..., Backbone]:
    return functools.partial(_create, arch)


def _create(arch: str, weights: WeightsArg = "imagenet", **kwargs) -> Backbone:
    return create_torchvision_backbone(arch, weights, **kwargs)


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    for arch, family in FAMILIES.items():
        register(arch, _factory(arch), description=family.description)


__all__: Sequence[str] = ("FAMILIES", "L2Pool", "build_arch", "create_torchvision_backbone", "weight_tags")
