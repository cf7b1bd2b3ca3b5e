"""The data model of the IQA database readers: :class:`IQADatabase`, :class:`TwoAFCDatabase`,
:class:`JNDDatabase`, the columns every reader fills, and :class:`DatabaseError`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from percept.errors import PerceptError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import torch


COLUMNS = ["dist", "ref", "ref_id", "score", "distortion", "level"]


class DatabaseError(PerceptError):
    """A database file is missing or malformed; the message names the file and the layout expected."""


@dataclass
class IQADatabase:
    """A full-reference image-quality database: one row per distorted image.

    Attributes:
        name: the database (``"tid2013"``, ``"cidiq-50"``, ...).
        table: pandas DataFrame with columns ``dist`` and ``ref`` (absolute paths, str), ``ref_id``
            (str), ``score`` (float), ``distortion`` (str), ``level`` (float; NaN where unknown).
        higher_is_better: True for MOS-like scores (higher: better quality), False for DMOS.
        score_name: what the scores are (``"MOS"``, ``"DMOS"``, ``"Elo"``).
        root: the folder it was read from.

    Example:
        >>> db = load_database("kadid10k", "/data/kadid10k")  # doctest: +SKIP
        >>> db.table.groupby("ref_id").size().head(2)  # doctest: +SKIP
    """

    name: str
    table: pd.DataFrame
    higher_is_better: bool
    score_name: str = "MOS"
    root: Path = field(default_factory=Path)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def references(self) -> list[str]:
        """Reference ids, in order of first appearance."""
        return list(dict.fromkeys(self.table["ref_id"]))

    @property
    def quality(self):
        """Scores oriented so that higher is better quality (DMOS negated), as a numpy array ``(N,)``."""
        scores = self.table["score"].to_numpy(dtype=float)
        return scores if self.higher_is_better else -scores

    def subset(self, mask) -> IQADatabase:
        """The rows where boolean ``mask`` (length N) holds, as a new database."""
        return IQADatabase(self.name, self.table[mask].reset_index(drop=True), self.higher_is_better,
                           self.score_name, self.root)  # fmt: skip

    def load_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference and distorted image of row ``index``, each ``(C, H, W)`` float in [0, 1]."""
        from percept.images import load_image

        row = self.table.iloc[index]
        return load_image(row["ref"]), load_image(row["dist"])


@dataclass
class TwoAFCDatabase:
    """A two-alternative forced-choice set (BAPPS, NIGHTS, a triplet manifest): which of two distortions
    is closer to the reference.

    Attributes:
        name: ``"bapps"``, ``"nights"``, or the manifest's name.
        table: DataFrame with ``ref``, ``p0``, ``p1`` (paths), ``judge`` (fraction of people who chose
            ``p1`` as closer, in [0, 1]), ``subset`` (``<split>/<set>``: ``train/cnn``, ``val/traditional``,
            ``test/imagenet``, ...).
        root: the folder read.

    Example:
        >>> db = load_database("nights", "/data/nights")  # doctest: +SKIP
        >>> sorted(db.table["subset"].unique())  # doctest: +SKIP
        ['test/imagenet', 'test/no_imagenet', 'train/nights', 'val/nights']
    """

    name: str
    table: pd.DataFrame
    root: Path = field(default_factory=Path)

    def __len__(self) -> int:
        return len(self.table)


@dataclass
class JNDDatabase:
    """A just-noticeable-difference set (BAPPS' JND): are two images the same to people?

    Attributes:
        name: ``"bapps-jnd"``.
        table: DataFrame with ``p0``, ``p1`` (paths), ``same`` (fraction of people who judged the pair
            the same, in [0, 1]), ``subset`` (``val/cnn``, ``val/traditional``).
        root: the folder read.

    Example:
        >>> db = load_database("bapps-jnd", "/data/bapps")  # doctest: +SKIP
        >>> db.table.columns.tolist()  # doctest: +SKIP
        ['p0', 'p1', 'same', 'subset']
    """

    name: str
    table: pd.DataFrame
    root: Path = field(default_factory=Path)

    def __len__(self) -> int:
        return len(self.table)


def iter_reference_groups(db: IQADatabase) -> Iterator[tuple[str, list[int]]]:
    """``(ref_id, row indices)`` per reference, in order of first appearance.

    Example:
        >>> [(r, len(ix)) for r, ix in iter_reference_groups(db)][:1]  # doctest: +SKIP
        [('I01', 120)]
    """
    groups: dict[str, list[int]] = {}
    for i, ref in enumerate(db.table["ref_id"]):
        groups.setdefault(ref, []).append(i)
    yield from groups.items()
