"""Reliability of the research toolkit (issue 18, the part in percept/eval/): resume never trusts a bad or stale
partial file, tampered result files are refused naming the file and the field, the eval commands never print a
traceback for a bad option or an unusable output, and their files are written whole or not at all."""

from __future__ import annotations

import json
import os
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _eval_fakes import count_network_passes, make_tid
from PIL import Image

from percept import PerceptualLoss, create_backbone
from percept.cli import main
from percept.errors import InputError
from percept.eval.datasets import load_database
from percept.eval.finetune import finetuned_pipeline, load_channel_weights
from percept.eval.select import load_selection, selection_pipeline
from percept.eval.sweep import sweep_backbone

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")
TAPS = ["relu1", "relu2"]


@pytest.fixture
def tid(tmp_path):
    return load_database("tid2013", make_tid(tmp_path / "tid", refs=2, types=1, levels=3, size=(48, 48)))


@pytest.fixture(scope="module")
def alexnet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_backbone("alexnet", weights=None)


def _sweep(tid, net, partial):
    return sweep_backbone(tid, net, taps=TAPS, measures=["mse", "ssim"], batch_size=2, partial_dir=partial)


def _chunk_files(partial):
    return sorted(p for p in partial.glob("*/c*.csv"))


# -- item 5: resume from OUT/partial ----------------------------------------------------------------------------


def _nan_first_distance(path):
    frame = pd.read_csv(path)
    frame.loc[0, "distance"] = float("nan")
    frame.to_csv(path, index=False)


