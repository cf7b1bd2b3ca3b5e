"""BAPPS' two-alternative forced-choice sets (Zhang et al. 2018): ``2afc/<split>/<set>/{ref,p0,p1,judge}/``."""

from __future__ import annotations

import os
from pathlib import Path

from percept.eval.datasets.model import DatabaseError, TwoAFCDatabase
from percept.eval.datasets.tables import _index, _need


def read_bapps(root: str | os.PathLike, subsets: tuple[str, ...] | None = None) -> TwoAFCDatabase:
    """Read BAPPS' 2AFC sets (Zhang et al. 2018) as distributed: ``2afc/<split>/<set>/{ref,p0,p1,judge}/``.

    Args:
        root: the BAPPS folder holding ``2afc/`` (or the ``2afc`` folder itself).
        subsets: ``("val/traditional", "val/cnn", ...)`` to read; default every ``<split>/<set>`` found.

    Returns:
        A :class:`TwoAFCDatabase`; ``judge`` is read from ``judge/<id>.npy`` (the fraction of people who
        chose ``p1`` as closer to the reference).

    Example:
        >>> db = read_bapps("/data/bapps", subsets=("val/traditional",))  # doctest: +SKIP
        >>> db.table["judge"].between(0, 1).all()  # doctest: +SKIP
        True
    """
    import numpy as np
    import pandas as pd

    root = Path(root)
    layout = "the BAPPS layout: 2afc/<split>/<set>/ref/000000.png, p0/, p1/ and judge/000000.npy"
    base = root if root.name == "2afc" else root / "2afc"
    _need(base, layout)
    if subsets is None:
        subsets = tuple(
            f"{s.name}/{d.name}"
            for s in sorted(base.iterdir())
            if s.is_dir()
            for d in sorted(s.iterdir())
            if d.is_dir()
        )
    rows = []
    for subset in subsets:
        folder = _need(base / subset, layout)
        judge_dir = _need(folder / "judge", layout)
        images = {k: _index(folder / k, layout) for k in ("ref", "p0", "p1")}
        judged = {p.stem.lower() for p in judge_dir.glob("*.npy")}
        for name in sorted(images["ref"]):
            if Path(name).stem not in judged:
                raise DatabaseError(
                    f"'{judge_dir / (Path(name).stem + '.npy')}' does not exist (the judgement of "
                    f"'{folder / 'ref' / name}'); expected {layout}"
                )
        for judge_file in sorted(judge_dir.glob("*.npy")):
            try:
                judge = float(np.load(judge_file, allow_pickle=False).reshape(-1)[0])
            except (ValueError, OSError, IndexError, EOFError, TypeError) as exc:
                raise DatabaseError(f"cannot read '{judge_file}': {exc}; expected {layout}") from None
            if not 0.0 <= judge <= 1.0:
                raise DatabaseError(f"'{judge_file}' holds {judge}, expected a fraction in [0, 1]; expected {layout}")
            stem = judge_file.stem
            paths = {}
            for key, index in images.items():
                hits = [p for n, p in index.items() if Path(n).stem == stem.lower()]
                if not hits:
                    raise DatabaseError(f"'{folder / key / (stem + '.png')}' does not exist; expected {layout}")
                paths[key] = str(hits[0])
            rows.append(dict(**paths, judge=judge, subset=subset))
    if not rows:
        raise DatabaseError(f"'{base}' holds no judge/*.npy files in {list(subsets)}; expected {layout}")
    return TwoAFCDatabase("bapps", pd.DataFrame(rows), root)
