"""The weights catalogue for the presets' own files (LPIPS linear heads, DISTS alpha/beta) and the new torchvision
entries: records complete, the published SHA-256 checked against the files installed here (hashed now, never
committed), and the ``--weights`` listings of the CLI."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from percept.backbones.catalogue import (
    installed_preset_file,
    preset_weight_sets,
    preset_weights_text,
    verify_preset_file,
    weight_sets,
    weights_text,
)
from percept.cli import main

PRESETS = ("lpips-alex", "lpips-vgg", "lpips-squeeze", "dists")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def package_file(package: str, *parts: str) -> Path | None:
    """A file inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    return path if path.is_file() else None


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_file_has_a_complete_record(name):
    (cfg,) = preset_weight_sets(name)
    assert cfg.source and cfg.url and cfg.filename and cfg.license and cfg.task and cfg.data
    assert len(cfg.checksum) == 64 and int(cfg.checksum, 16) >= 0
    assert cfg.url.endswith(cfg.filename)
    assert cfg.extra["backbone"] in ("alexnet", "vgg16", "squeezenet1_1", "vgg16_l2pool")


@pytest.mark.parametrize("name", PRESETS)
def test_the_installed_copy_has_the_published_checksum(name):
    path = installed_preset_file(name)
    if path is None:
        pytest.skip("torchmetrics is not installed: no copy to check")
    assert sha256(path) == preset_weight_sets(name)[0].checksum
    assert verify_preset_file(name) is True


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_lpips_heads_are_the_lpips_package_files(net):
    original = package_file("lpips", "weights", "v0.1", f"{net}.pth")
    if original is None:
        pytest.skip("the lpips package is not installed")
    assert sha256(original) == preset_weight_sets(f"lpips-{net}")[0].checksum


def test_dists_weights_are_the_dists_pytorch_file():
    original = package_file("DISTS_pytorch", "weights.pt")
    if original is None:
        pytest.skip("DISTS_pytorch is not installed")
    assert sha256(original) == preset_weight_sets("dists")[0].checksum


def test_a_different_file_fails_the_check(tmp_path):
    fake = tmp_path / "alex.pth"
    fake.write_bytes(b"not the LPIPS heads")
    assert verify_preset_file("lpips-alex", fake) is False
    assert verify_preset_file("lpips-alex", tmp_path / "missing.pth") is None
    assert preset_weight_sets("map-selection") == () and preset_weights_text("map-selection") == "-"


def test_new_torchvision_entries_have_weight_records():
    (maxvit,) = weight_sets("maxvit_t")
    assert maxvit.checksum and maxvit.extra["crop_size"] == 224
    lraspp = weight_sets("lraspp_mobilenet_v3_large")
    assert lraspp[0].task == "segmentation" and lraspp[0].checksum == "d234d4ea"


def test_cli_lists_the_presets_files_with_the_backbones(capsys):
    assert main(["list", "backbones", "--weights"]) == 0
    out = capsys.readouterr().out
    section = out[out.index("weight files of the presets") :]
    expected = (
        ("lpips-alex", "alex.pth", "BSD-2-Clause"),
        ("lpips-vgg", "vgg.pth", "BSD-2-Clause"),
        ("dists", "weights.pt", "MIT"),
    )
    for name, filename, licence in expected:
        line = next(li for li in section.splitlines() if li.startswith(name + " "))
        assert filename in line and "sha256" in line and licence in line
    assert "KADID-10k" in section


def test_cli_lists_preset_weights(capsys):
    assert main(["list", "presets", "--weights"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "PLUGIN", "DESCRIPTION"]
    dists = lines[next(i for i, li in enumerate(lines) if li.startswith("dists ")) + 1]  # the line under it
    assert dists.startswith("    weights: weights.pt v0.1") and "sha256 f5e65c96230b" in dists
    assert main(["list", "readouts", "--weights"]) == 2
    assert "backbones and presets" in capsys.readouterr().err


def test_a_plugin_states_its_weight_sets_with_its_registration():
    """``register(..., pretrained=...)``: records (or a function giving them, bound to the served name for a
    prefix entry) are what the catalogue lists; ``()`` says the backbone has no weights, nothing says nothing."""
    import percept
    from percept.plugin import PretrainedCfg
    from percept.registry import get_registry

    v1 = PretrainedCfg(tag="v1", source="https://example.org/r1net-v1.pth", data="toy data", checksum="0123abcd")
    v2 = PretrainedCfg(tag="v2", source="https://example.org/r1net-v2.pth", data="toy data", aliases=("imagenet",))
    asked = []

    class Plugin:
        @percept.hookimpl
        def register_backbones(self, register):
            register("r1net", lambda **kw: None, pretrained=(v1, v2))
            register("r1bare", lambda **kw: None, pretrained=())
            register("r1quiet", lambda **kw: None)
            register("r1zoo", lambda rest, **kw: None, prefix=True, pretrained=lambda rest: asked.append(rest) or [v1])

    registry = get_registry()
    registry.register_plugin(Plugin(), "r1-records")
    try:
        assert weight_sets("r1net") == (v1, v2)
        text = weights_text("r1net")
        assert text.startswith("v1 [toy data; classification; sha256 0123abcd...], imagenet (= v2) [toy data")
        assert weights_text("r1bare") == "- (no weights)" and weights_text("r1quiet") == "-"
        assert weight_sets("r1zoo.small") == (v1,) and asked == ["small"]
    finally:
        registry.unregister_plugin("r1-records")


def test_pretrained_must_be_records_or_a_function():
    import percept
    from percept.errors import RegistrationError
    from percept.registry import get_registry

    class Plugin:
        @percept.hookimpl
        def register_backbones(self, register):
            register("r1odd", lambda **kw: None, pretrained=42)

    with pytest.raises(RegistrationError, match="pretrained must be records or a function"):
        get_registry().register_plugin(Plugin(), "r1-odd")


def test_torchvision_records_mark_the_set_imagenet_loads():
    """One tag case (lower) everywhere; ``aliases`` names the set that ``weights="imagenet"`` loads."""
    from percept.builtin._torchvision import torchvision_records, weight_tags

    for arch in ("resnet50", "vgg16", "mobilenet_v2", "fcn_resnet50"):
        records = torchvision_records(arch)
        (default,) = [c for c in records if c.aliases]
        assert all(c.tag == c.tag.lower() for c in records)
        assert weight_tags(arch)["imagenet"].name.lower() == default.tag
    assert next(c for c in torchvision_records("fcn_resnet50") if c.aliases).aliases == ("imagenet", "coco")
