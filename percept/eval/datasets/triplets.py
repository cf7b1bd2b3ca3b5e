"""A CSV manifest of 2AFC triplets: ``ref,p0,p1,judge[,split]``, for any set of judged triplets."""

from __future__ import annotations

import os
from pathlib import Path

from percept.eval.datasets.files import require_file
from percept.eval.datasets.model import DatabaseError, TwoAFCDatabase
from percept.eval.datasets.tables import parse_number, read_text_table, require_cells

LAYOUT = (
    "a CSV triplet manifest with a header row and columns ref,p0,p1,judge (optional split): image paths relative "
    "to the manifest's folder (or root), judge the fraction of people who chose p1 as closer to ref, in [0, 1]"
)


def read_triplets(
    path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    *,
    split: str = "val",
    name: str | None = None,
) -> TwoAFCDatabase:
    """Read a 2AFC triplet manifest: a CSV file with a header and columns ``ref, p0, p1, judge`` (``split``).

    Each row is one triplet: a reference, two distortions of it, and ``judge``, the fraction of people
    who found ``p1`` closer to the reference (0: all chose ``p0``; 1: all chose ``p1``). The subset of
    a row is ``<split>/<name>``: its ``split`` cell (``train``, ``val``, ``test``; a cell that holds a
    ``/`` is the subset itself), or ``split`` for a manifest without that column.

    Args:
        path: the manifest (comma or tab separated, with a header row; column names ignore case).
        root: the folder image paths are relative to (default: the manifest's folder).
        split: the split of every row when the manifest has no ``split`` column.
        name: the database's name, and the set in the subsets (default: the file's stem).

    Returns:
        A :class:`TwoAFCDatabase`.

    Raises:
        DatabaseError: the manifest is missing, empty or malformed (no header, a missing column, a
            judge that is not a number in [0, 1], an empty cell), or an image it names does not exist;
            the message names the file, the line and the layout expected.

    Example:
        >>> db = read_triplets("judged/triplets.csv")  # doctest: +SKIP
        >>> sorted(db.table["subset"].unique())  # doctest: +SKIP
        ['train/triplets', 'val/triplets']
    """
    import pandas as pd

    path = Path(path)
    require_file(path, LAYOUT)
    root = path.parent if root is None else Path(root)
    name = name or path.stem
    table = read_text_table(path, LAYOUT, ("ref", "p0", "p1", "judge"))
    has_split = "split" in table.columns
    rows = []
    for where, record in table.rows:
        require_cells(where, record, ("ref", "p0", "p1", "judge") + (("split",) if has_split else ()), LAYOUT)
        judge = parse_number(record["judge"], where, LAYOUT, "judge")
        if not 0.0 <= judge <= 1.0:
            shown = record["judge"]
            raise DatabaseError(f"{where}: the judge {shown!r} is not a fraction in [0, 1]; expected {LAYOUT}")
        paths = {}
        for key in ("ref", "p0", "p1"):
            image = root / record[key]
            if not image.is_file():
                raise DatabaseError(f"'{image}' (named in {where}) does not exist; paths are relative to '{root}'; "
                                    f"expected {LAYOUT}")  # fmt: skip
            paths[key] = str(image)
        part = record["split"].strip() if has_split else split
        rows.append({**paths, "judge": judge, "subset": part if "/" in part else f"{part}/{name}"})
    return TwoAFCDatabase(name, pd.DataFrame(rows, columns=["ref", "p0", "p1", "judge", "subset"]), root)
