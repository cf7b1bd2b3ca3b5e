"""The demo's run: score every tap on the ladders, correlate with the level, write the tables and the figure."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from percept.demo import inputs
from percept.demo.figure import plot_scores
from percept.demo.inputs import BATCH_SIZE, DISTORTIONS, load_demo_image, require_extras, to_tensor
from percept.errors import InputError, WeightsError
from percept.io import check_outputs, ensure_output_folder, save_csv

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    import torch

    from percept.pipeline import Pipeline


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
        x = to_tensor([image]).to(device, memory_format=torch.channels_last)
        y = to_tensor(distorted).to(device, memory_format=torch.channels_last)
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
    out_dir: str | os.PathLike = inputs.DEFAULT_OUT_DIR,
    backbone: str = inputs.DEFAULT_BACKBONE,
    weights: str | os.PathLike | None = None,
    levels: int = inputs.DEFAULT_LEVELS,
    size: int = inputs.DEFAULT_SIZE,
    images: Sequence[str | os.PathLike] = inputs.DEFAULT_IMAGES,
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
        >>> run_demo("demo-out", levels=3, size=128, images=["astronaut"]).scores.columns[:2]  # doctest: +SKIP
        Index(['image', 'distortion'], dtype='object')
    """
    stream = stream or sys.stdout
    started = time.perf_counter()

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    outputs = _check_arguments(levels, size, images, Path(out_dir), weights)
    require_extras()
    import torch

    net, weights_text = _pretrained_backbone(backbone, weights)
    # Module.to takes memory_format; torch's typed overloads leave it out.
    pipeline = build_demo_pipeline(net, readout, distance).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    if size < pipeline.min_size:
        raise InputError(
            f"size {size} is too small for the deepest taps of {backbone!r}; use at least {pipeline.min_size}"
        )
    loaded = _load_images(images, size)
    say(
        f"percept demo: {backbone} ({weights_text}), readout {readout!r}, distance {distance!r}\n"
        f"  {len(loaded)} images at {size}x{size} ({', '.join(loaded)}), "
        f"{len(DISTORTIONS)} distortions x {levels} levels, {len(pipeline.taps)} taps"
    )
    scores = score_ladders(pipeline, loaded, levels, device=device, seed=seed, progress=say)
    correlations = level_correlations(scores)

    title = f"{backbone}: per-tap distance vs distortion level ({readout}/{distance})"
    _write_outputs(outputs, scores, correlations, title, {t.name: t.index for t in net.feature_info})
    scores_csv, correlations_csv, plot = outputs
    say("")
    say(_correlation_table(correlations, net))
    seconds = time.perf_counter() - started
    say("")
    say(f"wrote {scores_csv} ({len(scores)} rows), {correlations_csv} and {plot} in {seconds:.1f} s")
    return DemoResult(scores, correlations, scores_csv, correlations_csv, plot, weights_text, seconds)


def _write_outputs(
    outputs: tuple[Path, ...], scores: pd.DataFrame, correlations: pd.DataFrame, title: str, depth: dict[str, int]
) -> None:
    """``scores.csv``, ``correlations.csv`` and ``scores.png``, each written whole or not at all."""
    scores_csv, correlations_csv, plot = outputs
    ensure_output_folder(scores_csv.parent)
    save_csv(scores, scores_csv, index=False)
    save_csv(correlations, correlations_csv, index=False)
    plot_scores(scores, plot, title, depth, correlations)


def _check_arguments(
    levels: int, size: int, images: Sequence[str | os.PathLike], out: Path, weights: Any = None
) -> tuple[Path, ...]:
    """Refuse bad arguments and an unusable output before any work (an output that is an image or the weights
    file: :func:`percept.io.check_outputs`); the three output paths."""
    if not isinstance(levels, int) or levels < 2:
        raise InputError(f"levels must be an integer >= 2 (a correlation needs at least two levels), got {levels!r}")
    if not isinstance(size, int) or size < 16:
        raise InputError(f"size must be an integer >= 16 pixels, got {size!r}")
    if not images:
        raise InputError("expected at least one image name or file, got none")
    outputs = (out / "scores.csv", out / "correlations.csv", out / "scores.png")
    # A read-only or unusable folder, or an output that is one of the images, fails now.
    ensure_output_folder(out, create=False)
    files = [i for i in images if os.path.isfile(os.fspath(i))]
    if isinstance(weights, str | os.PathLike) and os.path.isfile(weights):
        files.append(weights)
    check_outputs(outputs, files, what="demo output")
    return outputs


