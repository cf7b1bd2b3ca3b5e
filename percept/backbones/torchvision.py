"""Backbones from torchvision: AlexNet, VGG (with and without BN), SqueezeNet 1.1, ResNet, MobileNetV2.

Canonical taps (what ``all`` means):

=================  ==========================================================================
alexnet            ``conv1``..``conv5``: the ReLU outputs LPIPS uses (``features.1, 4, 7, 9, 11``)
vgg11..vgg19(_bn)  ``conv1``..``conv5``: the last ReLU of each block (VGG16: relu1_2 .. relu5_3)
squeezenet1_1      ``relu1, fire3, fire5, fire6, fire7, fire8, fire9`` (the LPIPS taps)
resnet18/34/50     ``stem`` (after the first ReLU), ``layer1``..``layer4``
mobilenet_v2       ``stage1``..``stage5`` (the last block at strides 2, 4, 8, 16, 32)
=================  ==========================================================================

Finer names (``relu3_1``, ``conv3_1`` before its ReLU, ``pool2``, ``fire4``, ``block7``) and module
paths (``features.15``, ``layer2.1``) work too; ``percept taps NAME`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from percept.backbones.base import Backbone, PretrainedCfg, flatten_stages
from percept.backbones.weights import WeightsArg, fetch_url, is_path, load_into, load_state_dict_file, warn_random
from percept.errors import WeightsError
from percept.hookspecs import hookimpl

Taps = list[tuple[str, str, bool]]


@dataclass(frozen=True)
class Family:
    """How to cut one torchvision architecture into stages and name its taps."""

    stages: Callable[[nn.Module], list[tuple[str, nn.Module]]]
    taps: Callable[[nn.Module], Taps]
    drop: tuple[str, ...]  # heads never run: freed after loading weights
    description: str


def _features(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return flatten_stages(model.features, "features")


def _resnet_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    out: list[tuple[str, nn.Module]] = [(n, getattr(model, n)) for n in ("conv1", "bn1", "relu", "maxpool")]
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        out.extend(flatten_stages(getattr(model, layer), layer))
    return out


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
        elif isinstance(module, nn.MaxPool2d):
            taps.append((f"conv{block}", last_relu, True))
            taps.append((f"pool{block}", name, False))
            block, conv = block + 1, 0
    return _canonical_first(taps)


def _squeezenet_taps(model: nn.Module) -> Taps:
    names = {
        "features.0": "conv1",
        "features.1": "relu1",
        "features.2": "pool1",
        "features.3": "fire2",
        "features.4": "fire3",
        "features.5": "pool3",
        "features.6": "fire4",
        "features.7": "fire5",
        "features.8": "pool5",
        "features.9": "fire6",
        "features.10": "fire7",
        "features.11": "fire8",
        "features.12": "fire9",
    }
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


def _mobilenet_v2_taps(model: nn.Module) -> Taps:
    stage_ends = {1: 1, 3: 2, 6: 3, 13: 4, 17: 5}
    taps: Taps = [(f"stage{s}", f"features.{i}", True) for i, s in stage_ends.items()]
    taps.append(("stem", "features.0", False))
    taps += [(f"block{i}", f"features.{i}", False) for i in range(1, 18)]
    taps.append(("head", "features.18", False))
    return taps


def _canonical_first(taps: Taps) -> Taps:
    return [t for t in taps if t[2]] + [t for t in taps if not t[2]]


_VGG = Family(_features, _vgg_taps, ("avgpool", "classifier"), "VGG (Simonyan & Zisserman 2014), ImageNet-1k")
FAMILIES: dict[str, Family] = {
    "alexnet": Family(_features, _alexnet_taps, ("avgpool", "classifier"), "AlexNet (Krizhevsky 2012), ImageNet-1k"),
    **{name: _VGG for name in ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")},
    "squeezenet1_1": Family(_features, _squeezenet_taps, ("classifier",), "SqueezeNet 1.1 (Iandola 2016), ImageNet-1k"),
    **{
        name: Family(_resnet_stages, _resnet_taps, ("avgpool", "fc"), "ResNet (He 2015), ImageNet-1k")
        for name in ("resnet18", "resnet34", "resnet50")
    },
    "mobilenet_v2": Family(_features, _mobilenet_v2_taps, ("classifier",), "MobileNetV2 (Sandler 2018), ImageNet-1k"),
}


def init_like_torchvision(model: nn.Module, arch: str) -> None:
    """Random initialisation with the schemes torchvision's constructors use (AlexNet: PyTorch's
    defaults; SqueezeNet: Kaiming uniform; the others: Kaiming normal, fan-out), on a model whose
    heads were dropped so the 100M-parameter classifiers are never initialised."""
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
        elif isinstance(module, nn.BatchNorm2d | nn.Linear):
            module.reset_parameters()


def weight_tags(arch: str) -> dict[str, object]:
    """The weight tags torchvision knows for ``arch``: ``imagenet`` (its default) and each enum name."""
    import torchvision

    enum = torchvision.models.get_model_weights(arch)
    tags: dict[str, object] = {"imagenet": enum.DEFAULT}
    tags.update({member.name.lower(): member for member in enum})
    return tags


def create_torchvision_backbone(
    arch: str,
    weights: WeightsArg = "imagenet",
    *,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> Backbone:
    """Build the torchvision network ``arch`` as a :class:`Backbone`.

    Args:
        arch: one of ``FAMILIES`` (``"vgg16"``, ``"alexnet"``, ...).
        weights: ``"imagenet"`` (torchvision's default weights, downloaded once into torch's hub
            cache, or found in ``$PERCEPT_WEIGHTS_DIR``), another torchvision tag such as
            ``"imagenet1k_v1"``, a path to a torchvision-format state_dict file, or ``None`` for
            random initialisation (warns: the scores then mean nothing).
        input_range: range of the images that will be passed: ``(0, 1)`` or ``(-1, 1)``.

    Example:
        >>> bb = create_torchvision_backbone("vgg16", weights=None)  # doctest: +SKIP
        >>> bb.tap_info("conv3")  # doctest: +SKIP
        TapInfo(name='conv3', module='features.15', index=15, channels=256, reduction=4, canonical=True)
    """
    import torchvision

    family = FAMILIES[arch]
    cfg: PretrainedCfg | None = None
    if weights is None:
        warn_random(arch)
        with torch.device("meta"):
            model = torchvision.models.get_model(arch, weights=None)
        for attr in family.drop:  # never initialise the (large) heads that are never run
            setattr(model, attr, nn.Identity())
        model.to_empty(device="cpu")
        init_like_torchvision(model, arch)
    else:
        if isinstance(weights, dict):
            state, source = weights, "the given state_dict"
        elif is_path(weights):
            state, source = load_state_dict_file(weights), f"file '{weights}'"
            cfg = PretrainedCfg(tag="file", source=str(weights))
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
            cfg = PretrainedCfg(tag=member.name, source=member.url, filename=member.url.rsplit("/", 1)[-1])
        with torch.device("meta"):
            model = torchvision.models.get_model(arch, weights=None)
        # Built on the meta device and assigned the file's tensors: no random init, no copy.
        load_into(model, state, source, assign=True)
    for attr in family.drop:
        setattr(model, attr, nn.Identity())
    model.eval().requires_grad_(False)
    stages = family.stages(model)

    def arch_fn() -> nn.Module:
        return torchvision.models.get_model(arch, weights=None)

    return Backbone(
        arch,
        model,
        stages,
        family.taps(model),
        input_range=input_range,
        arch=arch_fn,
        stage_fn=family.stages,
        pretrained_cfg=cfg,
    )


def _factory(arch: str) -> Callable[..., Backbone]:
    def factory(weights: WeightsArg = "imagenet", **kwargs) -> Backbone:
        return create_torchvision_backbone(arch, weights, **kwargs)

    factory.__name__ = f"create_{arch}"
    factory.__doc__ = f"Build torchvision's {arch} as a percept Backbone (see create_torchvision_backbone)."
    return factory


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    for arch, family in FAMILIES.items():
        register(arch, _factory(arch), description=family.description)


__all__: Sequence[str] = ("FAMILIES", "create_torchvision_backbone", "weight_tags")
