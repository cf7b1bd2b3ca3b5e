"""LIVE image quality release 2 (Sheikh et al. 2006): five distortion folders and MATLAB score files."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

from percept.eval.datasets.files import find_file, index_folder, load_mat, mat_vector, require_file
from percept.eval.datasets.model import DatabaseError, IQADatabase
from percept.eval.datasets.tables import iqa_frame, parse_number

LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))


def read_live(root: str | os.PathLike, realigned: bool | None = None) -> IQADatabase:
    """Read LIVE image quality release 2 (Sheikh et al. 2006): 29 references, 5 distortions, DMOS.

    Args:
        root: the folder holding ``refimgs/``, ``jp2k/``, ``jpeg/``, ``wn/``, ``gblur/``, ``fastfading/``
            (each with ``img<k>.bmp`` and ``info.txt``: ``<reference> <image> <parameter>`` per line),
            ``dmos.mat`` and ``refnames_all.mat``.
        realigned: use ``dmos_realigned.mat`` (``dmos_new``) instead of ``dmos.mat``; default: the
            realigned scores when that file is present.

    Returns:
        An :class:`IQADatabase` of 779 rows (the 203 entries marked ``orgs == 1`` are the references
        themselves and are left out), ``higher_is_better=False``. ``level`` is the distortion parameter
        from ``info.txt`` (JPEG2000 bit rate, JPEG quality, noise sigma, blur sigma, channel bit rate)
        where the file is there, else NaN.

    Example:
        >>> read_live("/data/live").table["distortion"].unique().tolist()  # doctest: +SKIP
        ['jp2k', 'jpeg', 'wn', 'gblur', 'fastfading']
    """
    root = Path(root)
    layout = (
        "the LIVE release 2 layout: refimgs/, jp2k/ jpeg/ wn/ gblur/ fastfading/ with img<k>.bmp, dmos.mat "
        "(dmos, orgs) or dmos_realigned.mat (dmos_new, orgs), and refnames_all.mat (refnames_all)"
    )
    realigned_file = root / "dmos_realigned.mat"
    if realigned is None:
        realigned = realigned_file.exists()
    dmos_file = require_file(realigned_file if realigned else root / "dmos.mat", layout)
    names_file = require_file(root / "refnames_all.mat", layout)
    mat, names_mat = load_mat(dmos_file, layout), load_mat(names_file, layout)
    try:
        dmos = mat_vector(mat, ("dmos_new",) if realigned else ("dmos",), dmos_file, layout).astype(float)
        orgs = mat_vector(mat, ("orgs",), dmos_file, layout).astype(float)
    except (TypeError, ValueError) as exc:
        raise DatabaseError(f"'{dmos_file}' holds non-numeric dmos or orgs values ({exc}); expected {layout}") from None
    refnames = [str(n.reshape(-1)[0]) if hasattr(n, "reshape") and n.size else str(n)
                for n in mat_vector(names_mat, ("refnames_all",), names_file, layout)]  # fmt: skip
    total = sum(n for _, n in LIVE_FOLDERS)
    for what, vector, source in (
        ("dmos", dmos, dmos_file),
        ("orgs", orgs, dmos_file),
        ("refnames", refnames, names_file),
    ):
        if len(vector) != total:
            raise DatabaseError(f"'{source}': {what} has {len(vector)} entries, expected {total}; expected {layout}")
    refs = index_folder(root / "refimgs", layout)
    rows = []
    position = 0
    for folder, count in LIVE_FOLDERS:
        files = index_folder(root / folder, layout)
        params: dict[str, float] = {}
        info = root / folder / "info.txt"
        if info.exists():
            for line in info.read_text(errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 3:
                    with contextlib.suppress(ValueError):
                        params[parts[1].lower()] = float(parts[2])
        for k in range(1, count + 1):
            i = position + k - 1
            if orgs[i]:
                continue
            what = "dmos_new" if realigned else "dmos"
            score = parse_number(dmos[i], f"'{dmos_file}' {what} entry {i + 1} ({folder}/img{k}.bmp)", layout, what)
            name = f"img{k}.bmp"
            rows.append(
                dict(
                    dist=str(find_file(files, name, root / folder, dmos_file, layout)),
                    ref=str(find_file(refs, refnames[i], root / "refimgs", names_file, layout)),
                    ref_id=Path(refnames[i]).stem,
                    score=score,
                    distortion=folder,
                    level=params.get(name, math.nan),
                )
            )
        position += count
    return IQADatabase("live", iqa_frame(rows, dmos_file, layout), False, "DMOS", root)
