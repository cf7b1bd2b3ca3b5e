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
    with pytest.raises(InputError) as info:
        ENTRY_POINTS[entry](x, y)
    assert needle in str(info.value), str(info.value)


def _budget(pipeline, pairs: int, shape=(3, 48, 48)) -> int:
    """Bytes the memory check asks for to score ``pairs`` pairs of ``shape`` without a graph."""
    from percept.memory import estimate_pass_bytes

    last = max(pipeline.backbone.tap_info(t).index for t in pipeline.taps)
    return 2 * estimate_pass_bytes(pipeline.backbone._trace_shapes(), last, (pairs, *shape), 4, graph=False)


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
    names = [line.split("\t")[0] for line in target.read_text().splitlines()]
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
    assert code == 2 and out.startswith("a.png\t")
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
