"""BAPPS' just-noticeable-difference sets (Zhang et al. 2018): ``jnd/val/<set>/{p0,p1,same}/``."""

from __future__ import annotations

import os
from pathlib import Path

from percept.eval.datasets.bapps import find_subsets, judged_rows
from percept.eval.datasets.files import require_path
from percept.eval.datasets.model import JNDDatabase

LAYOUT = "the BAPPS JND layout: jnd/val/<set>/p0/000000.png, p1/ and same/000000.npy"


def read_bapps_jnd(root: str | os.PathLike, subsets: tuple[str, ...] | None = None) -> JNDDatabase:
    """Read BAPPS' JND sets as distributed: ``jnd/<split>/<set>/{p0,p1,same}/``.

    Each pair of patches was shown to people, who said whether they were the same; ``same/<id>.npy``
    holds the fraction who did. The score of a metric on these sets is the JND mAP
    (:func:`percept.eval.stats.jnd_map`).

    Args:
        root: the BAPPS folder holding ``jnd/`` (or the ``jnd`` folder itself).
        subsets: ``("val/traditional", "val/cnn")`` to read; default every ``<split>/<set>`` found.

    Returns:
        A :class:`JNDDatabase` with columns ``p0, p1, same, subset``.

    Raises:
        DatabaseError: a folder or file is missing, a ``same`` file is unreadable or not a fraction in
            [0, 1]; the message names the file and the layout expected.

    Example:
        >>> db = read_bapps_jnd("/data/bapps", subsets=("val/cnn",))  # doctest: +SKIP
        >>> db.table["same"].between(0, 1).all()  # doctest: +SKIP
        True
    """
    import pandas as pd

    root = Path(root)
    base = root if root.name == "jnd" else root / "jnd"
    require_path(base, LAYOUT)
    subsets = find_subsets(base) if subsets is None else tuple(subsets)
    rows = judged_rows(base, subsets, ("p0", "p1"), "same", LAYOUT)
    return JNDDatabase("bapps-jnd", pd.DataFrame(rows, columns=["p0", "p1", "same", "subset"]), root)
