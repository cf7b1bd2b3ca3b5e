"""TID2013 and TID2008 (Ponomarenko et al.): ``mos_with_names.txt`` beside ``reference_images/`` and
``distorted_images/``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from percept.eval.datasets.files import find_file, index_folder, read_lines
from percept.eval.datasets.model import DatabaseError, IQADatabase
from percept.eval.datasets.tables import iqa_frame, parse_number

TID2013_TYPES = (
    "additive gaussian noise",
    "additive noise in color components",
    "spatially correlated noise",
    "masked noise",
    "high frequency noise",
    "impulse noise",
    "quantization noise",
    "gaussian blur",
    "image denoising",
    "jpeg compression",
    "jpeg2000 compression",
    "jpeg transmission errors",
    "jpeg2000 transmission errors",
    "non eccentricity pattern noise",
    "local block-wise distortions",
    "mean shift",
    "contrast change",
    "change of color saturation",
    "multiplicative gaussian noise",
    "comfort noise",
    "lossy compression of noisy images",
    "image color quantization with dither",
    "chromatic aberrations",
    "sparse sampling and reconstruction",
)

_TID_NAME = re.compile(r"^i(\d+)_(\d+)_(\d+)\.bmp$", re.IGNORECASE)


def _read_tid(root: Path, name: str, types: tuple[str, ...] | None) -> IQADatabase:
    layout = (
        f"the {name.upper()} layout: reference_images/I01.BMP, distorted_images/i01_01_1.bmp and "
        "mos_with_names.txt with lines '<MOS> <distorted file name>'"
    )
    scores_file = root / "mos_with_names.txt"
    lines = read_lines(scores_file, layout)
    refs = index_folder(root / "reference_images", layout)
    dists = index_folder(root / "distorted_images", layout)
    rows = []
    for number, line in lines:
        where = f"'{scores_file}' line {number}"
        parts = line.split()
        if len(parts) != 2:
            raise DatabaseError(
                f"{where}: expected 2 fields '<MOS> <file name>', got {len(parts)}: {line.strip()!r}; expected {layout}"
            )
        score = parse_number(parts[0], where, layout)
        match = _TID_NAME.match(parts[1])
        if match is None:
            raise DatabaseError(f"{where}: expected a file name like i01_01_1.bmp, got {parts[1]!r}; expected {layout}")
        ref_number, kind, level = (int(g) for g in match.groups())
        ref_id = f"I{ref_number:02d}"
        dist = find_file(dists, parts[1], root / "distorted_images", scores_file, layout)
        ref = find_file(refs, f"{ref_id}.bmp", root / "reference_images", scores_file, layout)
        distortion = types[kind - 1] if types and 0 < kind <= len(types) else f"type{kind:02d}"
        rows.append(dict(dist=str(dist), ref=str(ref), ref_id=ref_id, score=score, distortion=distortion, level=level))
    return IQADatabase(name, iqa_frame(rows, scores_file, layout), True, "MOS", root)


def read_tid2013(root: str | os.PathLike) -> IQADatabase:
    """Read TID2013 (Ponomarenko et al. 2015): 25 references, 24 distortions x 5 levels, MOS 0..9.

    Args:
        root: the folder holding ``reference_images/``, ``distorted_images/`` and ``mos_with_names.txt``.

    Returns:
        An :class:`IQADatabase` of 3000 rows, ``higher_is_better=True``, level 1 (mildest) .. 5.

    Raises:
        DatabaseError: a file is missing or a line is malformed (the message names it).

    Example:
        >>> read_tid2013("/data/tid2013").table.iloc[0]["dist"]  # doctest: +SKIP
        '/data/tid2013/distorted_images/i01_01_1.bmp'
    """
    return _read_tid(Path(root), "tid2013", TID2013_TYPES)


def read_tid2008(root: str | os.PathLike) -> IQADatabase:
    """Read TID2008: 25 references, 17 distortions x 4 levels, MOS 0..9, in TID2013's layout.

    Args:
        root: the folder holding ``reference_images/``, ``distorted_images/`` and ``mos_with_names.txt``.

    Returns:
        An :class:`IQADatabase` of 1700 rows, ``higher_is_better=True``.

    Example:
        >>> len(read_tid2008("/data/tid2008"))  # doctest: +SKIP
        1700
    """
    return _read_tid(Path(root), "tid2008", TID2013_TYPES[:17])
