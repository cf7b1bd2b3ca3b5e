"""Bad input to the database readers: every reader x every fault raises DatabaseError naming the file.

Each reader gets a tiny fake database in its native layout (``_eval_fakes``); one fault is injected,
and the message must name the file at fault and the layout the reader expected. The counts quoted
in the project notes come from ``pytest tests/test_eval_dataset_faults.py -q``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from _eval_fakes import (
    CSIQ_HEADER,
    csiq_rows,
    make_bapps,
    make_cidiq,
    make_csiq,
    make_kadid,
    make_live,
    make_manifest,
    make_pipal,
    make_tid,
    write_csiq_sheet,
)

from percept.eval.datasets import DatabaseError, load_database

FAULTS = (
    "missing score file",
    "empty score file",
    "corrupt score file",
    "too few fields",
    "too many fields",
    "non-numeric score",
    "NaN score",
    "infinite score",
    "missing image",
    "wrong folder",
)


@dataclass
class Reader:
    """How to build one reader's fake database and break it.

    ``bad_rows`` maps a row fault to what replaces the first data row of a text score file, or to a
    function that breaks a binary score file (``.mat``, ``.npy``, ``.xlsx``) in place.
    """

    name: str  # as load_database knows it
    layout: str  # a phrase every message of this reader holds
    build: Callable[[Path], Path]  # returns the path load_database is given
    score_file: str  # relative to the built database's root
    image: str  # the first distorted image the score file names
    bad_rows: dict[str, str | Callable[[Path], None]]
    header_lines: int = 0


def _text(name, layout, build, score_file, image, good, header_lines=0, sep=","):
    """A reader of a text score file whose first data row is ``good`` (a list of fields, score last but one
    or last as given by the replacements below)."""
    fields = good.split(sep)
    score_at = next(i for i, f in enumerate(fields) if f.startswith("@"))
    base = [f.lstrip("@") for f in fields]

    def with_score(value: str) -> str:
        return sep.join([*base[:score_at], value, *base[score_at + 1 :]])

    bad_rows = {
        "too few fields": sep.join(base[:-1]),
        "too many fields": sep.join([*base, "7"]),
        "non-numeric score": with_score("abc"),
        "NaN score": with_score("nan"),
        "infinite score": with_score("inf"),
    }
    return Reader(name, layout, build, score_file, image, bad_rows, header_lines)


def _mat_fault(file: str, variable: str, length: int | None = None) -> dict[str, Callable[[Path], None]]:
    import scipy.io

    def change(root: Path, how: str) -> None:
        mat = scipy.io.loadmat(root / file)
        values = np.asarray(mat[variable], dtype=float).reshape(-1)
        if how == "too few fields":
            new = values[:-1]
        elif how == "too many fields":
            new = np.concatenate([values, [1.0]])
        elif how == "non-numeric score":
            new = np.array(["abc"] * len(values))
        else:
            new = values.copy()
            new[0] = np.nan if how == "NaN score" else np.inf
        mat[variable] = new[None, :] if np.asarray(mat[variable]).shape[0] == 1 else new[:, None]
        scipy.io.savemat(root / file, {k: v for k, v in mat.items() if not k.startswith("__")})

    kinds = ("too few fields", "too many fields", "non-numeric score", "NaN score", "infinite score")
    return {k: (lambda root, k=k: change(root, k)) for k in kinds}


def _npy_fault() -> dict[str, Callable[[Path], None]]:
    judge = "2afc/val/traditional/judge/000000.npy"
    values = {
        "too few fields": np.zeros(0, dtype=np.float32),
        "too many fields": np.array([[0.1, 0.2]], dtype=np.float32),  # read as its first value: refused below
        "non-numeric score": np.array(["abc"]),
        "NaN score": np.array([np.nan], dtype=np.float32),
        "infinite score": np.array([np.inf], dtype=np.float32),
    }
    out = {}
    for kind, value in values.items():
        if kind == "too many fields":
            continue  # a judge file holds one value; extra values are not a layout BAPPS has
        out[kind] = lambda root, v=value: np.save(root / judge, v)
    return out


def _xlsx_fault() -> dict[str, Callable[[Path], None]]:
    def write(root: Path, row: list, header: list[str] = CSIQ_HEADER) -> None:
        rows = csiq_rows(2, 2)
        rows[0] = row
        write_csiq_sheet(root / "csiq.DMOS.xlsx", rows, header)

    first = csiq_rows(2, 2)[0]
    return {
        "too few fields": lambda root: write(root, first[:-1]),  # the dmos cell left empty
        "non-numeric score": lambda root: write(root, [*first[:-1], "abc"]),
        "NaN score": lambda root: write(root, [*first[:-1], "#N/A"]),  # Excel's error value
        "infinite score": lambda root: write(root, [*first[:-1], "inf"]),
    }


def _readers() -> dict[str, Reader]:
    readers = [
        _text(
            "tid2013",
            "TID2013 layout",
            lambda r: make_tid(r, refs=2, types=1, levels=2),
            "mos_with_names.txt",
            "distorted_images/i01_01_1.bmp",
            "@7.5 i01_01_1.bmp",
            sep=" ",
        ),
        _text(
            "tid2008",
            "TID2008 layout",
            lambda r: make_tid(r, refs=2, types=1, levels=2),
            "mos_with_names.txt",
            "distorted_images/i01_01_1.bmp",
            "@7.5 i01_01_1.bmp",
            sep=" ",
        ),
        _text(
            "kadid10k",
            "KADID-10k layout",
            lambda r: make_kadid(r, refs=2, types=1, levels=2),
            "dmos.csv",
            "images/I01_01_01.png",
            "I01_01_01.png,I01.png,@4.2,0.5",
            header_lines=1,
        ),
        _text(
            "csiq",
            "CSIQ layout",
            lambda r: make_csiq(r, refs=2, levels=2, scores="csv"),
            "csiq.DMOS.csv",
            "dst_imgs/awgn/1600.AWGN.1.png",
            "1600,1,noise,1,0.05,@0.15",
            header_lines=1,
        ),
        Reader(
            "csiq",
            "CSIQ layout",
            lambda r: make_csiq(r, refs=2, levels=2, scores="xlsx"),
            "csiq.DMOS.xlsx",
            "dst_imgs/awgn/1600.AWGN.1.png",
            _xlsx_fault(),
        ),
        Reader(
            "live",
            "LIVE release 2 layout",
            lambda r: make_live(r),
            "dmos.mat",
            "jp2k/img1.bmp",
            _mat_fault("dmos.mat", "dmos"),
        ),
        Reader(
            "cidiq-50",
            "CID:IQ layout",
            lambda r: make_cidiq(r, refs=2, levels=2, scores="mat"),
            "MOS50.mat",
            "Images/Reproduction/1_JPEG2000_Compression/final01_d1_l1.bmp",
            _mat_fault("MOS50.mat", "MOS50"),
        ),
        _text(
            "cidiq-100",
            "CID:IQ layout",
            lambda r: make_cidiq(r, refs=2, levels=2, scores="csv"),
            "CIDIQ_scores.csv",
            "Images/Reproduction/1_JPEG2000_Compression/final01_d1_l1.bmp",
            "final01_d1_l1,4.00,@4.50",
            header_lines=1,
        ),
        _text(
            "pipal",
            "PIPAL layout",
            lambda r: make_pipal(r, refs=2, variants=2),
            "Train_Label/A0001.txt",
            "Train_Dis/A0001_00_00.bmp",
            "A0001_00_00.bmp,@1600.0",
        ),
        Reader(
            "bapps",
            "BAPPS layout",
            lambda r: make_bapps(r, n=2),
            "2afc/val/traditional/judge/000000.npy",
            "2afc/val/traditional/p0/000000.png",
            _npy_fault(),
        ),
        _text(
            "csv",
            "CSV manifest",
            lambda r: make_manifest(r, "TID2013"),
            "csv/TID2013.txt",
            "TID2013/distorted_images/i01_01_1.bmp",
            "TID2013/distorted_images/i01_01_1.bmp,AWGN,TID2013/reference_images/I01.BMP,@7.5",
            header_lines=1,
        ),
    ]
    out = {}
    for reader in readers:
        key = f"{reader.name}[{Path(reader.score_file).suffix.lstrip('.')}]"
        out[key] = reader
    return out


READERS = _readers()
CASES = [
    (key, fault)
    for key, reader in READERS.items()
    for fault in FAULTS
    if fault not in ("too few fields", "too many fields", "non-numeric score", "NaN score", "infinite score")
    or fault in reader.bad_rows
]


def _load(reader: Reader, target: Path):
    if reader.name == "csv":
        return load_database("csv", target, root=target.parent.parent)
    return load_database(reader.name, target)


@pytest.mark.parametrize(("key", "fault"), CASES, ids=[f"{k}-{f}" for k, f in CASES])
def test_reader_fault_names_the_file_and_the_layout(tmp_path, key, fault):
    reader = READERS[key]
    if reader.score_file.endswith(".xlsx"):
        pytest.importorskip("openpyxl")
    db_root = tmp_path / "db"
    target = reader.build(db_root)
    root = db_root
    assert len(_load(reader, target)) > 0  # the fake is sound before the fault
    score_file = root / reader.score_file
    needles = [score_file.name]
    if fault == "missing score file":
        score_file.unlink()
    elif fault == "empty score file":
        score_file.write_bytes(b"")
    elif fault == "corrupt score file":
        score_file.write_bytes(b"\x00\xff\xfe garbage \x89PNG\r\n")
    elif fault == "missing image":
        (root / reader.image).unlink()
        needles = [Path(reader.image).name, score_file.name]
    elif fault == "wrong folder":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        target = elsewhere
        needles = [str(elsewhere)]
    else:
        bad = reader.bad_rows[fault]
        if callable(bad):
            bad(root)
        else:
            lines = score_file.read_text().splitlines()
            lines[reader.header_lines] = bad
            score_file.write_text("\n".join(lines) + "\n")
        needles.append("line" if not callable(bad) else "")
    with pytest.raises(DatabaseError) as info:
        _load(reader, target)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert reader.layout in message, message
    assert "expected" in message, message
