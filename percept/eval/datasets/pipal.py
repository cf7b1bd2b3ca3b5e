"""PIPAL's training set (Jinjin et al. 2020): ``Train_Ref/``, ``Train_Dis/``, ``Train_Label/*.txt``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from percept.eval.datasets.files import find_file, index_folder, read_lines, require_path
from percept.eval.datasets.model import DatabaseError, IQADatabase
from percept.eval.datasets.tables import iqa_frame, parse_number

_PIPAL_NAME = re.compile(r"^(A\d+)_(\d+)_(\d+)\.bmp$", re.IGNORECASE)


def read_pipal(root: str | os.PathLike) -> IQADatabase:
    """Read PIPAL's training set (Jinjin et al. 2020): 200 references, 116 distortions each, Elo scores.

    Args:
        root: the folder holding ``Train_Ref/A0001.bmp``, ``Train_Dis/A0001_00_00.bmp`` and
            ``Train_Label/*.txt`` (lines ``A0001_00_00.bmp,1520.0648``).

    Returns:
        An :class:`IQADatabase`, ``higher_is_better=True`` (Elo: preferred more often); ``distortion`` is
        the name's first number (the distortion group), ``level`` its second (the variant in the group,
        not an ordered strength).

    Example:
        >>> read_pipal("/data/pipal").score_name  # doctest: +SKIP
        'Elo'
    """
    root = Path(root)
    layout = "the PIPAL layout: Train_Ref/A0001.bmp, Train_Dis/A0001_00_00.bmp, Train_Label/A0001.txt (name,score)"
    labels = require_path(root / "Train_Label", layout)
    refs = index_folder(root / "Train_Ref", layout)
    dists = index_folder(root / "Train_Dis", layout)
    rows = []
    label_files = sorted(labels.glob("*.txt"))
    if not label_files:
        raise DatabaseError(f"'{labels}' holds no .txt label files; expected {layout}")
    labelled = {p.stem.lower() for p in label_files}
    for name in sorted(refs):
        if Path(name).stem not in labelled:
            raise DatabaseError(
                f"'{labels / (Path(refs[name]).stem + '.txt')}' does not exist (the labels of reference "
                f"'{refs[name]}'); expected {layout}"
            )
    for label_file in label_files:
        for number, line in read_lines(label_file, layout):
            where = f"'{label_file}' line {number}"
            parts = [p.strip() for p in line.split(",")]
            match = _PIPAL_NAME.match(parts[0])
            if len(parts) != 2 or match is None:
                raise DatabaseError(f"{where}: expected 2 fields 'A0001_00_00.bmp,<score>', got {line.strip()!r}; "
                                    f"expected {layout}")  # fmt: skip
            ref_id = match.group(1).upper()
            rows.append(
                dict(
                    dist=str(find_file(dists, parts[0], root / "Train_Dis", label_file, layout)),
                    ref=str(find_file(refs, f"{ref_id}.bmp", root / "Train_Ref", label_file, layout)),
                    ref_id=ref_id,
                    score=parse_number(parts[1], where, layout),
                    distortion=f"group{int(match.group(2)):02d}",
                    level=int(match.group(3)),
                )
            )
    return IQADatabase("pipal", iqa_frame(rows, labels, layout), True, "Elo", root)
