"""Chunks of one reference's distorted images: loading them, their result files, and which files a rerun
resumes from."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path

import torch

from percept.errors import InputError, first_line
from percept.eval.datasets import IQADatabase
from percept.eval.sweep.taps import SweepTap
from percept.images import resize_image


def _resize(image: torch.Tensor, size: int | tuple[int, int] | None) -> torch.Tensor:
    return image if size is None else resize_image(image, size)


def as_rgb(image: torch.Tensor) -> torch.Tensor:
    """A one-channel (grey) image ``(1, H, W)`` as three equal channels ``(3, H, W)``; others as they are.

    Example:
        >>> as_rgb(torch.zeros(1, 2, 2)).shape
        torch.Size([3, 2, 2])
    """
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image


class ChunkDataset(torch.utils.data.Dataset):
    """Chunks of one reference's distorted images: ``(ref (3, H, W), dists (B, 3, H, W), rows (B,))``.

    Args:
        db: the database.
        chunks: ``[(ref_id, [row indices])]`` from :func:`make_chunks`.
        resize: ``None`` (native resolution), a side, or ``(height, width)``.
    """

    def __init__(self, db: IQADatabase, chunks: list[tuple[str, list[int]]], resize=None) -> None:
        self.table = db.table[["ref", "dist"]].reset_index(drop=True)
        self.chunks = chunks
        self.resize = resize

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int):
        from percept.images import load_image

        _, rows = self.chunks[i]
        ref = as_rgb(_resize(load_image(self.table.at[rows[0], "ref"]), self.resize))
        dists = []
        for row in rows:
            image = as_rgb(_resize(load_image(self.table.at[row, "dist"]), self.resize))
            if image.shape != ref.shape:
                raise InputError(
                    f"'{self.table.at[row, 'dist']}' is {tuple(image.shape[1:])} pixels but its reference "
                    f"'{self.table.at[row, 'ref']}' is {tuple(ref.shape[1:])}; pass resize= (CLI: --resize)"
                )
            dists.append(image)
        return ref, torch.stack(dists), torch.tensor(rows)


def make_chunks(db: IQADatabase, batch_size: int) -> list[tuple[str, list[int]]]:
    """Split each reference's rows into chunks of at most ``batch_size`` (order: references as they appear).

    Example:
        >>> make_chunks(db, 2)[:2]  # doctest: +SKIP
        [('I01', [0, 1]), ('I01', [2, 3])]
    """
    from percept.eval.datasets import iter_reference_groups

    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    chunks: list[tuple[str, list[int]]] = []
    for ref_id, rows in iter_reference_groups(db):
        chunks.extend((ref_id, rows[i : i + batch_size]) for i in range(0, len(rows), batch_size))
    return chunks


def iterate_chunks(
    db: IQADatabase,
    chunks: list[tuple[str, list[int]]],
    *,
    resize=None,
    workers: int = 0,
    skip: AbstractSet[int] = frozenset(),
) -> Iterator[tuple[int, str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(chunk index, ref_id, ref (1, 3, H, W), dists (B, 3, H, W), rows (B,))`` through a DataLoader.

    Chunks in ``skip`` (already done) are not loaded.
    """
    todo = [i for i in range(len(chunks)) if i not in skip]
    dataset = torch.utils.data.Subset(ChunkDataset(db, chunks, resize), todo)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, shuffle=False)
    for i, (ref, dists, rows) in zip(todo, loader, strict=True):
        yield i, chunks[i][0], ref[None], dists, rows


def chunk_progress(iterable, total: int, desc: str, enabled: bool):
    """``iterable`` behind a tqdm progress bar counting ``total`` chunks (``enabled``), else as it is.

    Example:
        >>> list(chunk_progress(range(2), 2, "alexnet", False))
        [0, 1]
    """
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="chunk")


