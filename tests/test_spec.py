"""Spec strings: grammar, round trip, and errors that are always SpecError; names resolved apart from the grammar."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import percept.registry
from percept import SpecError, parse_spec
from percept.pipeline import resolve_spec
from percept.spec import Spec, TapSpec


@pytest.mark.parametrize(
    "text",
    [
        "vgg16",
        "vgg16:conv3",
        "vgg16:conv1,conv2,conv3=0.5",
        "alexnet/unit",
        "alexnet:all/unit/l2",
        "resnet50:layer2/raw/cosine",
        "vgg16:features.15=2/unit/mse",
        "lpips-alex",
        "lpips-vgg",
        "lpips-squeeze",
    ],
)
def test_canonical_strings_round_trip_exactly(text):
    spec = parse_spec(text)
    assert str(spec) == text.replace(":all", "")
    assert parse_spec(str(spec)) == spec


def test_parts_are_parsed():
    spec = parse_spec("vgg16:conv1, conv2 ,conv3=0.5/unit/l2")
    assert spec == Spec("vgg16", (TapSpec("conv1"), TapSpec("conv2"), TapSpec("conv3", 0.5)), "unit", "l2")
    assert spec.readout_name == "unit" and spec.distance_name == "l2"
    assert parse_spec("vgg16").readout_name == "raw" and parse_spec("vgg16").distance_name == "mse"
    assert not parse_spec("lpips-vgg").preset  # the grammar cannot tell a preset: resolution does
    assert resolve_spec("lpips-vgg").preset and not resolve_spec("vgg16:conv3").preset
    assert parse_spec("vgg16:all").taps is None


def test_weight_formats_round_trip():
    spec = parse_spec("vgg16:conv1=2,conv2=1e-3,conv3=0.1")
    assert str(spec) == "vgg16:conv1=2,conv2=0.001,conv3=0.1"
    assert parse_spec(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty spec"),
        ("vgg16:", "empty tap list"),
        ("vgg16:conv3=-1", ">= 0"),
        ("vgg16:conv3=abc", "bad weight"),
        ("vgg16:conv3=inf", "finite"),
        ("vgg16:conv3,conv3", "twice"),
        ("vgg16:all,conv3", "'all' cannot"),
        ("vgg16/unit/l2/extra", "at most 3"),
        ("9net", "bad backbone name"),
        ("vgg16:co nv", "bad tap"),
    ],
)
def test_errors_name_the_problem(text, needle):
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    message = str(info.value)
    assert needle in message
    if needle.endswith("'?"):
        assert "Did you mean" in message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("vgg61:conv3", "'vgg16'?"),
        ("vgg16:conv3/unti", "Did you mean 'unit'"),
        ("vgg16:conv3/unit/l3", "'l2'?"),
        ("lpips-vgg:conv1", "takes no taps"),
        ("lpips-vgg:all", "takes no taps"),
        ("lpips-vgg/unit", "takes no taps"),
    ],
)
def test_names_are_resolved_apart_from_the_grammar(text, needle):
    parse_spec(text)  # well formed: the grammar alone accepts it
    with pytest.raises(SpecError) as info:
        resolve_spec(text)
    message = str(info.value)
    assert needle in message
    if needle.endswith("'?"):
        assert "Did you mean" in message


def test_parse_spec_loads_no_plugin(monkeypatch):
    """The grammar needs no registry: a fresh one is never created, let alone discovered."""

    def no_registry():
        raise AssertionError("parse_spec asked for the registry")

    monkeypatch.setattr(percept.registry, "get_registry", no_registry)
    monkeypatch.setattr(percept.registry.Registry, "ensure_loaded", lambda self: no_registry())
    for text in ("vgg16:conv1,conv3=0.5/unit/l2", "lpips-vgg", "timm.resnet50:stages_1", "not-registered/x/y"):
        assert str(parse_spec(text)) == text


def test_parse_spec_imports_no_plugin_module():
    code = (
        "import sys, percept\n"
        "percept.parse_spec('alexnet:conv1,conv2=0.5/unit/l2')\n"
        "loaded = [m for m in sys.modules if m.startswith(('percept.builtin', 'percept.eval', 'percept.demo'))]\n"
        "registry = percept.registry._registry\n"
        "print(loaded, registry is None or not registry._loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] True"


def test_unknown_backbone_names_the_nearest_and_where_all_are_listed():
    """Over a hundred names are not listed in the error (issue 19, item 10): the nearest ones and the commands."""
    with pytest.raises(SpecError) as info:
        resolve_spec("resnt18")
    message = str(info.value)
    assert "Did you mean 'resnet18'" in message and "alexnet" not in message
    assert "`percept list backbones`, `percept list presets`" in message


def test_spec_error_is_value_error():
    assert issubclass(SpecError, ValueError)


def test_non_string_rejected():
    with pytest.raises(SpecError, match="must be a string"):
        parse_spec(42)  # type: ignore[arg-type]


def test_huge_spec_rejected():
    with pytest.raises(SpecError, match="characters long"):
        parse_spec("vgg16:" + ",".join(f"t{i}" for i in range(5000)))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_raises_only_spec_error(text):
    try:
        spec = parse_spec(text)
    except SpecError:
        return
    assert parse_spec(str(spec)) == spec


_names = st.sampled_from(["vgg16", "alexnet", "resnet18", "squeezenet1_1", "mobilenet_v2"])
_tap = st.builds(
    TapSpec,
    st.from_regex(r"\A[a-z][a-z0-9_]{0,6}\Z"),
    st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False)),
)


@settings(max_examples=200, deadline=None)
@given(
    _names,
    st.one_of(st.none(), st.lists(_tap, min_size=1, max_size=4, unique_by=lambda t: t.name)),
    st.one_of(st.none(), st.sampled_from(["raw", "unit"])),
    st.one_of(st.none(), st.sampled_from(["mse", "l1", "l2", "cosine"])),
)
def test_generated_specs_round_trip(backbone, taps, readout, distance):
    assume(taps is None or all(t.name != "all" for t in taps))  # "all" is a keyword, not a tap name
    spec = Spec(backbone, None if taps is None else tuple(taps), readout, distance)
    parsed = parse_spec(str(spec))
    expected_readout = readout if readout is not None else ("raw" if distance is not None else None)
    assert parsed == Spec(backbone, spec.taps, expected_readout, distance)
    assert str(parse_spec(str(parsed))) == str(parsed)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="vgg16:conv3,=0.5/unitl2 -_.all", max_size=40))
def test_near_miss_text_raises_only_spec_error(text):
    with contextlib.suppress(SpecError):
        parse_spec(text)
