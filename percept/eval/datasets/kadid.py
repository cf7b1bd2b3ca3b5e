"""KADID-10k (Lin et al. 2019): ``dmos.csv`` and ``images/``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from percept.eval.datasets.files import find_file, index_folder
from percept.eval.datasets.model import DatabaseError, IQADatabase
from percept.eval.datasets.tables import iqa_frame, parse_number, read_text_table, require_cells

KADID_TYPES = (
    "gaussian blur",
    "lens blur",
    "motion blur",
    "color diffusion",
    "color shift",
    "color quantization",
    "color saturation 1",
    "color saturation 2",
    "jpeg2000",
    "jpeg",
    "white noise",
    "white noise in color component",
    "impulse noise",
    "multiplicative noise",
    "denoise",
    "brighten",
    "darken",
    "mean shift",
    "jitter",
    "non-eccentricity patch",
    "pixelate",
    "quantization",
    "color block",
    "high sharpen",
    "contrast change",
)

_KADID_NAME = re.compile(r"^I(\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)


def read_kadid10k(root: str | os.PathLike) -> IQADatabase:
    """Read KADID-10k (Lin et al. 2019): 81 references, 25 distortions x 5 levels, MOS 1..5.

    Args:
        root: the folder holding ``dmos.csv`` (columns ``dist_img,ref_img,dmos,var``) and ``images/``.

    Returns:
        An :class:`IQADatabase` of 10125 rows. The column is called ``dmos`` but holds mean opinion
        scores (5: imperceptible), so ``higher_is_better=True``.

    Example:
        >>> read_kadid10k("/data/kadid10k").table["distortion"].iloc[0]  # doctest: +SKIP
        'gaussian blur'
    """
    root = Path(root)
    layout = "the KADID-10k layout: dmos.csv with columns dist_img,ref_img,dmos,var and images/I01_01_01.png"
    scores_file = root / "dmos.csv"
    table = read_text_table(scores_file, layout, ("dist_img", "ref_img", "dmos"))
    images = index_folder(root / "images", layout)
    rows = []
    for where, record in table.rows:
        require_cells(where, record, ("dist_img", "ref_img", "dmos"), layout)
        match = _KADID_NAME.match(record["distimg"])
        if match is None:
            raise DatabaseError(f"{where}: expected a file name like I01_01_01.png, got {record['distimg']!r}; "
                                f"expected {layout}")  # fmt: skip
        _, kind, level = (int(g) for g in match.groups())
        score = parse_number(record["dmos"], where, layout)
        rows.append(
            dict(
                dist=str(find_file(images, record["distimg"], root / "images", scores_file, layout)),
                ref=str(find_file(images, record["refimg"], root / "images", scores_file, layout)),
                ref_id=Path(record["refimg"]).stem.upper(),
                score=score,
                distortion=KADID_TYPES[kind - 1] if 0 < kind <= len(KADID_TYPES) else f"type{kind:02d}",
                level=level,
            )
        )
    return IQADatabase("kadid10k", iqa_frame(rows, scores_file, layout), True, "MOS", root)