def chunk_file_name(db: IQADatabase, chunks: list[tuple[str, list[int]]], index: int) -> str:
    """The name of chunk ``index``'s result file, ``c<index>-<images>.csv``: ``<images>`` hashes the chunk's
    image files (path, size, modification time), so a chunk computed from images that have changed since is not
    taken for this one.

    Example:
        >>> chunk_file_name(db, make_chunks(db, 8), 0)  # doctest: +SKIP
        'c000000-3f2a9c1b7e.csv'
    """
    table = db.table
    _, rows = chunks[index]
    parts = []
    for path in [table["ref"].iloc[rows[0]], *table["dist"].iloc[rows]]:
        parts.append(file_signature(path))
    return f"c{index:06d}-{hashlib.sha1(chr(10).join(parts).encode()).hexdigest()[:10]}.csv"


def valid_chunks(
    partial: Path,
    chunks: list[tuple[str, list[int]]],
    mine: set[int],
    db: IQADatabase,
    taps: Sequence[SweepTap],
    measures: Sequence[str],
) -> set[int]:
    """The chunks of ``mine`` whose file in ``partial`` is whole and current: computed from the images as they
    are now, every (tap, measure) for every pair of the chunk, finite distances. Any other file (stale,
    truncated, empty, garbage, a stray name) is named in a warning and its chunk computed again.

    Example:
        >>> everything = set(range(len(chunks)))  # doctest: +SKIP
        >>> valid_chunks(Path("out/partial/alexnet-0123"), chunks, everything, db, taps, ["mse"])  # doctest: +SKIP
        {0, 1, 2}
    """
    import numpy as np
    import pandas as pd

    expected = {(t.name, m) for t in taps for m in measures}
    valid: set[int] = set()
    for path in sorted(partial.iterdir()):
        if path.name.startswith("."):
            continue  # a temporary file of a write in progress elsewhere
        stem, _, _ = path.name.partition("-")
        index = int(stem[1:]) if stem[:1] == "c" and stem[1:].isdigit() and path.suffix == ".csv" else None
        if index is None or index >= len(chunks):
            warnings.warn(f"'{path}' is not a chunk of this sweep; left alone", stacklevel=3)
            continue
        if index not in mine:
            continue
        if path.name != chunk_file_name(db, chunks, index):
            warnings.warn(
                f"'{path}' was computed from images that have changed since; computing it again", stacklevel=3
            )
            path.unlink(missing_ok=True)
            continue
        problem = None
        try:
            frame = pd.read_csv(path)
            rows = set(chunks[index][1])
            if list(frame.columns) != ["tap", "measure", "pair", "distance"]:
                problem = f"columns {list(frame.columns)}"
            elif len(frame) != len(rows) * len(expected):
                problem = f"{len(frame)} rows, expected {len(rows) * len(expected)}"
            elif set(zip(frame["tap"].astype(str), frame["measure"].astype(str), strict=True)) != expected:
                problem = "other taps or measures"
            elif set(frame["pair"].astype(int)) != rows:
                problem = "other pairs"
            elif not np.isfinite(frame["distance"].to_numpy(dtype=float)).all():
                problem = "distances that are not finite numbers"
        except (ValueError, TypeError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            problem = f"unreadable ({first_line(exc, with_type=True)})"
        if problem is None:
            valid.add(index)
        else:
            warnings.warn(f"'{path}' is not a whole chunk of this sweep ({problem}); computing it again", stacklevel=3)
    return valid


def file_signature(path: str | os.PathLike) -> str:
    """``path:size:modification time`` of a file (``path:missing`` if it cannot be read): what results computed
    from it are keyed by, so a file changed under the same name is not taken for the old one.

    Example:
        >>> file_signature("/nonexistent.png")
        '/nonexistent.png:missing'
    """
    try:
        stat = os.stat(path)
    except OSError:
        return f"{os.fspath(path)}:missing"
    return f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}"


def weights_key(weights):
    """``weights`` as a cache key: a file by :func:`file_signature` (its content may change), a tag as it is."""
    return file_signature(weights) if isinstance(weights, str | os.PathLike) and os.path.isfile(weights) else weights


def image_side(resize) -> tuple[int, int]:
    """``(height, width)`` of a ``resize`` given as a side or a pair."""
    return (resize, resize) if isinstance(resize, int) else (int(resize[0]), int(resize[1]))
