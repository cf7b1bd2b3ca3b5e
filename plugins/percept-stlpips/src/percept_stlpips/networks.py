"""The shift-tolerant AlexNet and VGG16 of ST-LPIPS, as percept backbones.

Ghildyal & Liu ("Shift-tolerant Perceptual Similarity Metric", ECCV 2022) make LPIPS' networks
tolerant to small shifts by anti-aliasing every downsampling step: strided convolutions and
pooling run at stride 1 and are followed by a blur-pool (:class:`BlurPool2d`: reflection padding
of 2, a 3x3 binomial filter ``[1, 2, 1] x [1, 2, 1] / 16`` per channel, stride 2). The layouts below
mirror the ``shift_tolerant`` variants of ``stlpips_pytorch.invariant_networks`` layer for layer,
so the index of each layer in ``features`` is the index that package's weight files use.

Taps (``percept taps stlpips.alexnet``):

================  ===========================================================================
stlpips.alexnet   ``conv1``..``conv5`` (canonical, the ST-LPIPS taps: ``features.2, 6, 10, 12, 14``),
                  ``relu1``..``relu5`` (the same outputs), ``pool1, pool2, pool5`` (after blur-pool)
stlpips.vgg16     ``conv1``..``conv5`` (canonical: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3),
                  ``conv{b}_{i}`` before and ``relu{b}_{i}`` after each ReLU, ``pool{b}``
================  ===========================================================================

Weights: ``"stlpips"`` (default; ``"imagenet"``, percept's generic default tag, means the same)
reads ``weights/vST0.0/{alex,vgg}_shift_tolerant.pth`` from the installed ``stlpips-pytorch``
package, without importing it; ``None`` gives random weights; a path reads a file in that format.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from percept.plugin import (
    Backbone,
    PretrainedCfg,
    WeightsError,
    flatten_stages,
    is_path,
    load_into,
    load_state_dict_file,
    unknown_name,
    warn_random,
)

WEIGHT_TAGS = ("stlpips", "imagenet", "default")
WEIGHT_FILES = {"alex": "alex_shift_tolerant.pth", "vgg": "vgg_shift_tolerant.pth"}
# SHA-256 of the files in stlpips-pytorch 0.0.2, the version the parity tests ran against.
WEIGHT_SHA256 = {
    "alex": "b356b382f96010f77d085ee8343ecd9fd322d0a56e8de2b2d0549fafcad8b9ee",
    "vgg": "44597da68f49c1837c100ff52299050f274d102eb102e5837178c79be6f0e250",
}
# LPIPS' ScalingLayer on [-1, 1] inputs; the weight files carry the same values.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)

Taps = list[tuple[str, str, bool]]


class BlurPool2d(nn.Module):
    """Anti-aliased downsampling: reflection padding, a per-channel binomial blur, then a stride.

    Args:
        channels: number of channels (the blur is applied to each separately).
        filt_size: 3 (``[1, 2, 1]``), the only size ST-LPIPS uses.
        stride: the downsampling factor.
        pad: reflection padding on each side (ST-LPIPS: ``filt_size - 1`` = 2, its ``pad_more``).

    Input ``(N, C, H, W)``, output ``(N, C, (H + 2 pad - 3) // stride + 1, ...)``. Equal to
    ``stlpips_pytorch.models_lpf.Downsample(filt_size=3, stride=2, channels=C, pad_more=True)``.

    Example:
        >>> BlurPool2d(4)(torch.rand(1, 4, 16, 16)).shape
        torch.Size([1, 4, 9, 9])
    """

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2, pad: int = 2) -> None:
        super().__init__()
        if filt_size != 3:
            raise ValueError(f"only the 3-tap binomial filter of ST-LPIPS is implemented, got filt_size={filt_size}")
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = a[:, None] * a[None, :]
        # A fixed filter, not a weight: kept out of state_dict (the weight files' copies are checked on load).
        self.register_buffer("filt", (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1), persistent=False)
        self.channels, self.stride, self.pad = channels, stride, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return F.conv2d(x, self.filt.to(x.dtype), stride=self.stride, groups=x.shape[1])

    def extra_repr(self) -> str:
        return f"channels={self.channels}, stride={self.stride}, pad={self.pad}"


class ShiftTolerantAlexNet(nn.Module):
    """AlexNet's convolutional part with blur-pools (``invariant_networks.alexnet`` variant ``shift_tolerant``)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=1, padding=2),
            BlurPool2d(64),
            nn.ReLU(inplace=True),  # 2: conv1
            nn.MaxPool2d(kernel_size=3, stride=1),
            BlurPool2d(64),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),  # 6: conv2
            nn.MaxPool2d(kernel_size=3, stride=1),
            BlurPool2d(192),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),  # 10: conv3
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),  # 12: conv4
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),  # 14: conv5
            nn.MaxPool2d(kernel_size=3, stride=1),
            BlurPool2d(256),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class ShiftTolerantVGG16(nn.Module):
    """VGG16's convolutional part with max-pool at stride 1 followed by blur-pool (``models_lpf.vgg16``)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in VGG16_CFG:
            if v == "M":
                layers += [nn.MaxPool2d(kernel_size=2, stride=1), BlurPool2d(channels)]
            else:
                layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = int(v)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _alexnet_taps() -> Taps:
    relus = {1: 2, 2: 6, 3: 10, 4: 12, 5: 14}
    taps: Taps = [(f"conv{i}", f"features.{j}", True) for i, j in relus.items()]
    taps += [(f"relu{i}", f"features.{j}", False) for i, j in relus.items()]
    taps += [("pool1", "features.4", False), ("pool2", "features.8", False), ("pool5", "features.16", False)]
    return taps


def _vgg16_taps() -> Taps:
    canonical: Taps = []
    finer: Taps = []
    block, conv, last_relu = 1, 0, ""
    index = 0
    for v in VGG16_CFG:
        if v == "M":
            canonical.append((f"conv{block}", last_relu, True))
            finer.append((f"pool{block}", f"features.{index + 1}", False))
            block, conv, index = block + 1, 0, index + 2
        else:
            conv += 1
            finer.append((f"conv{block}_{conv}", f"features.{index}", False))
            last_relu = f"features.{index + 1}"
            finer.append((f"relu{block}_{conv}", last_relu, False))
            index += 2
    return canonical + finer


NETS: dict[str, tuple[str, Callable[[], nn.Module], Callable[[], Taps], str]] = {
    "alex": ("stlpips.alexnet", ShiftTolerantAlexNet, _alexnet_taps, "AlexNet, anti-aliased (ST-LPIPS, ECCV 2022)"),
    "vgg": ("stlpips.vgg16", ShiftTolerantVGG16, _vgg16_taps, "VGG16, anti-aliased (ST-LPIPS, ECCV 2022)"),
}


def stlpips_weight_file(net: str) -> Path:
    """Path of the ST-LPIPS weight file (network and linear heads) that ``stlpips-pytorch`` ships for ``net``.

    Args:
        net: ``"alex"`` or ``"vgg"``.

    Raises:
        WeightsError: ``stlpips-pytorch`` is not installed, or lacks the file.

    Example:
        >>> stlpips_weight_file("alex").name  # doctest: +SKIP
        'alex_shift_tolerant.pth'
    """
    if net not in WEIGHT_FILES:
        raise WeightsError(f"ST-LPIPS has weights for nets {sorted(WEIGHT_FILES)}, got {net!r}")
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the ST-LPIPS weights come from the files the stlpips-pytorch package ships, and it is not installed: "
            "`pip install stlpips-pytorch ipython torchsummary`, or pass weights='/path/to/"
            f"{WEIGHT_FILES[net]}'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "vST0.0" / WEIGHT_FILES[net]
    if not path.is_file():
        raise WeightsError(f"the installed stlpips-pytorch has no weight file '{path}'; pass weights=PATH")
    return path


def network_state(state: Mapping[str, torch.Tensor], model: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """The network part of an ST-LPIPS state_dict, with keys renamed to ``model``'s.

    ``net.slice{k}.{i}.{param}`` becomes ``features.{i}.{param}`` (``i`` is already the layer index in
    ``features``); ``features.*`` keys pass as they are. Blur filters in the file are checked against
    the fixed ones and dropped; heads (``lin*``) and the scaling layer are left to the caller.

    Raises:
        WeightsError: a blur filter in the file differs from the binomial filter.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("net.slice"):
            _, _, rest = key.split(".", 2)
            key = f"features.{rest}"
        elif not key.startswith("features."):
            continue
        if key.endswith(".filt"):
            try:
                layer = model.get_submodule(key[: -len(".filt")])
            except AttributeError:
                layer = None
            if isinstance(layer, BlurPool2d):
                if layer.filt.shape != value.shape or not torch.allclose(layer.filt, value.to(layer.filt)):
                    raise WeightsError(f"weights from {source}: blur filter {key!r} is not the 3x3 binomial filter")
                continue
            # No blur-pool there: left in, so load_into reports the file as not fitting the network.
        out[key] = value
    return out


