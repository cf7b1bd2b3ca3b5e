"""percept.images is where image reading lives (the CLI, the demo and the toolkit share it), and
percept.errors.first_line is the one way an exception becomes a one-line report."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import percept.cli
import percept.images
from percept.errors import InputError, first_line

ROOT = Path(__file__).resolve().parents[1]


def test_the_cli_names_stay_importable():
    assert percept.cli.load_image is percept.images.load_image
    assert percept.cli.find_pairs is percept.images.find_pairs
    assert percept.cli.load_pair is percept.images.load_pair


def test_nothing_below_the_cli_imports_it():
    """The toolkit and the demo read images through percept.images, not by reaching up into the CLI."""
    offenders = []
    for path in sorted((ROOT / "percept").rglob("*.py")):
        if path.name == "__main__.py" and path.parent.name == "percept":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if "percept.cli" in modules:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_load_image_and_the_extensions(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((5, 7), 255, dtype=np.uint8)).save(path)
    image = percept.images.load_image(path)
    assert image.shape == (1, 5, 7) and float(image.min()) == 1.0
    assert {".png", ".jpg", ".bmp"} <= percept.images.image_extensions()
    (tmp_path / "broken.png").write_bytes(b"not a png\nsecond line")
    with pytest.raises(InputError, match=r"cannot read image '.*broken.png': [^\n]+$"):
        percept.images.load_image(tmp_path / "broken.png")


@pytest.mark.parametrize(
    ("exc", "kwargs", "expected"),
    [
        (ValueError("first\nsecond"), {}, "first"),
        (ValueError("  \n first \nsecond"), {"with_type": True}, "ValueError: first"),
        (KeyError(), {}, "KeyError"),
        (RuntimeError(""), {"with_type": True}, "RuntimeError"),
        (OSError("x" * 50), {"limit": 10}, "x" * 10),
    ],
)
def test_first_line(exc, kwargs, expected):
    assert first_line(exc, **kwargs) == expected


def test_resize_image_is_the_one_resizer():
    import torch

    image = torch.rand(3, 40, 60)
    assert percept.images.resize_image(image, 16).shape == (3, 16, 16)
    assert percept.images.resize_image(image[None], (10, 30)).shape == (1, 3, 10, 30)
    square = percept.images.resize_image(image, shorter_side=20, crop=20)
    assert square.shape == (3, 20, 20) and float(square.min()) >= 0.0 and float(square.max()) <= 1.0
    assert torch.equal(percept.images.resize_image(image), image)  # no size: untouched
    with pytest.raises(InputError, match="not both"):
        percept.images.resize_image(image, 16, shorter_side=16)
    with pytest.raises(InputError, match="expected a crop of 1 to 40 pixels"):
        percept.images.resize_image(image, crop=41)
