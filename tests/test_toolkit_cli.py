"""The toolkit's commands as a new user runs them (issue 15's reports), on a small database in TID2013's layout."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from _eval_fakes import make_tid

from percept.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return make_tid(tmp_path_factory.mktemp("tid"), refs=3, types=1, levels=4, size=(64, 64))


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    from percept.builtin._torchvision import build_arch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(build_arch("resnet18").state_dict(), path)
    return str(path)


def _sweep(capsys, db, out, *args):
    code = main(["sweep", "tid2013", str(db), "--baselines", "", "--no-plots", "--no-progress", "--out", str(out),
                 *args])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err, err
    return pd.read_csv(out / "scores.csv", comment="#")  # after its '# signature: ...' lines


@pytest.mark.parametrize(
    ("backbone", "taps", "weights"),
    [
        ("resnet18", "layer1,layer2,layer3", "file"),
        ("resnet18", "stem,layer2", "none"),
        ("laplacian_pyramid", None, "none"),
        ("swin_t", None, "none"),
        ("vit_b_32", None, "none"),
        ("timm.resnet10t", "stages_2", "none"),
    ],
)
def test_sweep_reports_every_tap_asked_for(capsys, db, tmp_path, resnet18_file, backbone, taps, weights):
    args = ["--backbones", backbone, "--weights", resnet18_file if weights == "file" else "none"]
    scores = _sweep(capsys, db, tmp_path / "out", *args, *(["--taps", taps] if taps else []))
    plain = scores[~scores["tap"].str.startswith("cat:")]
    expected = taps.split(",") if taps else None
    if expected:
        assert list(dict.fromkeys(plain["tap"])) == expected
    assert plain.groupby("tap")["pair"].nunique().eq(12).all()  # every pair at every tap


def test_finetune_defaults_on_resnet18_and_a_small_database(capsys, db, tmp_path, resnet18_file):
    out = tmp_path / "ft"
    code = main(["finetune", "tid2013", str(db), "--backbone", "resnet18", "--weights", resnet18_file,
                 "--epochs", "5", "--out", str(out), "--no-progress"])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0, err
    saved = json.loads((out / "channel_weights.json").read_text())
    assert list(saved["weights"]) == ["stem", "layer1", "layer2", "layer3", "layer4"]  # the canonical taps
    assert saved["weights_source"] == resnet18_file


def test_select_defaults_adapt_the_folds_and_reuse_the_cache_only_when_it_matches(capsys, db, tmp_path):
    out = tmp_path / "sel"
    argv = ["select", "tid2013", str(db), "--backbone", "alexnet", "--out", str(out), "--no-progress",
            "--max-maps", "2"]  # fmt: skip
    assert main([*argv, "--weights", "random:0"]) == 0
    err = capsys.readouterr().err
    assert "3 reference image(s): cross-validation with 3 folds instead of 5" in err
    assert len(pd.read_csv(out / "cv.csv")) == 3

    assert main([*argv, "--weights", "random:0"]) == 0  # the same random network: the cache is reused
    assert "reusing" in capsys.readouterr().err

    assert main([*argv, "--weights", "none"]) == 0  # a fresh random network: never another one's scores
    assert "computing it again" in capsys.readouterr().err

    from percept.builtin._torchvision import build_arch

    torch.manual_seed(0)
    weights = tmp_path / "alexnet.pth"
    torch.save(build_arch("alexnet").state_dict(), weights)
    assert main([*argv, "--weights", str(weights)]) == 0
    assert "computed with other settings); computing it again" in capsys.readouterr().err
    assert json.loads((out / "selection.json").read_text())["weights"] == str(weights)

    assert main([*argv, "--weights", str(weights), "--resize", "48"]) == 0  # other resize: computed again
    assert "computing it again" in capsys.readouterr().err
