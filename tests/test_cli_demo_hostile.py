"""``percept demo`` under attack: an output that is an input image or the weights file (issue 27 case 1)."""

from __future__ import annotations

import pytest
from _hostile import ALIASES, alias, refused, tiny_image


@pytest.mark.parametrize("how", ALIASES)
def test_weights_file_named_like_an_output_is_refused(tmp_path, capsys, how):
    weights = tmp_path / "D" / "scores.png"
    weights.parent.mkdir()
    weights.write_bytes(b"not really weights")
    image = tiny_image(tmp_path / "img.png")
    target = alias(weights, how, tmp_path / "out")
    out = target.parent if how == "same path" else tmp_path / "out"
    if how != "same path":
        target.rename(out / "scores.png")
    refused(["demo", "--out", str(out), "--weights", str(weights), "--images", str(image)], weights, capsys)
