"""A selection as a file and as a metric: :class:`Selection` and its JSON (written, read, checked), and the
pipeline it builds."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from percept.builtin.ssim import SSIMDistance
from percept.errors import InputError, SpecError
from percept.readouts.base import Readout

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


FORMAT = "percept-map-selection/1"


@dataclass
class Selection:
    """The result of a forward selection.

    Attributes:
        maps: selected map indices (columns of the matrix), in the order added.
        taps, channels: the selected maps' taps and channels.
        path: DataFrame, one row per step: ``step, map, tap, channel, criterion, srocc, plcc_logistic``.
        criterion: ``"plcc"`` or ``"srocc"``.
        baseline: ``{"criterion", "srocc", "plcc_logistic"}`` of the mean over all maps.
        scores_meta: backbone, weights, measure, resize, database of the matrix.
        cv: cross-validation rows (from :func:`cross_validate`), or None.
        stopped: why the selection stopped (the next map's gain was within ``tol``, ``max_maps``, no map left).
    """

    maps: list[int]
    taps: list[str]
    channels: list[int]
    path: pd.DataFrame
    criterion: str
    baseline: dict[str, float]
    scores_meta: dict[str, Any] = field(default_factory=dict)
    cv: pd.DataFrame | None = None
    stopped: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what :meth:`save` writes)."""
        by_tap: dict[str, list[int]] = {}
        for tap, channel in zip(self.taps, self.channels, strict=True):
            by_tap.setdefault(tap, []).append(int(channel))
        return {
            "format": FORMAT,
            **self.scores_meta,
            "criterion": self.criterion,
            "stopped": self.stopped,
            "maps": by_tap,
            "order": [[t, int(c)] for t, c in zip(self.taps, self.channels, strict=True)],
            "baseline": self.baseline,
            "path": self.path.to_dict("records"),
            "cv": None if self.cv is None else self.cv.to_dict("records"),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the selection as JSON, loadable by :func:`selection_pipeline` and the ``map-selection`` preset."""
        path = Path(path)
        from percept.io import write_text

        write_text(path, json.dumps(self.to_dict(), indent=1, default=_json_default))
        return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


class MapSubsetReadout(Readout):
    """Keeps the selected channels of a tap: ``(N, C, H, W) -> (N, K, H, W)``.

    Args:
        channels: the tap's channel count.
        keep: indices of the channels kept.

    Example:
        >>> MapSubsetReadout(4, [0, 2])(torch.arange(4.0).view(1, 4, 1, 1)).flatten().tolist()
        [0.0, 2.0]
    """

    keep: torch.Tensor

    def __init__(self, channels: int, keep: Sequence[int]) -> None:
        super().__init__()
        keep = [int(c) for c in keep]
        if not keep or min(keep) < 0 or max(keep) >= channels:
            raise SpecError(f"selected channels must lie in [0, {channels}), got {keep}")
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.long), persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.index_select(1, self.keep)

    def extra_repr(self) -> str:
        return f"keep={self.keep.tolist()}"


# The selection's distance is the registered ``ssim`` distance (the same per-map SSIM as the matrix), also
# importable by the name it had as its own class (``from percept.eval.select import MapSSIMDistance``).
MapSSIMDistance = SSIMDistance


def read_json_file(path: str | os.PathLike, what: str) -> Any:
    """The JSON in ``path``, or an :class:`InputError` naming the file and what is wrong with it (missing, a
    folder, unreadable, not UTF-8, not JSON, nested too deeply).

    Example:
        >>> read_json_file("/nonexistent.json", "map selection")
        Traceback (most recent call last):
        ...
        percept.errors.InputError: map selection file '/nonexistent.json' does not exist
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} file '{path}' does not exist")
    if path.is_dir():
        raise InputError(f"{what} file '{path}' is a folder; expected a JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"'{path}' is not a {what}: it is not UTF-8 text (JSON expected)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"'{path}' is not a {what} (JSON error: {exc})") from None
    except RecursionError:
        raise InputError(f"'{path}' is not a {what}: its JSON is nested too deeply") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} file '{path}': {exc.strerror or exc}") from None


