"""Shared pieces of the adversarial CLI tests (tests/test_cli_*_hostile.py): tiny inputs, the ways an
output can name an input (the same path, a symbolic link, a hard link), and a runner that checks the
output guard refused and left the input as it was."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from percept.cli import main

# How an output path can name an input file: the path itself, a symbolic link to it, a hard link to it.
ALIASES = ("same path", "symlink", "hardlink")


def alias(target: Path, how: str, folder: Path | None = None) -> Path:
    """A path naming ``target`` in the way ``how`` says (made in ``folder``, default target's own)."""
    if how == "same path":
        return target
    folder = folder or target.parent
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / f"alias-{how}{target.suffix}"
    if how == "symlink":
        link.symlink_to(target.resolve())
    else:
        os.link(target, link)
    return link


def tiny_image(path: Path, seed: int = 0, size: tuple[int, int] = (24, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def manifest(root: Path, refs: int = 2, levels: int = 2, name: str = "scores.csv") -> Path:
    """A csv manifest ``dis_img_path,ref_img_path,score`` with images beside it in ``root``."""
    lines = ["dis_img_path,ref_img_path,score"]
    for r in range(refs):
        tiny_image(root / f"ref{r}.png", seed=r)
        for lv in range(levels):
            tiny_image(root / f"d{r}_{lv}.png", seed=100 + 10 * r + lv)
            lines.append(f"d{r}_{lv}.png,ref{r}.png,{5.0 - lv + 0.1 * r}")
    path = root / name
    path.write_text("\n".join(lines) + "\n")
    return path


def refused(argv: list[str], protected: Path, capsys) -> str:
    """Run the CLI in-process; assert it exits 2 with the guard's message and ``protected`` is unchanged."""
    before = protected.read_bytes()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "is one of the input files; writing it would destroy that input" in err, err
    assert protected.read_bytes() == before
    return err
