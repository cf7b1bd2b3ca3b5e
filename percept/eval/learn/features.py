"""Features of a frozen network, computed once per image and kept for every epoch of :func:`train_heads`.

With the trunk frozen, what a training step needs from a triplet ``(ref, p0, p1)`` never changes: per tap, the
squared differences of unit-normalised features ``(u_ref - u_p0)^2`` and ``(u_ref - u_p1)^2``, each
``(C, h, w)``. They are computed once (one forward pass per image, the images of a chunk of triplets in one
batch) and every epoch then costs only the heads. What is cached, and why it is exact:

- with dropout (LPIPS' recipe), the full ``(C, h, w)`` difference maps: lpips' dropout masks every element of
  the difference (channel and pixel) before the 1x1 head, so the spatial mean cannot be taken before the
  masks are drawn. Steps on these maps draw the same masks as lpips from the same RNG state and compute the
  same numbers up to float rounding (tests/test_learn_oracle.py: heads within 1e-8 after 3 steps).
- without dropout, only their spatial means ``(C,)``: the head (a 1x1 conv) and the spatial mean are both
  linear, so ``mean_hw(head(diff)) = head(mean_hw(diff))`` (equal up to float rounding); 100x less memory.

In memory the differences are float32 tensors. ``cache=FOLDER`` puts them in float16 ``.npy`` files instead
(memory-mapped; for sets larger than memory; keyed by the network's checksum, taps, size and the triplets,
so a second run on the same data reuses them). Float16 rounds each difference to ~3 significant digits, so
that mode is not bit-exact with lpips.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from percept.backbones.base import Backbone
from percept.errors import InputError, first_line
from percept.eval.learn.heads import unit_normalize_lpips
from percept.eval.sweep.chunks import file_signature

CACHE_FORMAT = "percept-learn-features/1"


def load_images(paths: Sequence[str], size: int | None) -> torch.Tensor:
    """Images as one ``(N, 3, S, S)`` float batch in [0, 1] (grey repeated to RGB), resized to ``size`` if given.

    The resize is bilinear and antialiased (:func:`percept.images.resize_image`); images already ``size`` x
    ``size`` (BAPPS' 64 x 64 patches) are left untouched, as lpips' ``Resize(64)`` leaves them.

    Raises:
        InputError: an image cannot be read, or (``size=None``) the images differ in size.

    Example:
        >>> load_images(["ref.png", "p0.png"], 64).shape  # doctest: +SKIP
        torch.Size([2, 3, 64, 64])
    """
    from percept.images import load_image, resize_image

    images = []
    for path in paths:
        image = load_image(path)
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        if size is not None and tuple(image.shape[-2:]) != (size, size):
            image = resize_image(image, size)
        images.append(image)
    shapes = {tuple(i.shape) for i in images}
    if len(shapes) > 1:
        raise InputError(f"images of different sizes {sorted(shapes)[:3]}; pass size=SIDE to resize them to one size")
    return torch.stack(images)


def tap_differences(
    backbone: Backbone, taps: Sequence[str], ref: torch.Tensor, others: Sequence[torch.Tensor]
) -> list[list[torch.Tensor]]:
    """Per other image batch, per tap: ``(u_ref - u_other)^2`` with lpips' unit normalisation, ``(N, C, h, w)``.

    ``ref`` and ``others`` run through the network in one batch. Gradients flow if enabled (a tuned trunk).

    Example:
        >>> d0, d1 = tap_differences(net, ["conv1"], ref, [p0, p1])  # doctest: +SKIP
    """
    n = ref.shape[0]
    features = backbone(torch.cat([ref, *others]), list(taps))
    out: list[list[torch.Tensor]] = [[] for _ in others]
    for tap in taps:
        units = unit_normalize_lpips(features[tap]).split(n)
        for k in range(len(others)):
            out[k].append((units[0] - units[k + 1]) ** 2)
    return out


@dataclass
class TripletFeatures:
    """Cached differences of a 2AFC set: per tap ``(T, C, h, w)`` maps, or ``(T, C)`` spatial means (``pooled``).

    Attributes:
        taps: tap names, in order.
        d0, d1: per tap, the differences of ``(ref, p0)`` and ``(ref, p1)``: float32 tensors, or float16
            memory-mapped arrays (on-disk cache).
        judge: ``(T,)`` fraction of people who chose ``p1``.
        subset: ``(T,)`` subset names.
    """

    taps: list[str]
    d0: list[Any]
    d1: list[Any]
    judge: torch.Tensor
    subset: np.ndarray

    def __len__(self) -> int:
        return int(self.judge.shape[0])

    @property
    def pooled(self) -> bool:
        """Whether the differences are spatial means ``(T, C)``."""
        return self.d0[0].ndim == 2

    def batch(self, index: np.ndarray, device: torch.device | str = "cpu") -> tuple[list, list, torch.Tensor]:
        """``(d0 per tap, d1 per tap, judge)`` of the triplets ``index``, float32 on ``device``."""

        def take(array) -> torch.Tensor:
            if isinstance(array, torch.Tensor):
                return array[torch.as_tensor(index)].to(device)
            return torch.from_numpy(np.asarray(array[np.sort(index)][np.argsort(np.argsort(index))])).float().to(device)

        return [take(a) for a in self.d0], [take(a) for a in self.d1], self.judge[torch.as_tensor(index)].to(device)


def _cache_key(db, backbone: Backbone, taps: Sequence[str], size: int | None, pooled: bool) -> str:
    from percept.backbones.weights import state_dict_checksum

    table = db.table
    digest = hashlib.sha256()
    for column in ("ref", "p0", "p1", "judge"):
        digest.update("\n".join(map(str, table[column].tolist())).encode())
    for path in sorted(set(table["ref"]) | set(table["p0"]) | set(table["p1"])):
        digest.update(file_signature(path).encode())  # an image changed under the same name is not the old one
    config = {"format": CACHE_FORMAT, "backbone": backbone.name, "weights": state_dict_checksum(backbone.model),
              "mean": backbone.mean.flatten().tolist(), "std": backbone.std.flatten().tolist(),
              "domain": list(backbone.norm_domain), "taps": list(taps), "size": size, "pooled": pooled,
              "triplets": digest.hexdigest()}  # fmt: skip
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:24]


class _Store:
    """Where the differences go: float32 tensors in memory, or float16 memmaps in a (temporary) folder."""

    def __init__(self, n: int, folder: Path | None) -> None:
        self.n, self.folder = n, folder
        self.arrays: dict[str, Any] = {}

    def put(self, key: str, start: int, value: torch.Tensor) -> None:
        if key not in self.arrays:
            shape = (self.n, *value.shape[1:])
            if self.folder is None:
                self.arrays[key] = torch.empty(shape, dtype=torch.float32)
            else:
                path = self.folder / f"{key}.npy"
                self.arrays[key] = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
        target = self.arrays[key]
        value = value.detach().cpu()
        if isinstance(target, torch.Tensor):
            target[start : start + value.shape[0]] = value
        else:
            target[start : start + value.shape[0]] = value.numpy().astype(np.float16)


def triplet_features(
    db,
    backbone: Backbone,
    taps: Sequence[str],
    *,
    size: int | None = 64,
    pooled: bool = False,
    batch: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = False,
    cache: str | os.PathLike | None = None,
) -> TripletFeatures:
    """Compute (or read from ``cache``) the per-tap differences of every triplet of ``db``, once.

    Args:
        db: a :class:`~percept.eval.datasets.model.TwoAFCDatabase`.
        backbone: the frozen network (on ``device``).
        taps: tap names.
        size: images resized to ``size`` x ``size`` (``None``: as they are).
        pooled: keep spatial means ``(T, C)`` only (exact without dropout).
        batch: triplets per forward pass (3 images each).
        device: where the network runs.
        progress: a progress bar.
        cache: a folder for float16 ``.npy`` files (reused when the same network, taps, size and triplets
            come again); ``None``: float32 in memory.

    Returns:
        :class:`TripletFeatures`.

    Example:
        >>> feats = triplet_features(db, create_backbone("alexnet", weights=None), ["conv1"])  # doctest: +SKIP
        >>> feats.d0[0].shape  # doctest: +SKIP
        torch.Size([200, 64, 15, 15])
    """
    from tqdm.auto import tqdm

    table = db.table
    n = len(table)
    if n == 0:
        raise InputError(f"the 2AFC set '{db.name}' has no triplets")
    judge = torch.tensor(table["judge"].to_numpy(dtype=np.float32))
    subset = table["subset"].astype(str).to_numpy() if "subset" in table else np.full(n, db.name)
    folder = final = None
    if cache is not None:
        final = Path(cache) / _cache_key(db, backbone, taps, size, pooled)
        if (final / "done.json").exists():
            cached = _read_cache(final, taps, judge, subset)
            if cached is not None:
                return cached
        folder = final.with_name(final.name + f".tmp{os.getpid()}")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    store = _Store(n, folder)
    with torch.no_grad():
        starts = range(0, n, batch)
        for start in tqdm(starts, desc="features", disable=not progress, leave=False):
            rows = table.iloc[start : start + batch]
            images = [load_images(rows[k].tolist(), size).to(device) for k in ("ref", "p0", "p1")]
            d0, d1 = tap_differences(backbone, taps, images[0], images[1:])
            for i in range(len(taps)):
                for name, diff in (("d0", d0[i]), ("d1", d1[i])):
                    store.put(f"{name}_{i}", start, diff.mean([2, 3]) if pooled else diff)
    if folder is not None and final is not None:
        for array in store.arrays.values():
            array.flush()
        (folder / "done.json").write_text(json.dumps({"taps": list(taps), "n": n}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(folder, final)
        cached = _read_cache(final, taps, judge, subset)
        if cached is None:
            raise InputError(f"the feature cache '{final}' just written cannot be read back (is the disk full?)")
        return cached
    arrays = store.arrays
    return TripletFeatures(list(taps), [arrays[f"d0_{i}"] for i in range(len(taps))],
                           [arrays[f"d1_{i}"] for i in range(len(taps))], judge, subset)  # fmt: skip


def _read_cache(folder: Path, taps: Sequence[str], judge: torch.Tensor, subset: np.ndarray) -> TripletFeatures | None:
    """The cached differences in ``folder``, validated (files, shapes, dtype, finiteness) before reuse.

    A cache that fails a check is not used: a warning names it and the features are computed again (``None``).
    """
    n = len(judge)
    try:
        done = json.loads((folder / "done.json").read_text())
        arrays = {f"{name}_{i}": np.load(folder / f"{name}_{i}.npy", mmap_mode="r")
                  for name in ("d0", "d1") for i in range(len(taps))}  # fmt: skip
        problem = None
        if done != {"taps": list(taps), "n": n}:
            problem = f"it records {done}, expected taps {list(taps)} and {n} triplets"
        for key, array in arrays.items():
            if problem is None and (array.dtype != np.float16 or array.shape[0] != n):
                problem = f"{key}.npy holds {array.dtype} of shape {array.shape}, expected float16 with {n} rows"
            if problem is None and not np.isfinite(array).all():
                problem = f"{key}.npy holds NaN or Inf"
    except (OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        problem = f"it cannot be read ({first_line(exc)})"
    if problem is not None:
        warnings.warn(f"'{folder}' is not a usable feature cache ({problem}); computing it again", stacklevel=3)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return TripletFeatures(list(taps), [arrays[f"d0_{i}"] for i in range(len(taps))],
                           [arrays[f"d1_{i}"] for i in range(len(taps))], judge, subset)  # fmt: skip
