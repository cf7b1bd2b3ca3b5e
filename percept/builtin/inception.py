"""GoogLeNet / Inception v1 (Szegedy 2015) and Inception v3 (Szegedy 2016) from torchvision.

Taps: ``stage1``, ``stage2`` ... (canonical): the last module at each resolution. Their weights expect
``transform_input``, i.e. ``(x - 0.5) / 0.5``, which is the normalisation used.
"""

from __future__ import annotations

from collections.abc import Callable

from percept.builtin._torchvision import Family, named_children, named_stride_taps, register_families
from percept.hookspecs import hookimpl

GOOGLENET = (
    "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3", "inception4a",
    "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4", "inception5a", "inception5b",
)  # fmt: skip
INCEPTION = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a",
    "Mixed_7b", "Mixed_7c",
)  # fmt: skip
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # the weights' transform_input: (x - 0.5) / 0.5

FAMILIES = {
    "googlenet": Family(
        named_children(GOOGLENET),
        named_stride_taps(GOOGLENET),
        ("aux1", "aux2", "avgpool", "dropout", "fc"),
        "GoogLeNet / Inception v1 (Szegedy 2015), ImageNet-1k",
        build_kwargs={"init_weights": False},
        norm=HALF,
    ),
    "inception_v3": Family(
        named_children(INCEPTION),
        named_stride_taps(INCEPTION),
        ("AuxLogits", "avgpool", "dropout", "fc"),
        "Inception v3 (Szegedy 2016), ImageNet-1k",
        build_kwargs={"init_weights": False},
        norm=HALF,
    ),
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
