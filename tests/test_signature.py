"""percept.signature: one line naming what produced a number; any change to range, preset version, resize or
weights changes it, equal configurations give equal signatures (in other processes too), and random weights
rebuild from their recorded seed."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import percept
from percept import PerceptualLoss, PerceptualMetric
from percept.backbones.factory import create_backbone, reproducible_weights
from percept.backbones.weights import state_dict_checksum
from percept.errors import WeightsError
from percept.pipeline import build_pipeline
from percept.signature import format_signature, parse_signature, signature, signature_record

pytestmark = pytest.mark.usefixtures("quiet_random_weights")

SPEC = "alexnet:conv1,conv2/unit/l2"


def test_fields_of_a_spec_and_a_preset():
    loss = PerceptualLoss(SPEC, weights="random:0")
    fields = parse_signature(loss.signature)
    record = signature_record(loss)
    assert fields["spec"] == SPEC and "version" not in fields  # a spec's text says everything
    assert fields["range"] == "0,1" and fields["resize"] == "none" and fields["percept"] == percept.__version__
    assert fields["weights"] == "random,seed=0," + record["weights"][: len("sha256:") + 12]
    assert record["weights"] == state_dict_checksum(loss.pipeline.backbone.model)  # the same as heads files record
    lpips = PerceptualMetric("lpips-alex", weights="random:0")
    fields = parse_signature(lpips.signature)
    assert fields["spec"] == "lpips-alex" and fields["version"] == "v0.1" and fields["heads"].startswith("sha256:")
    assert lpips.signature == signature(lpips.pipeline) == signature(lpips)
    assert signature(lpips, short=False).count("sha256:") == 2 and len(signature(lpips, short=False)) > 150


def test_every_setting_changes_it():
    base = signature(PerceptualMetric("lpips-alex", weights="random:0"))
    assert signature(PerceptualMetric("lpips-alex", weights="random:0")) == base  # equal configurations
    changed = {
        "range": signature(PerceptualMetric("lpips-alex", weights="random:0", input_range=(-1, 1))),
        "weights": signature(PerceptualMetric("lpips-alex", weights="random:1")),
        "resize": signature(PerceptualMetric("lpips-alex", weights="random:0"), resize=64),
        "preset": signature(PerceptualMetric("lpips-squeeze", weights="random:0")),
    }
    for what, text in changed.items():
        assert text != base, what
    assert parse_signature(changed["range"])["range"] == "-1,1"
    assert parse_signature(changed["resize"])["resize"] == "64"
    a, b = (build_pipeline(SPEC, weights="random:0", layer_weights=w) for w in ([1, 1], [1, 0.5]))
    assert signature(a) != signature(b)  # layer weights given apart from the spec text


def test_network_resize_is_named():
    text = signature(build_pipeline("alexnet:conv1", weights="random:0", resize=True))
    assert parse_signature(text)["resize"].startswith("224x224-")


def test_preset_version_changes_it():
    from percept.backbones.base import PretrainedCfg
    from percept.registry import get_registry

    def preset(tag: str):
        class Plugin:
            @percept.hookimpl
            def register_presets(self, register):
                def build(weights="imagenet", input_range=(0.0, 1.0)):
                    p = build_pipeline("alexnet:conv1", weights=weights, input_range=input_range)
                    p.spec = "sig-toy"
                    return p

                register("sig-toy", build, pretrained=(PretrainedCfg(tag=tag, source="test"),))

        return Plugin()

    registry, texts = get_registry(), []
    for tag in ("v1", "v2"):
        registry.register_plugin(preset(tag), "sig-toy-plugin")
        try:
            texts.append(signature(PerceptualLoss("sig-toy", weights="random:0")))
        finally:
            registry.unregister_plugin("sig-toy-plugin")
    assert [parse_signature(t)["version"] for t in texts] == ["v1", "v2"]


def test_in_place_change_of_heads_is_seen():
    metric = PerceptualMetric("lpips-alex", weights="random:0")
    before = metric.signature
    with torch.no_grad():
        next(iter(metric.pipeline.readouts[0].state_dict().values())).mul_(2)  # shares the tensor's version
    assert metric.signature != before


def test_random_weights_rebuild_from_the_seed():
    torch.manual_seed(5)
    first = create_backbone("alexnet", weights=None)
    torch.manual_seed(5)
    again = create_backbone("alexnet", weights=None)
    seed = first.random_seed
    assert isinstance(seed, int) and again.random_seed == seed
    rebuilt = create_backbone("alexnet", weights=reproducible_weights(first, None))
    assert reproducible_weights(first, None) == f"random:{seed}"
    assert state_dict_checksum(rebuilt.model) == state_dict_checksum(first.model)
    other = create_backbone("alexnet", weights=None)  # the generator moved on: another seed, other weights
    assert other.random_seed != seed and state_dict_checksum(other.model) != state_dict_checksum(first.model)
    assert reproducible_weights(first, "imagenet") == f"random:{seed}"  # the network says what it holds
    assert reproducible_weights(torch.nn.Identity(), "imagenet") == "imagenet"  # no seed: as asked
    with pytest.raises(WeightsError, match="expected 'random:SEED'"):
        create_backbone("alexnet", weights="random:-1")


def test_equal_configurations_agree_across_processes():
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "import torch; from percept import PerceptualLoss\n"
        "torch.manual_seed(11)\n"
        f"print(PerceptualLoss({SPEC!r}, weights=None).signature)\n"
        f"print(PerceptualLoss({SPEC!r}, weights='random:3').signature)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    torch.manual_seed(11)
    here = [PerceptualLoss(SPEC, weights=None).signature, PerceptualLoss(SPEC, weights="random:3").signature]
    assert out == here


def test_refuses_other_objects():
    with pytest.raises(TypeError, match="expected a PerceptualLoss, PerceptualMetric or Pipeline, got int"):
        signature(3)


def test_format_round_trips_through_parse():
    record = signature_record(PerceptualLoss(SPEC, weights="random:0"))
    fields = parse_signature(format_signature(record, short=False))
    assert fields["weights"] == f"random,seed=0,{record['weights']}"
    ensemble = parse_signature(signature(build_pipeline(f"elpips({SPEC})", weights="random:0")))
    assert ensemble["ensemble"] == "n:auto,seed:auto,keep:0.99,scale:8,offset:7"


def test_score_prints_and_records_it(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from percept.cli import main
    from percept.signature import read_signatures

    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).save(tmp_path / name)
    args = ["--spec", SPEC, "--weights", "random:0", "--device", "cpu"]
    expected = signature(build_pipeline(SPEC, weights="random:0"))
    assert main(["score", "--signature", *args]) == 0
    assert capsys.readouterr().out == expected + "\n"
    out = tmp_path / "scores.tsv"
    assert main(["score", str(tmp_path / "a.png"), str(tmp_path / "b.png"), *args, "-o", str(out)]) == 0
    assert read_signatures(out) == [expected] and out.read_text().splitlines()[1].startswith(str(tmp_path / "b.png"))
    assert main(["score", str(tmp_path / "a.png"), str(tmp_path / "b.png"), *args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["signature"] == expected and result["signature_record"]["seed"] == 0
    assert main(["score", *args]) == 2 and "needs REF and DIST" in capsys.readouterr().err


def test_files_with_random_weights_reload_the_same_network_or_refuse():
    from percept.eval.select.files import recorded_backbone

    net = create_backbone("alexnet", weights=None)
    data = {"backbone": "alexnet", "weights": reproducible_weights(net, None),
            "weights_checksum": state_dict_checksum(net.model)}  # fmt: skip
    again = recorded_backbone(data, "f.json", "weights")
    assert state_dict_checksum(again.model) == data["weights_checksum"]
    with pytest.raises(WeightsError, match="seed it does not record.*--weights random:SEED"):
        recorded_backbone({**data, "weights": None}, "f.json", "weights")
    with pytest.raises(WeightsError, match=r"has sha256:\w+, the file records sha256:0+; random weights drawn"):
        recorded_backbone({**data, "weights_checksum": "sha256:" + "0" * 64}, "f.json", "weights")


def test_random_weights_warning_names_the_callers_line():
    """It pointed at percept/backbones/factory.py; it names the user's line, however deep percept's calls go."""
    from percept import RandomWeightsWarning

    with pytest.warns(RandomWeightsWarning) as record:
        PerceptualLoss(SPEC, weights=None)
    assert {w.filename for w in record} == {__file__}
