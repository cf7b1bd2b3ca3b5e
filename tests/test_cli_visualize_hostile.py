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


@pytest.mark.parametrize("out", ["-", "/dev/stdout"])
def test_out_dash_writes_the_png_to_standard_output(tmp_path, capsysbinary, monkeypatch, out):
    from percept.cli import main

    tiny_image(tmp_path / "D" / "p0.png")
    monkeypatch.chdir(tmp_path)
    argv = ["visualize", "pixel", "pixel", "0", "--weights", "none", "--steps", "1", "--size", "16",
            "--images", str(tmp_path / "D"), "--out", out]  # fmt: skip
    assert main(argv) == 0
    assert capsysbinary.readouterr().out.startswith(b"\x89PNG\r\n\x1a\n")
    assert not (tmp_path / "-").exists()


def test_out_with_another_format_is_one_error_line(tmp_path, capsys):
    from percept.cli import main

    tiny_image(tmp_path / "D" / "p0.png")
    argv = ["visualize", "pixel", "pixel", "0", "--weights", "none", "--steps", "1", "--size", "16",
            "--images", str(tmp_path / "D"), "--out", str(tmp_path / "map.jpg")]  # fmt: skip
    assert main(argv) == 2
    assert "must name a .png file" in capsys.readouterr().err
