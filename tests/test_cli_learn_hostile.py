"""``percept learn`` under attack (issue 27's rules for every command): an --out folder whose files would be an
input (the manifest, an image, by any path) is refused before anything is written; a tampered or stale feature
cache is never reused: it is computed again with a warning naming it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from _hostile import tiny_image

from percept.cli import main
from percept.eval.datasets import load_database
from percept.eval.learn import HeadsOptions
from percept.eval.learn.features import triplet_features
from percept.eval.learn.train import prepare_backbone

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


def _triplets(root: Path, name: str = "m.csv") -> Path:
    lines = ["ref,p0,p1,judge,split"]
    for i in range(4):
        for seed, kind in enumerate(("r", "a", "b")):
            tiny_image(root / f"{kind}{i}.png", seed=10 * i + seed)
        lines.append(f"r{i}.png,a{i}.png,b{i}.png,0.{i + 2},{'train' if i < 3 else 'val'}")
    path = root / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _learn(data: Path, out: Path) -> list[str]:
    return ["learn", "triplets", str(data), "--backbone", "alexnet", "--taps", "conv1", "--weights", "random:0",
            "--epochs", "1", "--decay-epochs", "0", "--size", "32", "--device", "cpu", "--out", str(out)]  # fmt: skip


def test_out_folder_holding_a_file_named_like_an_output_input_is_refused(tmp_path, capsys):
    data = _triplets(tmp_path / "D", name="heads.json")  # the manifest is named like learn's own output
    before = data.read_bytes()
    assert main(_learn(data, tmp_path / "D")) == 2
    err = capsys.readouterr().err
    assert "heads.json" in err and "input" in err
    assert data.read_bytes() == before


def test_out_through_a_symlinked_folder_is_refused(tmp_path, capsys):
    data = _triplets(tmp_path / "D", name="heads.json")
    os.symlink(tmp_path / "D", tmp_path / "link")
    assert main(_learn(data, tmp_path / "link")) == 2
    assert "input" in capsys.readouterr().err


def test_a_tampered_feature_cache_is_recomputed_with_a_warning(tmp_path):
    data = _triplets(tmp_path / "D")
    db = load_database("triplets", data)
    torch.manual_seed(0)
    net, _ = prepare_backbone("alexnet", HeadsOptions(weights="random:0"))
    first = triplet_features(db, net, ["conv1"], size=32, cache=tmp_path / "cache")
    (folder,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    expected = np.array(first.d0[0][:])
    np.save(folder / "d0_0.npy", np.full((2, 3), np.nan, dtype=np.float16))  # wrong shape
    with pytest.warns(UserWarning, match="not a usable feature cache"):
        again = triplet_features(db, net, ["conv1"], size=32, cache=tmp_path / "cache")
    np.testing.assert_array_equal(np.array(again.d0[0][:]), expected)
    (folder / "d1_0.npy").write_bytes(b"")  # truncated
    with pytest.warns(UserWarning, match="cannot be read"):
        triplet_features(db, net, ["conv1"], size=32, cache=tmp_path / "cache")


def test_an_image_changed_under_the_same_name_is_not_read_from_the_cache(tmp_path):
    data = _triplets(tmp_path / "D")
    db = load_database("triplets", data)
    net, _ = prepare_backbone("alexnet", HeadsOptions(weights="random:0"))
    first = np.array(triplet_features(db, net, ["conv1"], size=32, cache=tmp_path / "cache").d0[0][:])
    tiny_image(tmp_path / "D" / "a0.png", seed=99)
    os.utime(tmp_path / "D" / "a0.png", ns=(1, 1))  # a new mtime whatever the clock's resolution
    second = np.array(triplet_features(db, net, ["conv1"], size=32, cache=tmp_path / "cache").d0[0][:])
    assert len(list((tmp_path / "cache").iterdir())) == 2
    assert not np.array_equal(first[0], second[0]) and np.array_equal(first[1:], second[1:])