def _pretrained_backbone(backbone: str, weights: str | os.PathLike | None) -> tuple[Any, str]:
    """The backbone with pretrained weights (random ones refused), and how to name those weights."""
    import warnings

    from percept.backbones.factory import create_backbone
    from percept.backbones.weights import is_path
    from percept.errors import RandomWeightsWarning

    weights_arg, chosen = inputs.resolve_weights(backbone, weights)
    try:
        with warnings.catch_warnings():
            # No path to random weights exists here; should a plugin fall back to them, refuse below.
            warnings.simplefilter("error", RandomWeightsWarning)
            net = create_backbone(backbone, weights=weights_arg)
    except WeightsError as exc:
        if chosen:
            raise
        raise inputs.no_weights_error(backbone, exc) from exc
    except RandomWeightsWarning as exc:
        raise WeightsError(
            f"backbone {backbone!r} fell back to random weights ({exc}); the demo refuses them"
        ) from None
    weights_text = str(weights_arg) if is_path(weights_arg) else f"tag {str(weights_arg)!r}"
    shipped = inputs.shipped_record(backbone)
    if not chosen and shipped is not None and is_path(weights_arg):
        weights_text += f" (from the package {shipped.extra['shipped_by']})"
    return net, weights_text


def _load_images(images: Sequence[str | os.PathLike], size: int) -> dict[str, np.ndarray]:
    """Name -> ``(size, size, 3)`` image; two images of one name are refused (the CSV tells them apart by it)."""
    loaded = {}
    for name in images:
        key = Path(name).stem if os.path.isfile(os.fspath(name)) else os.fspath(name)
        if key in loaded:
            raise InputError(f"two images are named {key!r} (the CSV tells images apart by name); pass each once")
        loaded[key] = load_demo_image(name, size)
    return loaded


def _one_row_per_module(rows: list[dict], canonical: set[str]) -> list[dict]:
    """Taps that read one module (aliases: ``stage1 = block1``) as one row, named ``stage1* = block1`` (canonical
    names first, marked ``*``); rows in their first tap's order."""
    by_module: dict[str, dict] = {}
    for row in rows:
        name = row["tap"] + ("*" if row["tap"] in canonical else "")
        key = row["module"] or row["tap"]
        if key in by_module:
            names = by_module[key]["names"]
            names.insert(0, name) if row["tap"] in canonical else names.append(name)
        else:
            by_module[key] = {**row, "names": [name]}
    return [{**row, "tap": " = ".join(row.pop("names"))} for row in by_module.values()]


def _correlation_table(correlations: pd.DataFrame, backbone) -> str:
    distortions = [c for c in correlations.columns if c not in ("tap", "module")]
    canonical = set(backbone.canonical_taps)
    order = {t.name: (t.index, t.name not in canonical) for t in backbone.feature_info}
    rows = sorted(correlations.to_dict("records"), key=lambda r: order.get(r["tap"], (0, True)))
    rows = _one_row_per_module(rows, canonical)
    width = max(len(r["tap"]) for r in rows) + 2
    module_width = max(len(r["module"]) for r in rows)
    lines = [
        "Spearman rank correlation of distance with distortion level, per tap",
        "(blur/noise/jpeg: pooled over the images of that distortion; all: pooled over images and distortions;"
        " * canonical tap)",
        f"{'tap':<{width}}{'module':<{module_width}}" + "".join(f"{d:>8}" for d in distortions),
    ]
    for row in rows:
        cells = "".join(f"{row[d]:>8.3f}" for d in distortions)
        lines.append(f"{row['tap']:<{width}}{row['module']:<{module_width}}{cells}")
    best = max(rows, key=lambda r: (r["all"] == r["all"], r["all"]))
    lines.append(f"highest overall: {best['tap']} (rho = {best['all']:.3f})")
    return "\n".join(lines)
