"""Functional interface: ``perceptual_distance(x, y, spec)`` with pipelines cached per spec."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch

from percept.backbones.weights import state_dict_checksum
from percept.pipeline import Pipeline
from percept.pipeline_keywords import pipeline_from_keywords
from percept.spec import Spec, parse_spec

_CACHE_SIZE = 4
_cache: OrderedDict[tuple, Pipeline] = OrderedDict()
_lock = threading.Lock()
_building: dict[tuple, threading.Lock] = {}  # one lock per key being built: concurrent first calls build once


def _content_key(value: Any) -> str | None:
    """What a cached pipeline is keyed by for one option: its content, never its ``repr`` (torch elides the middle
    of a large tensor's repr). Plain values by their ``repr``; tensors and state dicts by a checksum of their
    bytes; a file path also by the file's size and modification time; None for anything else (a module, an
    object): such options are not cached."""
    if value is None or isinstance(value, bool | int | float | complex):
        return repr(value)
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        try:
            stat = os.stat(text)
        except (OSError, ValueError):
            return repr(text)
        return f"{text!r}:{stat.st_size}:{stat.st_mtime_ns}" if os.path.isfile(text) else repr(text)
    if isinstance(value, torch.Tensor):
        return state_dict_checksum({"": value})
    if isinstance(value, Mapping) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
        return state_dict_checksum(dict(value))
    if isinstance(value, tuple | list):
        parts = [_content_key(v) for v in value]
        return None if None in parts else f"{type(value).__name__}({','.join(parts)})"  # type: ignore[arg-type]
    return None


def get_pipeline(spec: str | Spec, device: torch.device | None = None, **kwargs) -> Pipeline:
    """The pipeline for ``spec`` and options, built once and kept (the 4 most recent are cached).

    The cache is keyed by content: tensors and state dicts by a checksum of their bytes, a weights file
    by its size and modification time as well as its name. Options that cannot be keyed so (a module,
    another object) build a new pipeline on every call. Threads asking for the same pipeline at once wait
    for the first to build it (different pipelines are built side by side).

    Example:
        >>> a = get_pipeline("pixel:pixel/raw/l2")
        >>> a is get_pipeline("pixel:pixel/raw/l2")
        True
    """
    parts = {k: _content_key(v) for k, v in kwargs.items()}
    if None in parts.values():
        pipeline = pipeline_from_keywords(spec, kwargs)
        return pipeline if device is None else pipeline.to(device)
    key = (str(parse_spec(spec)), str(device), tuple(sorted(parts.items())))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        building = _building.setdefault(key, threading.Lock())
    with building:
        with _lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
        try:
            pipeline = pipeline_from_keywords(spec, kwargs)
            if device is not None:
                pipeline = pipeline.to(device)
            with _lock:
                _cache[key] = pipeline
                while len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
        finally:
            with _lock:
                _building.pop(key, None)
    return pipeline


def clear_cache() -> None:
    """Drop every cached pipeline (frees their networks)."""
    with _lock:
        _cache.clear()


def perceptual_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    spec: str | Spec | Pipeline = "lpips-alex",
    *,
    spatial: bool = False,
    **kwargs,
) -> torch.Tensor:
    """Perceptual distance between two image batches, one value per sample.

    Args:
        x, y: ``(N, C, H, W)`` images, C = 1 or 3, float, values in [0, 1] (or ``input_range``).
        spec: a spec string (``"lpips-alex"``, ``"vgg16:conv3"``, ...) or a built :class:`Pipeline`.
        spatial: return a ``(N, 1, H, W)`` distance map instead.
        **kwargs: options for :func:`percept.pipeline.build_pipeline` (``weights=``, ``input_range=``...).

    Returns:
        ``(N,)`` float32 distances, differentiable in ``x`` and ``y``.

    Example:
        >>> d = perceptual_distance(torch.rand(4, 3, 64, 64), torch.rand(4, 3, 64, 64), "lpips-alex")  # doctest: +SKIP
        >>> d.shape  # doctest: +SKIP
        torch.Size([4])
    """
    pipeline = (
        spec
        if isinstance(spec, Pipeline)
        else get_pipeline(spec, x.device if isinstance(x, torch.Tensor) else None, **kwargs)
    )
    return pipeline(x, y, spatial=spatial)