SPOILERS = {
    "header only": lambda path: path.write_text("tap,measure,pair,distance\n"),
    "garbage": lambda path: path.write_bytes(b"\x00\xffnot,a,csv\n\x01\x02"),
    "truncated": lambda path: path.write_text(path.read_text()[: len(path.read_text()) // 2]),
    "empty": lambda path: path.write_bytes(b""),
    "NaN distances": lambda path: _nan_first_distance(path),
    "other columns": lambda path: path.write_text("a,b\n1,2\n"),
}


@pytest.mark.parametrize("spoil", list(SPOILERS), ids=list(SPOILERS))
def test_resume_recomputes_a_bad_partial_file_and_names_it(tid, alexnet, tmp_path, monkeypatch, spoil):
    first = _sweep(tid, alexnet, tmp_path / "partial")
    victim = _chunk_files(tmp_path / "partial")[0]
    SPOILERS[spoil](victim)
    calls = count_network_passes(monkeypatch, alexnet)
    with pytest.warns(UserWarning, match=str(victim.name)):
        second = _sweep(tid, alexnet, tmp_path / "partial")
    assert calls == [1, 2]  # that chunk (with its reference) ran again, nothing else
    pd.testing.assert_frame_equal(first, second)


def test_resume_leaves_a_stray_file_alone_and_says_so(tid, alexnet, tmp_path):
    first = _sweep(tid, alexnet, tmp_path / "partial")
    stray = _chunk_files(tmp_path / "partial")[0].parent / "notes.txt"
    stray.write_text("mine")
    with pytest.warns(UserWarning, match="notes.txt"):
        second = _sweep(tid, alexnet, tmp_path / "partial")
    pd.testing.assert_frame_equal(first, second)
    assert stray.read_text() == "mine"


def test_resume_recomputes_chunks_whose_images_changed(tid, alexnet, tmp_path):
    _sweep(tid, alexnet, tmp_path / "partial")
    changed = tid.table["dist"].iloc[0]
    time.sleep(0.01)
    Image.fromarray(np.zeros((48, 48, 3), dtype=np.uint8)).save(changed)  # same name, new content
    with pytest.warns(UserWarning, match="changed since"):
        resumed = _sweep(tid, alexnet, tmp_path / "partial")
    fresh = sweep_backbone(tid, alexnet, taps=TAPS, measures=["mse", "ssim"], batch_size=2)
    pd.testing.assert_frame_equal(resumed, fresh)


def test_resume_keys_a_weights_file_by_its_content(tid, tmp_path):
    path = tmp_path / "w.pth"
    from percept.builtin._torchvision import build_arch

    torch.manual_seed(0)
    torch.save(build_arch("alexnet").state_dict(), path)
    kwargs = dict(taps=TAPS, measures=["mse"], batch_size=2, partial_dir=tmp_path / "partial", weights=str(path))
    before = sweep_backbone(tid, "alexnet", **kwargs)
    time.sleep(0.01)
    torch.manual_seed(1)
    torch.save(build_arch("alexnet").state_dict(), path)  # other weights under the same name
    after = sweep_backbone(tid, "alexnet", **kwargs)
    assert not np.allclose(before["distance"], after["distance"])
    assert len(list((tmp_path / "partial").iterdir())) == 2  # one folder per weights content


# -- item 7: tampered result files ------------------------------------------------------------------------------


def _selection(tmp_path, **change):
    data = {"format": "percept-map-selection/1", "backbone": "alexnet", "weights": "random:0", "measure": "ssim",
            "maps": {"relu1": [0, 3], "relu2": [5]}}  # fmt: skip
    data.update(change)
    path = tmp_path / "selection.json"
    path.write_text(json.dumps(data))
    return path


def _weights_file(tmp_path, **change):
    data = {"format": "percept-channel-weights/1", "backbone": "alexnet", "weights_source": "random:0",
            "weights": {"relu1": [1.0] * 64}}  # fmt: skip
    data.update(change)
    path = tmp_path / "channel_weights.json"
    path.write_text(json.dumps(data))
    return path


def test_good_result_files_load(tmp_path):
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert selection_pipeline(_selection(tmp_path))(x, y).shape == (2,)
        assert finetuned_pipeline(_weights_file(tmp_path))(x, y).shape == (2,)


BAD_SELECTIONS = {
    "channel 1.9": ({"maps": {"relu1": [1.9]}}, "1.9"),
    "negative channel": ({"maps": {"relu1": [-1]}}, "-1"),
    "channel true": ({"maps": {"relu1": [True]}}, "True"),
    "channel twice": ({"maps": {"relu1": [2, 2]}}, "twice"),
    "maps a list": ({"maps": ["relu1"]}, "maps"),
    "channels not a list": ({"maps": {"relu1": 3}}, "relu1"),
    "weights missing": ({"weights": "DROP"}, "'weights' is missing"),
    "weights a number": ({"weights": 3}, "'weights'"),
    "backbone missing": ({"backbone": None}, "'backbone'"),
    "network_resize a string": ({"network_resize": "yes"}, "network_resize"),
}


@pytest.mark.parametrize("case", list(BAD_SELECTIONS), ids=list(BAD_SELECTIONS))
def test_tampered_selection_is_refused_naming_file_and_field(tmp_path, case):
    change, expected = BAD_SELECTIONS[case]
    path = _selection(tmp_path, **change)
    if change.get("weights") == "DROP":
        data = json.loads(path.read_text())
        del data["weights"]
        path.write_text(json.dumps(data))
    for load in (load_selection, lambda p: PerceptualLoss("map-selection", selection=p)):
        with pytest.raises(InputError, match=str(path.name)) as info:
            load(path)
        assert expected in str(info.value)


BAD_WEIGHTS = {
    "NaN": ([float("nan")] + [1.0] * 63, "nan"),
    "Inf": ([float("inf")] + [1.0] * 63, "inf"),
    "negative": ([-1.0] + [1.0] * 63, "-1.0"),
    "huge": ([1e38] * 64, "overflow"),
    "all zero": ([0.0] * 64, "every channel weight is 0"),
    "a string": (["1"] + [1.0] * 63, "'1'"),
    "not a list": (1.0, "relu1"),
}


@pytest.mark.parametrize("case", list(BAD_WEIGHTS), ids=list(BAD_WEIGHTS))
def test_tampered_channel_weights_are_refused_naming_file_and_field(tmp_path, case):
    values, expected = BAD_WEIGHTS[case]
    path = _weights_file(tmp_path, weights={"relu1": values})
    for load in (load_channel_weights, lambda p: PerceptualLoss("channel-weights", file=p)):
        with pytest.raises(InputError, match=str(path.name)) as info:
            load(path)
        assert expected in str(info.value)


def test_channel_weights_without_recorded_weights_are_refused(tmp_path):
    path = _weights_file(tmp_path)
    data = json.loads(path.read_text())
    del data["weights_source"]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="'weights_source' is missing"):
        load_channel_weights(path)


MALFORMED = {
    "a folder": lambda p: (p.unlink(), p.mkdir()),
    "not UTF-8": lambda p: p.write_bytes(b"\xff\xfe\x00{"),
    "deeply nested": lambda p: p.write_text("[" * 100_000 + "]" * 100_000),
    "not JSON": lambda p: p.write_text("{maps: }"),
    "a list": lambda p: p.write_text("[1, 2]"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
@pytest.mark.parametrize("kind", ["selection", "channel-weights"])
def test_malformed_result_files_are_an_input_error(tmp_path, case, kind):
    path = _selection(tmp_path) if kind == "selection" else _weights_file(tmp_path)
    MALFORMED[case](path)
    load = load_selection if kind == "selection" else load_channel_weights
    with pytest.raises(InputError, match=str(path.name)):
        load(path)


# -- item 8: the eval commands never print a traceback ---------------------------------------------------------


def _run(capsys, *argv):
    code = main(list(argv))
    _, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, err


def _db_args(tid):
    return ["tid2013", str(tid.root), "--weights", "none", "--no-progress"]


@pytest.mark.parametrize(
    ("command", "option", "expected"),
    [
        ("sweep", ["--workers", "-1"], "--workers must be an integer >= 0, got -1"),
        ("sweep", ["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        ("sweep", ["--limit-references", "0"], "--limit-references must be an integer >= 1, got 0"),
        ("sweep", ["--limit-references", "-1"], "--limit-references must be an integer >= 1, got -1"),
        ("sweep", ["--resize", "100000"], "need at least"),
        ("select", ["--screen", "-1"], "--screen must be an integer >= 0, got -1"),
        ("select", ["--tol", "nan"], "--tol must be a finite number >= 0"),
        ("finetune", ["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
        ("finetune", ["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
    ],
)
def test_bad_eval_options_exit_2_with_a_message(tid, tmp_path, capsys, command, option, expected):
    target = ["--backbones", "alexnet"] if command == "sweep" else ["--backbone", "alexnet"]
    code, err = _run(capsys, command, *_db_args(tid), *target, "--out", str(tmp_path / "out"), *option)
    assert code == 2 and expected in err, err


def test_sweep_without_backbones_exits_2(tid, tmp_path, capsys):
    code, err = _run(capsys, "sweep", *_db_args(tid), "--backbones", "", "--out", str(tmp_path / "o"))
    assert code == 2 and "--backbones needs at least one backbone" in err


def test_sweep_out_naming_a_file_exits_2_before_any_work(tid, tmp_path, capsys, monkeypatch):
    out = tmp_path / "taken"
    out.write_text("keep me")
    calls = count_network_passes(monkeypatch, create_backbone("pixel"))
    code, err = _run(capsys, "sweep", *_db_args(tid), "--backbones", "alexnet", "--out", str(out))
    assert code == 2 and "is a file" in err and out.read_text() == "keep me" and not calls


def test_sweep_into_a_read_only_folder_exits_2_before_any_work(tid, tmp_path, capsys, monkeypatch):
    import errno

    import percept.io

    def refuse(target):
        raise OSError(errno.EROFS, "Read-only file system", target)

    monkeypatch.setattr(percept.io, "_open_temporary", refuse)  # chmod does not stop root
    code, err = _run(capsys, "sweep", *_db_args(tid), "--backbones", "alexnet", "--out", str(tmp_path / "ro"))
    assert code == 2 and "read-only" in err.lower(), err


def test_sweep_on_a_full_disk_exits_2_and_leaves_no_half_table(tid, tmp_path, capsys, monkeypatch):
    import errno
    import io

    import percept.io

    def write(self, data):
        if str(self._output).endswith("scores.csv"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return io.FileIO.write(self, data)

    monkeypatch.setattr(percept.io._RawOutput, "_write", write)
    out = tmp_path / "out"
    code, err = _run(capsys, "sweep", *_db_args(tid), "--backbones", "pixel", "--baselines", "", "--out", str(out),
                     "--no-plots")  # fmt: skip
    assert code == 2 and "no space left" in err, err
    assert not (out / "scores.csv").exists() and not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_visualize_into_a_missing_folder_makes_it(tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "map.png"
    code, err = _run(capsys, "visualize", "alexnet", "relu1", "0", "--weights", "none", "--size", "64", "--steps",
                     "1", "--out", str(out))  # fmt: skip
    assert code == 0 and out.stat().st_size > 0, err
