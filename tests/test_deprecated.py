"""The old module paths of the built-ins (percept.presets, percept.backbones.torchvision ...) still work for one
release: an attribute read through one warns with a DeprecationWarning naming the new path and is the very object
the new module holds."""

from __future__ import annotations

import importlib
import warnings

import pytest

from percept._deprecated import SHIMS, moved

# (old module, an attribute it had, the module that holds it now)
MOVED = [
    ("percept.backbones.torchvision", "create_torchvision_backbone", "percept.builtin._torchvision"),
    ("percept.backbones.torchvision", "build_arch", "percept.builtin._torchvision"),
    ("percept.backbones.torchvision", "FAMILIES", "percept.builtin._torchvision"),
    ("percept.backbones.torchvision", "L2Pool", "percept.builtin.dists"),
    ("percept.backbones.torchvision", "channels_last_to_map", "percept.builtin._maps"),
    ("percept.backbones.timm", "create_timm_backbone", "percept.builtin.timm"),
    ("percept.backbones.kornia", "create_kornia_backbone", "percept.builtin.kornia"),
    ("percept.presets", "load_lpips_heads", "percept.builtin.lpips"),
    ("percept.presets", "create_lpips", "percept.builtin.lpips"),
    ("percept.presets_dists", "create_dists", "percept.builtin.dists"),
    ("percept.presets_dists", "torchmetrics_dists_file", "percept.builtin.dists"),
    ("percept.distances.dists", "DISTSDistance", "percept.builtin.dists"),
    ("percept.distances.dists", "dists_terms", "percept.builtin.dists"),
    ("percept.distances.basic", "L2", "percept.builtin.distances"),
    ("percept.distances.ssim", "SSIMDistance", "percept.builtin.ssim"),
    ("percept.distances.style", "GramDistance", "percept.builtin.style"),
    ("percept.readouts.basic", "Raw", "percept.builtin.readouts"),
    ("percept.readouts.descriptors", "gram_matrix", "percept.builtin.descriptors"),
]


PUBLIC = {
    "create_torchvision_backbone": "percept.create_backbone(name, weights=...)",
    "FAMILIES": "percept.list_backbones()",
}


def test_every_shim_is_tested_and_listed():
    assert {old for old, _, _ in MOVED} == set(SHIMS)


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_attribute_through_a_shim_warns_and_is_the_same_object(old, name, new):
    shim = importlib.import_module(old)
    with pytest.warns(DeprecationWarning) as caught:
        value = getattr(shim, name)
    assert value is getattr(importlib.import_module(new), name)
    message = str(caught[0].message)
    assert f"{old}.{name}" in message and "next release" in message
    if "._" in new:  # a private module is never named: the public way to reach the name, or that there is none
        assert "._" not in message.replace(old, "")
        assert PUBLIC.get(name, "no public replacement") in message
    else:
        assert f"{new}.{name}" in message


@pytest.mark.parametrize("old", SHIMS)
def test_from_import_through_a_shim_warns(old):
    name = next(n for o, n, _ in MOVED if o == old)
    with pytest.warns(DeprecationWarning, match="next release of percept"):
        exec(f"from {old} import {name}", {})


def test_an_attribute_no_new_module_has_says_where_it_looked():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing found: no warning, an AttributeError
        with pytest.raises(AttributeError, match=r"no attribute 'nope'.*'percept\.builtin\.lpips'"):
            importlib.import_module("percept.presets").nope  # noqa: B018


def test_dunder_lookups_stay_silent():
    getattr_ = moved("percept.somewhere_old", "percept.errors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError):
            getattr_("__path__")
