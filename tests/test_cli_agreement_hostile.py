"""``percept agreement`` under attack (issue 27's rules for every command): an --out that is the manifest or an
image by any path is refused; '-' is standard output, not a file named '-'."""

from __future__ import annotations

from pathlib import Path

import pytest
from _hostile import ALIASES, alias, refused, tiny_image

from percept.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


def _triplets(root: Path) -> Path:
    lines = ["ref,p0,p1,judge"]
    for i in range(3):
        for seed, name in enumerate(("r", "a", "b")):
            tiny_image(root / f"{name}{i}.png", seed=10 * i + seed)
        lines.append(f"r{i}.png,a{i}.png,b{i}.png,0.{i + 2}")
    path = root / "m.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _agreement(data: Path, out: str) -> list[str]:
    return ["agreement", "triplets", str(data), "pixel:pixel/raw/l2", "--data-root", str(data.parent),
            "--weights", "none", "--no-progress", "--device", "cpu", "--out", out]  # fmt: skip


@pytest.mark.parametrize("how", ALIASES)
def test_out_naming_the_manifest_is_refused(tmp_path, capsys, how):
    data = _triplets(tmp_path / "D")
    refused(_agreement(data, str(alias(data, how, tmp_path / "links"))), data, capsys)


def test_out_naming_an_image_is_refused(tmp_path, capsys):
    data = _triplets(tmp_path / "D")
    refused(_agreement(data, str(tmp_path / "D" / "a0.png")), tmp_path / "D" / "a0.png", capsys)


def test_out_dash_is_standard_output(tmp_path, capsys, monkeypatch):
    data = _triplets(tmp_path / "D")
    monkeypatch.chdir(tmp_path)
    assert main(_agreement(data, "-")) == 0
    assert "subset,n," in capsys.readouterr().out
    assert not (tmp_path / "-").exists()
