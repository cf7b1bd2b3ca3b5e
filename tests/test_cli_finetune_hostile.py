"""``percept finetune`` under attack: outputs that are inputs (issue 27 case 1), a channel-weights file whose
list has the wrong length (case 7)."""

from __future__ import annotations

import json

import pytest
from _hostile import ALIASES, alias, manifest, refused

from percept.errors import InputError


@pytest.mark.parametrize("how", ALIASES)
def test_a_manifest_named_like_an_output_is_refused(tmp_path, capsys, how):
    data = manifest(tmp_path / "D", name="channel_weights.json")
    argv = ["finetune", "csv", str(alias(data, how, tmp_path / "links")), "--data-root", str(tmp_path / "D"),
            "--backbone", "pixel", "--weights", "none", "--out", str(tmp_path / "D"), "--lower-is-better"]  # fmt: skip
    refused(argv, data, capsys)


def test_channel_weights_of_the_wrong_length_name_the_file_and_field(tmp_path):
    from percept.eval.finetune import FORMAT, finetuned_pipeline

    path = tmp_path / "cw.json"
    data = {"format": FORMAT, "backbone": "pixel", "weights_source": None, "weights": {"pixel": [1.0, 1.0]}}
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"cw\.json.*weights\['pixel'\] holds 2 values.*3 channels"):
        finetuned_pipeline(path, weights=None)
