"""NIGHTS (Fu, Tamir et al. 2023, the data set DreamSim was tuned on): ``nights/{ref,distort}/`` and ``data.csv``."""

from __future__ import annotations

import os
from pathlib import Path

from percept.eval.datasets.files import require_file, require_path
from percept.eval.datasets.model import DatabaseError, TwoAFCDatabase
from percept.eval.datasets.tables import parse_number, read_text_table, require_cells

LAYOUT = (
    "the NIGHTS layout: nights/ref/000/000.png, nights/distort/000/000_0.png and 000_1.png, and nights/data.csv "
    "with columns id,left_vote,right_vote,votes,ref_path,left_path,right_path,split,is_imagenet"
)
REQUIRED = ("left_vote", "right_vote", "ref_path", "left_path", "right_path", "split")


def read_nights(root: str | os.PathLike, *, min_votes: int | None = None) -> TwoAFCDatabase:
    """Read NIGHTS as distributed: ``data.csv`` beside ``ref/`` and ``distort/``.

    ``data.csv`` names each triplet's images (``ref_path``, ``left_path``, ``right_path``, relative to
    the folder) and the votes for each side (``left_vote``, ``right_vote``: fractions, or counts). The
    left image is ``p0`` and the right one ``p1``, so ``judge = right_vote / (left_vote + right_vote)``
    (DreamSim's ``right_vote`` itself). The subset is ``train/nights`` or ``val/nights`` from ``split``,
    and test triplets are ``test/imagenet`` or ``test/no_imagenet`` by ``is_imagenet`` (DreamSim's
    ``test_imagenet`` and ``test_no_imagenet``; ``test/nights`` without that column).

    Args:
        root: the ``nights`` folder (or the folder holding it).
        min_votes: keep only triplets with at least this many votes (the ``votes`` column); DreamSim's
            training and evaluation keep those with ``votes >= 6``. Default: every triplet.

    Returns:
        A :class:`TwoAFCDatabase` named ``"nights"``.

    Raises:
        DatabaseError: ``data.csv`` is missing or malformed (a missing column, a vote that is not a
            number, votes summing to 0), or an image it names does not exist; the message names the file,
            the line and the layout expected.

    Example:
        >>> db = read_nights("/data/nights", min_votes=6)  # doctest: +SKIP
        >>> db.table[db.table["subset"] == "test/imagenet"].shape[1]  # doctest: +SKIP
        5
    """
    import pandas as pd

    root = Path(root)
    base = root if (root / "data.csv").exists() or not (root / "nights").is_dir() else root / "nights"
    table_file = require_file(require_path(base, LAYOUT) / "data.csv", LAYOUT)
    columns = REQUIRED + (("votes",) if min_votes is not None else ())
    table = read_text_table(table_file, LAYOUT, columns)
    rows = []
    for where, record in table.rows:
        require_cells(where, record, columns, LAYOUT)
        if min_votes is not None and parse_number(record["votes"], where, LAYOUT, "votes") < min_votes:
            continue
        left = parse_number(record["leftvote"], where, LAYOUT, "left_vote")
        right = parse_number(record["rightvote"], where, LAYOUT, "right_vote")
        if left < 0 or right < 0 or left + right <= 0:
            raise DatabaseError(f"{where}: votes left_vote={left}, right_vote={right}; expected non-negative votes "
                                f"with a positive sum; expected {LAYOUT}")  # fmt: skip
        paths = {}
        for key, column in (("ref", "refpath"), ("p0", "leftpath"), ("p1", "rightpath")):
            image = base / record[column]
            if not image.is_file():
                raise DatabaseError(f"'{image}' (named in {where}) does not exist; paths are relative to '{base}'; "
                                    f"expected {LAYOUT}")  # fmt: skip
            paths[key] = str(image)
        rows.append({**paths, "judge": right / (left + right), "subset": _subset(record)})
    if not rows:
        kept = "" if min_votes is None else f" with at least {min_votes} votes"
        raise DatabaseError(f"'{table_file}' lists no triplets{kept}; expected {LAYOUT}")
    return TwoAFCDatabase("nights", pd.DataFrame(rows, columns=["ref", "p0", "p1", "judge", "subset"]), base)


def _subset(record: dict[str, str]) -> str:
    split = record["split"].strip().lower()
    if split != "test":
        return f"{split}/nights"
    flag = record.get("isimagenet", "").strip().lower()
    if flag in ("true", "1", "1.0", "yes"):
        return "test/imagenet"
    if flag in ("false", "0", "0.0", "no"):
        return "test/no_imagenet"
    return "test/nights"