def check_recorded_source(data: dict, where: str, weights_key: str) -> None:
    """The fields every saved toolkit result must hold to rebuild its backbone: ``backbone`` (a name),
    ``weights_key`` (the weights it was computed with: a tag, a file, or null for random; required, so a
    missing field never silently means random weights) and, if present, ``network_resize`` (a boolean)."""
    if not isinstance(data.get("backbone"), str) or not data["backbone"]:
        raise InputError(f"{where}: field 'backbone' must be a backbone name, got {data.get('backbone')!r}")
    if weights_key not in data:
        raise InputError(
            f"{where}: field {weights_key!r} is missing (the weights it was computed with: a tag, a file or null "
            "for random weights)"
        )
    if data[weights_key] is not None and not isinstance(data[weights_key], str):
        raise InputError(f"{where}: field {weights_key!r} must be a string or null, got {data[weights_key]!r}")
    if not isinstance(data.get("network_resize", False), bool):
        raise InputError(f"{where}: field 'network_resize' must be true or false, got {data['network_resize']!r}")


def check_taps_of(backbone: Any, entries: dict[str, list], where: str, field: str, *, per_channel: bool) -> None:
    """Check a saved file's per-tap lists against the backbone they are loaded into, naming the file and field.

    Args:
        backbone: the built backbone.
        entries: tap name -> list (channel weights with ``per_channel``, else channel indices).
        where: the file, as errors name it (``"map selection 'sel.json'"``).
        field: the field holding ``entries`` (``"maps"``, ``"weights"``).
        per_channel: the list holds one value per channel (its length must be the tap's channel count);
            otherwise it holds channel indices (each below the count).

    Raises:
        InputError: an unknown tap (with the backbone's error, which lists the taps), a list of the wrong
            length, or a channel index out of range.

    Example:
        >>> check_taps_of(create_backbone("pixel", weights=None), {"conv9": [0]}, "f.json", "maps",
        ...               per_channel=False)  # doctest: +SKIP
        Traceback (most recent call last):
        percept.errors.InputError: f.json: maps['conv9']: ...
    """
    for tap, values in entries.items():
        try:
            channels = backbone.tap_info(tap).channels
        except (SpecError, KeyError, ValueError) as exc:
            raise InputError(
                f"{where}: field {field!r} names tap {tap!r}, which {backbone.name} lacks: {exc}"
            ) from None
        if per_channel and len(values) != channels:
            raise InputError(
                f"{where}: {field}[{tap!r}] holds {len(values)} values, but tap {tap!r} of {backbone.name} has "
                f"{channels} channels; expected one value per channel"
            )
        if not per_channel and values and max(values) >= channels:
            raise InputError(
                f"{where}: {field}[{tap!r}] names channel {max(values)}, but tap {tap!r} of {backbone.name} has "
                f"{channels} channels (0 to {channels - 1})"
            )


def recorded_backbone(data: dict, where: str, weights_key: str, *, weights: Any = "from-file", input_range=(0.0, 1.0)):
    """The backbone a result file (a selection, fine-tuned channel weights) was computed with.

    With ``weights="from-file"`` it is built with the recorded weights (``data[weights_key]``: a tag, a path, or
    ``"random:SEED"``, which draws the same random weights again) and checked against the recorded
    ``weights_checksum``; any other ``weights`` is built as asked, unchecked.

    Raises:
        WeightsError: the rebuilt network's checksum differs from the recorded one (random weights drawn by
            another torch version, or a tag or file that now gives other weights), or the file records random
            weights without their seed (``null``, written before seeds were recorded); each message says how
            to reproduce the file's numbers.

    Example:
        >>> recorded_backbone({"backbone": "alexnet", "weights": None}, "f.json", "weights")
        Traceback (most recent call last):
        ...
        percept.errors.WeightsError: f.json was computed with random weights whose seed it does not record (written \
before percept recorded seeds): that network cannot be made again. Compute the file again with --weights \
random:SEED (e.g. random:0), which records the seed, or pass weights=None to accept other random weights
    """
    from percept.backbones.factory import create_backbone
    from percept.backbones.weights import state_dict_checksum
    from percept.errors import WeightsError

    options = {"resize": True} if data.get("network_resize") else {}
    if weights != "from-file":
        return create_backbone(data["backbone"], weights=weights, input_range=input_range, **options)
    source = data.get(weights_key)
    if source is None:
        raise WeightsError(
            f"{where} was computed with random weights whose seed it does not record (written before percept recorded "
            "seeds): that network cannot be made again. Compute the file again with --weights random:SEED (e.g. "
            "random:0), which records the seed, or pass weights=None to accept other random weights"
        )
    backbone = create_backbone(data["backbone"], weights=source, input_range=input_range, **options)
    expected, got = data.get("weights_checksum"), state_dict_checksum(backbone.model)
    if expected and got != expected:
        import torch

        why = (
            f"random weights drawn with this seed differ under this torch ({torch.__version__}): load it with the "
            f"torch version that wrote it, or compute the file again here with --weights {source}"
            if str(source).startswith("random:")
            else f"the weights {source!r} now give another network: use the weights the file was computed with"
        )
        raise WeightsError(f"{where}: the network rebuilt from weights {source!r} has {got}, the file records "
                           f"{expected}; {why}")  # fmt: skip
    return backbone


