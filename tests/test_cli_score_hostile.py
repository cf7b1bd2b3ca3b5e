"""``percept score`` under attack: outputs that are inputs, the standard output named as a file (issue 27
case 2), a non-UTF-8 file name (case 11), odd entries in folder mode (case 16), a tap weight that overflows
(case 7)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _hostile import ALIASES, alias, refused, tiny_image

from percept.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")
SPEC = ["--spec", "pixel:pixel/raw/l2", "--weights", "none", "--device", "cpu"]


@pytest.fixture
def pair(tmp_path):
    return tiny_image(tmp_path / "a.png", 0), tiny_image(tmp_path / "b.png", 1)


@pytest.mark.parametrize("how", ALIASES)
def test_output_naming_an_input_is_refused(pair, tmp_path, capsys, how):
    output = alias(pair[1], how, tmp_path / "o")
    refused(["score", str(pair[0]), str(pair[1]), "-o", str(output), *SPEC], pair[1], capsys)


def test_output_dash_is_stdout_not_a_file(pair, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["score", str(pair[0]), str(pair[1]), "-o", "-", *SPEC]) == 0
    assert capsys.readouterr().out.split("\n", 1)[1].startswith(f"{pair[1]}\t")  # after '# signature: ...'
    assert not (tmp_path / "-").exists()


# One Python process (importing torch once), started by the shell with its standard output a pipe; then it
# points its standard output at a file holding a first line, as `{ echo H; ...; echo F; } > log.txt` does, and
# at an input image opened for appending, as `>> a.png` does.
SCRIPT = """
import json, os, sys
from percept.cli import main
args = ["score", "a.png", "b.png", "--spec", "pixel:pixel/raw/l2", "--weights", "none", "--device", "cpu"]
codes = [main(args + ["-o", "/dev/stdout"])]
sys.stdout.flush()
saved = os.dup(1)
log = os.open("log.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(log, b"H\\n")
os.dup2(log, 1)
codes.append(main(args + ["-o", "/dev/stdout"]))
sys.stdout.flush()
os.write(1, b"F\\n")
append = os.open("a.png", os.O_WRONLY | os.O_APPEND)
os.dup2(append, 1)
codes.append(main(args + ["-o", "/dev/stdout"]))
os.dup2(saved, 1)
with open("codes.json", "w") as f:
    json.dump(codes, f)
"""


def test_dev_stdout_is_written_in_place_into_a_pipe_a_file_and_an_append(pair, tmp_path):
    """Case 2: `{ echo H; percept score ... -o /dev/stdout; echo F; } > log.txt` kept only the scores, a pipe
    failed with 'the folder does not exist', and `>>` to an input would have written into it."""
    import json

    (tmp_path / "run.py").write_text(SCRIPT)
    before = pair[0].read_bytes()
    command = f"{sys.executable} run.py | cat > piped.txt"
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "codes.json").read_text()) == [0, 0, 2], result.stderr
    assert (tmp_path / "piped.txt").read_text().splitlines()[1].startswith("b.png\t")  # after '# signature:'
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert lines[0] == "H" and lines[1].startswith("# signature: ") and lines[2].startswith("b.png\t"), lines
    assert lines[3:] == ["F"], lines
    assert "is one of the input files" in result.stderr
    assert pair[0].read_bytes() == before


@pytest.mark.skipif(sys.platform != "linux", reason="file names as raw bytes: Linux file systems")
def test_a_non_utf8_file_name_is_written_back_as_its_bytes(tmp_path, capsys):
    """Case 11: `score -o FILE` with a name like caf\\xe9.png raised UnicodeEncodeError, losing every score."""
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    name = os.fsdecode(b"caf\xe9.png")
    for folder, seed in ((ref, 0), (dist, 1)):
        tiny_image(folder / name, seed)
        tiny_image(folder / "plain.png", seed + 2)
    out = tmp_path / "scores.tsv"
    assert main(["score", str(ref), str(dist), "-o", str(out), *SPEC]) == 0, capsys.readouterr().err
    lines = out.read_bytes().splitlines()[1:]  # after the '# signature: ...' line
    assert [line.split(b"\t")[0] for line in lines] == [b"caf\xe9.png", b"plain.png"]
    assert main(["score", str(ref), str(dist), "--json", *SPEC]) == 0  # JSON escapes the name
    assert "caf\\udce9.png" in capsys.readouterr().out


def test_odd_entries_in_folder_mode_are_named(tmp_path, capsys):
    """Case 16: a folder named x.png was 'does not exist'; FIFOs and symlink loops were skipped silently."""
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    for name, seed in (("ok.png", 0), ("dir.png", 1), ("fifo.png", 2), ("loop.png", 3)):
        tiny_image(ref / name, seed)
    tiny_image(dist / "ok.png", 5)
    (dist / "dir.png").mkdir()
    os.mkfifo(dist / "fifo.png")
    (dist / "loop.png").symlink_to(dist / "loop.png")
    assert main(["score", str(ref), str(dist), *SPEC]) == 2
    err = capsys.readouterr().err
    assert f"'{dist / 'dir.png'}' is a folder, not an image file" in err
    assert f"'{dist / 'fifo.png'}' is a FIFO (named pipe), not an image file" in err
    assert f"'{dist / 'loop.png'}' is a symbolic link loop, not an image file" in err
    assert "3 entries named like images but not image files skipped" in err


def test_a_fifo_given_as_an_image_is_named(tmp_path, capsys, pair):
    os.mkfifo(tmp_path / "pipe")
    assert main(["score", str(pair[0]), str(tmp_path / "pipe"), *SPEC]) == 2
    assert f"'{tmp_path / 'pipe'}' is a FIFO (named pipe)" in capsys.readouterr().err


def test_an_overflowing_tap_weight_is_a_clear_error(tmp_path, capsys):
    """Case 7: `pixel:pixel=3e38/raw/l2` gave inf."""
    black, white = tmp_path / "black.png", tmp_path / "white.png"
    from PIL import Image

    Image.new("RGB", (16, 16), (0, 0, 0)).save(black)
    Image.new("RGB", (16, 16), (255, 255, 255)).save(white)
    args = ["score", str(black), str(white), "--spec", "pixel:pixel=3e38/raw/l2", "--weights", "none"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the weight 3e+38 of tap 'pixel'" in err and "float32's range" in err, err
