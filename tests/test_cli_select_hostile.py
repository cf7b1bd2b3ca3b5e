"""``percept select`` under attack: outputs that are inputs (issue 27 case 1), a tampered map_scores.npz cache
(case 5: wrong shape, truncated, empty, NaN, another network), and a selection naming an unknown tap (case 7)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _hostile import ALIASES, alias, manifest, refused

from percept.cli import main
from percept.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


def _select(root, path, out, *extra):
    return ["select", "csv", str(path), "--data-root", str(root), "--out", str(out), "--backbone", "pixel",
            "--weights", "none", "--folds", "0", "--no-progress", "--lower-is-better", *extra]  # fmt: skip


@pytest.mark.parametrize("how", ALIASES)
def test_manifest_named_path_csv_in_the_out_folder_is_refused(tmp_path, capsys, how):
    """Case 1: select overwrote a manifest named path.csv."""
    data = manifest(tmp_path / "D", name="path.csv")
    refused(_select(tmp_path / "D", alias(data, how, tmp_path / "links"), tmp_path / "D"), data, capsys)


@pytest.fixture
def selected(tmp_path, capsys):
    data = manifest(tmp_path / "D")
    out = tmp_path / "out"
    assert main(_select(tmp_path / "D", data, out)) == 0, capsys.readouterr().err
    capsys.readouterr()
    return tmp_path / "D", data, out


def _rerun(selected, capsys) -> str:
    root, data, out = selected
    assert main(_select(root, data, out)) == 0
    return capsys.readouterr().err


def test_an_intact_cache_is_reused(selected, capsys):
    assert "reusing" in _rerun(selected, capsys)


def _wrong_shape(cache):
    with np.load(cache) as data:
        meta = json.loads(str(data["meta"]))
        matrix = data["matrix"]
    meta["taps"], meta["channels"] = meta["taps"][:2], meta["channels"][:2]
    np.savez(cache, matrix=matrix[:, :2], meta=json.dumps(meta))


def _nan(cache):
    with np.load(cache) as data:
        meta, matrix = str(data["meta"]), data["matrix"].copy()
    matrix[0, 0] = np.nan
    np.savez(cache, matrix=matrix, meta=meta)


def _other_network(cache):
    with np.load(cache) as data:
        meta, matrix = json.loads(str(data["meta"])), data["matrix"]
    meta["config"]["weights"] = "sha256:" + "0" * 64
    np.savez(cache, matrix=matrix, meta=json.dumps(meta))


TAMPER = {
    "wrong shape, same settings": (_wrong_shape, "(4, 2) matrix, expected (4, 3)"),
    "truncated": (lambda c: c.write_bytes(c.read_bytes()[:40]), "is not a map_scores file"),
    "empty": (lambda c: c.write_bytes(b""), "is not a map_scores file"),
    "not finite": (_nan, "not finite"),
    "another network": (_other_network, "other settings"),
    "foreign npz": (lambda c: np.savez(c, other=np.zeros(3)), "is not a map_scores file"),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_a_tampered_cache_is_recomputed_with_a_warning_naming_it(selected, capsys, case):
    """Case 5: a wrong-shape cache was reused silently; a truncated or empty one crashed."""
    tamper, reason = TAMPER[case]
    cache = selected[2] / "map_scores.npz"
    tamper(cache)
    err = _rerun(selected, capsys)
    assert "percept: warning:" in err and str(cache) in err and reason in err, err
    assert "computing it again" in err
    assert "reusing" in _rerun(selected, capsys)  # recomputed and saved whole


def test_a_selection_naming_an_unknown_tap_names_the_file(selected, tmp_path):
    """Case 7: the SpecError for an unknown tap did not say which file."""
    from percept.eval.select import selection_pipeline

    data = json.loads((selected[2] / "selection.json").read_text())
    data["maps"] = {"conv99": [0]}
    path = tmp_path / "bad-selection.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"bad-selection\.json.*'maps'.*conv99"):
        selection_pipeline(path)
    data["maps"] = {"pixel": [3]}
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"bad-selection\.json.*maps\['pixel'\] names channel 3.*3 channels"):
        selection_pipeline(path)