def create_stlpips_backbone(
    net: str = "alex",
    weights: str | os.PathLike | Mapping | None = "stlpips",
    *,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> Backbone:
    """Build the shift-tolerant AlexNet (``net="alex"``) or VGG16 (``net="vgg"``) as a percept Backbone.

    Args:
        net: ``"alex"`` or ``"vgg"``.
        weights: ``"stlpips"`` (default; ``"imagenet"`` and ``"default"`` mean the same) for the weights
            stlpips-pytorch ships, a path to a file in that format, a state_dict, or ``None`` for random
            initialisation (warns: the scores then mean nothing).
        input_range: the range of the images that will be passed, ``(0, 1)`` or ``(-1, 1)``.

    Returns:
        A frozen :class:`~percept.plugin.Backbone` whose input normalisation is LPIPS' scaling layer
        (``(x - shift) / scale`` on images mapped to ``[-1, 1]``).

    Raises:
        WeightsError: unknown tag, missing package or file, or weights that do not fit.

    Example:
        >>> bb = create_stlpips_backbone("alex")  # doctest: +SKIP
        >>> bb.tap_info("conv2").module, bb.tap_info("conv2").channels  # doctest: +SKIP
        ('features.6', 192)
    """
    if net not in NETS:
        raise WeightsError(f"ST-LPIPS nets are {sorted(NETS)}, got {net!r}")
    name, arch, taps, _ = NETS[net]
    model = arch()
    shift, scale = LPIPS_SHIFT, LPIPS_SCALE
    cfg = None
    packaged = False
    if weights is None:
        warn_random(name)
    else:
        if isinstance(weights, Mapping):
            state, source = dict(weights), "the given state_dict"
        elif is_path(weights):
            state, source = load_state_dict_file(weights), f"file '{weights}'"
        elif str(weights).lower() in WEIGHT_TAGS:
            path = stlpips_weight_file(net)
            state, source = load_state_dict_file(path), f"file '{path}'"
            packaged = True
        else:
            raise WeightsError(
                unknown_name("weight tag", str(weights), WEIGHT_TAGS, context=f"for {name!r}") + " Or pass a file path."
            )
        load_into(model, network_state(state, model, source), source)
        if "scaling_layer.shift" in state and "scaling_layer.scale" in state:
            shift = tuple(float(v) for v in state["scaling_layer.shift"].flatten())
            scale = tuple(float(v) for v in state["scaling_layer.scale"].flatten())
        cfg = PretrainedCfg(
            tag="stlpips-vST0.0",
            source=source,
            filename=WEIGHT_FILES[net],
            license="BSD-2-Clause (stlpips-pytorch)",
            task="perceptual similarity (ST-LPIPS)",
            data="ImageNet-1k, BAPPS",
            mean=shift,
            std=scale,
            input_range=(-1.0, 1.0),
            checksum=WEIGHT_SHA256[net] if packaged else None,
        )
    model.eval().requires_grad_(False)
    backbone = Backbone(
        name,
        model,
        flatten_stages(model.features, "features"),
        taps(),
        input_range=input_range,
        arch=arch,
        stage_fn=lambda m: flatten_stages(m.features, "features"),
        pretrained_cfg=cfg,
    )
    return backbone.set_normalization(shift, scale, domain=(-1.0, 1.0))
