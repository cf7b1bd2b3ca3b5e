"""``percept visualize`` under attack: `--images D --out D/p0.png` overwrote an image (issue 27 case 1)."""

from __future__ import annotations

import pytest
from _hostile import ALIASES, alias, refused, tiny_image


@pytest.mark.parametrize("how", ALIASES)
def test_out_naming_an_image_of_images_is_refused(tmp_path, capsys, how):
    image = tiny_image(tmp_path / "D" / "p0.png")
    out = alias(image, how, tmp_path / "links")
    argv = ["visualize", "pixel", "pixel", "0", "--weights", "none", "--steps", "1", "--size", "16",
            "--images", str(tmp_path / "D"), "--out", str(out)]  # fmt: skip
    refused(argv, image, capsys)