def load_selection(path: str | os.PathLike) -> dict[str, Any]:
    """Read a selection written by :meth:`Selection.save`, checking every field a metric is built from.

    Raises:
        InputError: the file is missing or not a map selection, naming the file and the field at fault:
            ``maps`` must map tap names to lists of distinct channel indices (integers >= 0).

    Example:
        >>> load_selection("/nonexistent.json")
        Traceback (most recent call last):
        ...
        percept.errors.InputError: map selection file '/nonexistent.json' does not exist
    """
    data = read_json_file(path, "map selection")
    if not isinstance(data, dict) or data.get("format") != FORMAT or not data.get("maps"):
        raise InputError(f"'{path}' is not a map selection: expected JSON with format {FORMAT!r} and 'maps'")
    check_selection(data, f"map selection '{path}'")
    return data


def check_selection(data: dict, where: str = "map selection") -> None:
    """Check a selection's fields (see :func:`load_selection`); ``where`` names it in errors."""
    check_recorded_source(data, where, "weights")
    if not isinstance(data.get("measure", "ssim"), str):
        raise InputError(f"{where}: field 'measure' must be a string, got {data.get('measure')!r}")
    maps = data.get("maps")
    if not isinstance(maps, dict) or not maps:
        raise InputError(f"{where}: field 'maps' must map tap names to channel lists, got {type(maps).__name__}")
    for tap, channels in maps.items():
        if not isinstance(channels, list) or not channels:
            raise InputError(f"{where}: maps[{tap!r}] must be a non-empty list of channel indices, got {channels!r}")
        bad = [c for c in channels if isinstance(c, bool) or not isinstance(c, int) or c < 0]
        if bad:
            raise InputError(f"{where}: maps[{tap!r}] holds {bad[0]!r}; channel indices are integers >= 0")
        if len(set(channels)) != len(channels):
            raise InputError(f"{where}: maps[{tap!r}] names a channel twice")


def selection_pipeline(
    selection: str | os.PathLike | Selection | dict,
    *,
    weights="from-file",
    input_range: tuple[float, float] = (0.0, 1.0),
    check_inputs: bool = True,
):
    """The metric a selection defines: ``1 - mean SSIM`` over the selected maps, as a Pipeline.

    Args:
        selection: a saved file, a :class:`Selection`, or its ``to_dict()``.
        weights: backbone weights; ``"from-file"`` uses those the selection was computed with
            (``None`` there means random weights).
        input_range: the range of images passed.
        check_inputs: validate inputs on every call.

    Returns:
        A frozen Pipeline, differentiable in its inputs (usable as a loss).

    Example:
        >>> d = selection_pipeline("alexnet-tid2013.json")(x, y)  # (N,)  # doctest: +SKIP
    """
    from percept.pipeline import Pipeline

    where = "map selection"
    if isinstance(selection, Selection):
        data = selection.to_dict()
    elif isinstance(selection, dict):
        data = selection
        check_selection(data)
    else:
        data = load_selection(selection)
        where = f"map selection '{selection}'"
    if data.get("measure", "ssim") != "ssim":
        raise SpecError(f"only SSIM selections load as a metric, this one used {data.get('measure')!r}")
    backbone = recorded_backbone(data, where, "weights", weights=weights, input_range=input_range)
    taps = list(data["maps"])
    if "input" in taps:
        raise SpecError("selections of input channels do not load as a metric")
    check_taps_of(backbone, data["maps"], where, "maps", per_channel=False)
    readouts = [MapSubsetReadout(backbone.tap_info(t).channels, data["maps"][t]) for t in taps]
    total = sum(len(v) for v in data["maps"].values())
    layer_weights = [len(data["maps"][t]) / total for t in taps]
    spec = f"map-selection({data['backbone']}, {total} maps)"
    return Pipeline(backbone, taps, readouts, MapSSIMDistance(), layer_weights, spec=spec, check_inputs=check_inputs)
