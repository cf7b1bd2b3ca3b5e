"""percept.testing: the built-ins pass the contract kit, and the kit catches what breaks the contract."""

from __future__ import annotations

import pytest
from torch import nn

import percept
from percept.backbones.base import Backbone, flatten_stages
from percept.builtin.distances import L2
from percept.distances.base import Distance
from percept.errors import InputError, PluginWarning, RegistrationError, SpecError
from percept.readouts.base import Readout
from percept.testing import (
    ContractError,
    ContractReport,
    check_backbone,
    check_distance,
    check_pipeline,
    check_plugin,
    check_readout,
)

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


# -- the built-ins run the same kit ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["alexnet", "squeezenet1_1", "resnet18"])
def test_builtin_backbones_meet_the_contract(name):
    report = check_backbone(name)
    assert isinstance(report, ContractReport) and report.name == name
    assert {"produces declared taps", "batch independence", "gradients reach the image", "bad input"} <= set(
        report.passed
    )


@pytest.mark.parametrize("name", percept.list_readouts())
def test_registered_readouts_meet_the_contract(name):
    assert "batch independence" in check_readout(name).passed


@pytest.mark.parametrize("name", percept.list_distances())
def test_registered_distances_meet_the_contract(name):
    report = check_distance(name)
    assert {"identity", "batch independence", "gradients", "bad input"} <= set(report.passed)


def test_builtin_distances_on_vectors():
    for name in ("mse", "l1", "l2", "cosine"):
        assert "identity" in check_distance(name, shape=(3, 7)).passed


def test_check_plugin_runs_over_a_builtin_plugin():
    reports = check_plugin("percept.builtin.readouts")
    assert [r.name for r in reports] == ["raw", "unit"]


def test_lpips_preset_meets_the_pipeline_contract():
    report = check_pipeline("lpips-alex")
    assert {"identity", "gradients", "bad input"} <= set(report.passed)


def test_unknown_plugin_is_a_clear_error():
    with pytest.raises(SpecError, match="unknown plugin 'no-such-plugin'.*Is its package installed"):
        check_plugin("no-such-plugin")


def test_skipped_plugin_is_a_clear_error(tmp_path, monkeypatch):
    info = tmp_path / "percept_kit_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: percept-kit-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[percept]\nkit_broken = kit_broken_module\n")
    (tmp_path / "kit_broken_module.py").write_text("raise ImportError('broken for the kit test')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PERCEPT_PLUGINS", raising=False)
    monkeypatch.setattr(percept.registry, "_registry", None)  # rediscover; the old registry comes back after
    with pytest.warns(PluginWarning, match="kit_broken"):
        percept.registry.get_registry().ensure_loaded()
    with pytest.raises(RegistrationError, match="plugin 'kit_broken' was skipped.*broken for the kit test"):
        check_plugin("kit_broken")


# -- the kit catches broken objects ----------------------------------------------------------------


class BatchMean(nn.Module):
    """Subtracts the batch mean: each sample's output then depends on the others."""

    def forward(self, x):
        return x - x.mean(dim=0, keepdim=True)


class Detach(nn.Module):
    def forward(self, x):
        return x.detach()


def tiny_backbone(middle: nn.Module) -> Backbone:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), middle, nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1))
    model.eval().requires_grad_(False)
    taps = [("conv1", "0", False), ("mid", "2", True), ("conv2", "3", True)]
    return Backbone("tiny", model, flatten_stages(model), taps, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def test_a_well_formed_custom_backbone_passes():
    assert "stops at the deepest tap" in check_backbone(tiny_backbone(nn.Identity())).passed


def test_kit_catches_a_batch_dependent_backbone():
    with pytest.raises(ContractError, match="backbone 'tiny' fails check 'batch independence'"):
        check_backbone(tiny_backbone(BatchMean()))


def test_kit_catches_a_backbone_that_cuts_the_gradient():
    with pytest.raises(ContractError, match="'gradients reach the image'"):
        check_backbone(tiny_backbone(Detach()))


def test_kit_catches_a_factory_returning_something_else():
    def factory(weights=None):
        return nn.Identity()

    with pytest.raises(ContractError, match="returned Identity, expected a percept.backbones.Backbone"):
        check_backbone(factory)


class BatchNormalised(Readout):
    """Normalises by the batch's largest value: not batch-independent."""

    def forward(self, features):
        return features / (features.abs().amax() + 1e-6)


class LyingFusable(Readout):
    """Declares itself fusable without normalisation but scales its features."""

    fusable = True

    def forward(self, features):
        return 2 * features


def test_kit_catches_a_batch_dependent_readout():
    with pytest.raises(ContractError, match="readout 'BatchNormalised' fails check 'batch independence'"):
        check_readout(BatchNormalised())


def test_kit_catches_a_fusable_readout_that_does_more():
    with pytest.raises(ContractError, match="'fusable readout is what it declares'"):
        check_readout(lambda channels: LyingFusable())


class Offset(Distance):
    """mean squared difference plus one: d(x, x) = 1."""

    def forward(self, a, b, *, spatial=False):
        if a.shape != b.shape:
            raise InputError(f"shapes differ: {tuple(a.shape)} and {tuple(b.shape)}")
        return (a - b).square().flatten(1).mean(1) + 1


class Lopsided(Distance):
    """Declares symmetry but weighs its inputs differently."""

    def forward(self, a, b, *, spatial=False):
        return (2 * a - b).abs().flatten(1).mean(1)


class WrongShape(Distance):
    def forward(self, a, b, *, spatial=False):
        return (a - b).square().mean(dim=(1, 2, 3), keepdim=True)


class Unchecked(Distance):
    """A distance that forgets to check its inputs: features with different channels are compared anyway."""

    def forward(self, a, b, *, spatial=False):
        if a.dim() < 2:
            return (a - b).square().mean().reshape(1)
        return (a.mean(1) - b.mean(1)).square().flatten(1).mean(1)


@pytest.mark.parametrize(
    ("distance", "check"),
    [(Offset(), "identity"), (Lopsided(), "identity"), (WrongShape(), "one value per sample")],
)
def test_kit_catches_broken_distances(distance, check):
    with pytest.raises(ContractError, match=f"fails check '{check}'"):
        check_distance(distance)


def test_kit_catches_a_false_symmetry_claim():
    class Asymmetric(Distance):
        def forward(self, a, b, *, spatial=False):
            if a.shape != b.shape or a.dim() < 2:
                raise InputError(f"bad shapes {tuple(a.shape)}, {tuple(b.shape)}")
            return (a - b).relu().flatten(1).mean(1)

    with pytest.raises(ContractError, match="'symmetry'.*symmetric = True"):
        check_distance(Asymmetric())


def test_kit_catches_a_distance_without_input_checks():
    with pytest.raises(ContractError, match="'bad input'.*should raise InputError"):
        check_distance(Unchecked())


def test_kit_arguments_are_checked():
    with pytest.raises(InputError, match="N >= 2"):
        check_distance(L2(), shape=(1, 3, 4, 4))
    with pytest.raises(InputError, match="batch >= 2"):
        check_readout("raw", batch=1)
