"""BAPPS' two-alternative forced-choice sets (Zhang et al. 2018): ``2afc/<split>/<set>/{ref,p0,p1,judge}/``."""

from __future__ import annotations

import os
from pathlib import Path

from percept.eval.datasets.files import index_folder, require_path
from percept.eval.datasets.model import DatabaseError, TwoAFCDatabase


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
    import pandas as pd

    root = Path(root)
    layout = "the BAPPS layout: 2afc/<split>/<set>/ref/000000.png, p0/, p1/ and judge/000000.npy"
    base = root if root.name == "2afc" else root / "2afc"
    require_path(base, layout)
    subsets = find_subsets(base) if subsets is None else tuple(subsets)
    rows = judged_rows(base, subsets, ("ref", "p0", "p1"), "judge", layout)
    return TwoAFCDatabase("bapps", pd.DataFrame(rows), root)


def find_subsets(base: Path) -> tuple[str, ...]:
    """Every ``<split>/<set>`` folder two levels below ``base`` (BAPPS' ``2afc/`` or ``jnd/``), sorted.

    Example:
        >>> find_subsets(Path("/data/bapps/2afc"))  # doctest: +SKIP
        ('train/cnn', 'train/mix', 'train/traditional', 'val/cnn', ...)
    """
    return tuple(
        f"{s.name}/{d.name}" for s in sorted(base.iterdir()) if s.is_dir() for d in sorted(s.iterdir()) if d.is_dir()
    )


def judged_rows(base: Path, subsets: tuple[str, ...], images: tuple[str, ...], value: str, layout: str) -> list[dict]:
    """Read BAPPS-style folders ``base/<subset>/{<images>..., <value>}/<id>.{png,npy}``.

    Every ``<value>/<id>.npy`` holds one fraction in [0, 1] (``judge`` of 2AFC, ``same`` of JND) and
    names one row: the image ``<key>/<id>.*`` of each key in ``images`` (matched ignoring case), the
    value, and the subset. A reference image without its judgement, an image missing for a
    judgement, an unreadable file or a value outside [0, 1] raise :class:`DatabaseError`.

    Returns:
        ``[{key: path, ..., value: float, "subset": subset}]`` in subset order, then by file name.

    Example:
        >>> rows = judged_rows(Path("/data/jnd"), ("val/cnn",), ("p0", "p1"), "same", "JND")  # doctest: +SKIP
        >>> sorted(rows[0])  # doctest: +SKIP
        ['p0', 'p1', 'same', 'subset']
    """
    import numpy as np

    rows = []
    for subset in subsets:
        folder = require_path(base / subset, layout)
        value_dir = require_path(folder / value, layout)
        index = {k: index_folder(folder / k, layout) for k in images}
        stems: dict[str, dict[str, Path]] = {}  # key -> file stem -> path: one lookup per file, not a scan
        for key, files in index.items():
            for file_name, file_path in files.items():
                stems.setdefault(key, {}).setdefault(Path(file_name).stem, file_path)
        judged = {p.stem.lower() for p in value_dir.glob("*.npy")}
        for name in sorted(index[images[0]]):
            if Path(name).stem not in judged:
                what = "judgement" if value == "judge" else f"'{value}' value"
                raise DatabaseError(
                    f"'{value_dir / (Path(name).stem + '.npy')}' does not exist (the {what} of "
                    f"'{folder / images[0] / name}'); expected {layout}"
                )
        for value_file in sorted(value_dir.glob("*.npy")):
            try:
                number = float(np.load(value_file, allow_pickle=False).reshape(-1)[0])
            except (ValueError, OSError, IndexError, EOFError, TypeError) as exc:
                raise DatabaseError(f"cannot read '{value_file}': {exc}; expected {layout}") from None
            if not 0.0 <= number <= 1.0:
                raise DatabaseError(f"'{value_file}' holds {number}, expected a fraction in [0, 1]; expected {layout}")
            stem = value_file.stem
            paths = {}
            for key in images:
                hit = stems.get(key, {}).get(stem.lower())
                if hit is None:
                    raise DatabaseError(f"'{folder / key / (stem + '.png')}' does not exist; expected {layout}")
                paths[key] = str(hit)
            rows.append({**paths, value: number, "subset": subset})
    if not rows:
        raise DatabaseError(f"'{base}' holds no {value}/*.npy files in {list(subsets)}; expected {layout}")
    return rows
