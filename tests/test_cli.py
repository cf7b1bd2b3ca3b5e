"""The ``percept`` command: score, list, taps, plugins, errors and exit codes.

Networks load from small random-weight state_dict files saved here, so nothing is downloaded.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import percept.cli
import percept.registry
from percept.cli import find_pairs, load_image, main
from percept.errors import PluginWarning

SPEC = "lpips-squeeze"  # SqueezeNet: a 5 MB weight file, quick to build


@pytest.fixture(scope="module")
def squeeze_weights(tmp_path_factory) -> str:
    """Random SqueezeNet 1.1 weights in torchvision's format (the full model, classifier included)."""
    path = tmp_path_factory.mktemp("weights") / "squeezenet_random.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    return str(path)


def save_image(path: Path, seed: int = 0, size: tuple[int, int] = (64, 64), mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def make_folders(tmp_path: Path, ref_names, dist_names) -> tuple[Path, Path]:
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    ref.mkdir()
    dist.mkdir()
    for i, name in enumerate(ref_names):
        save_image(ref / name, seed=i)
    for i, name in enumerate(dist_names):
        save_image(dist / name, seed=100 + i)
    return ref, dist


def score(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``percept score``; the TSV's first line, ``# signature: ...`` (tests/test_signature.py), is taken off."""
    code = main(["score", *args])
    out, err = capsys.readouterr()
    if out.startswith("# signature: "):
        out = out.split("\n", 1)[1]
    return code, out, err


# -- score -----------------------------------------------------------------------------------------


def test_score_two_files(tmp_path, capsys, squeeze_weights):
    a, b = save_image(tmp_path / "a.png", 0), save_image(tmp_path / "b.png", 1)
    code, out, err = score(capsys, str(a), str(b), "--spec", SPEC, "--weights", squeeze_weights)
    assert code == 0, err
    name, value = out.strip().split("\t")
    assert name == str(b)
    assert float(value) > 0


def test_score_identical_files_is_zero(tmp_path, capsys, squeeze_weights):
    a = save_image(tmp_path / "a.png", 0)
    code, out, _ = score(capsys, str(a), str(a), "--spec", SPEC, "--weights", squeeze_weights)
    assert code == 0
    assert float(out.split("\t")[1]) == 0.0


def test_score_default_spec_is_lpips_alex(tmp_path, capsys):
    weights = tmp_path / "alexnet_random.pth"
    torch.save(torchvision.models.alexnet().state_dict(), weights)
    a, b = save_image(tmp_path / "a.png", 0), save_image(tmp_path / "b.png", 1)
    code, out, err = score(capsys, str(a), str(b), "--json", "--weights", str(weights))
    assert code == 0, err
    result = json.loads(out)
    assert result["spec"] == "lpips-alex"
    assert result["scores"][0]["score"] > 0


def test_score_folders_pair_by_name_and_name_the_rest(tmp_path, capsys, squeeze_weights):
    ref, dist = make_folders(tmp_path, ["a.png", "b.png", "only_ref.png"], ["a.png", "b.png", "only_dist.png"])
    (ref / "notes.txt").write_text("not an image")
    (ref / ".hidden.png").write_bytes(b"")
    code, out, err = score(capsys, str(ref), str(dist), "--spec", SPEC, "--weights", squeeze_weights)
    assert code == 2, err  # an image without a partner is an error: the run did not score everything
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert [name for name, _ in lines] == ["a.png", "b.png"]
    assert all(float(v) > 0 for _, v in lines)
    assert f"percept: error: '{ref / 'only_ref.png'}' has no partner: '{dist / 'only_ref.png'}' does not exist" in err
    assert f"percept: error: '{dist / 'only_dist.png'}' has no partner" in err
    assert "0 of 2 pairs could not be scored and 2 images had no partner (see above); 2 scored" in err
    assert "percept: warning: 1 file without an image extension ignored" in err and "notes.txt" in err
    assert ".hidden" not in err


def test_score_json(tmp_path, capsys, squeeze_weights):
    ref, dist = make_folders(tmp_path, ["a.png", "b.png"], ["a.png", "b.png"])
    code, out, err = score(capsys, str(ref), str(dist), "--spec", SPEC, "--weights", squeeze_weights, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["spec"] == SPEC
    assert result["errors"] == []
    assert [Path(s["ref"]).name for s in result["scores"]] == ["a.png", "b.png"]
    assert [s["dist"] for s in result["scores"]] == [str(dist / "a.png"), str(dist / "b.png")]
    assert all(isinstance(s["score"], float) and s["score"] > 0 for s in result["scores"])


def test_score_matches_the_library(tmp_path, capsys, squeeze_weights):
    import percept

    a, b = save_image(tmp_path / "a.png", 0), save_image(tmp_path / "b.png", 1)
    _, out, _ = score(capsys, str(a), str(b), "--spec", SPEC, "--weights", squeeze_weights, "--json")
    pipeline = percept.build_pipeline(SPEC, weights=squeeze_weights)
    with torch.no_grad():
        expected = float(pipeline(load_image(a)[None], load_image(b)[None])[0])
    assert json.loads(out)["scores"][0]["score"] == pytest.approx(expected, rel=1e-6)


def test_score_broken_file_keeps_the_other_scores(tmp_path, capsys, squeeze_weights):
    ref, dist = make_folders(tmp_path, ["a.png", "b.png", "c.png"], ["a.png", "b.png", "c.png"])
    (dist / "b.png").write_bytes(b"this is not a png")
    code, out, err = score(capsys, str(ref), str(dist), "--spec", SPEC, "--weights", squeeze_weights)
    assert code == 2
    assert [line.split("\t")[0] for line in out.strip().splitlines()] == ["a.png", "c.png"]
    assert f"percept: error: cannot read image '{dist / 'b.png'}'" in err
    assert "1 of 3 pairs could not be scored" in err
    assert "Traceback" not in err


def test_score_broken_file_json_and_output_file(tmp_path, capsys, squeeze_weights):
    ref, dist = make_folders(tmp_path, ["a.png", "b.png"], ["a.png", "b.png"])
    (ref / "a.png").write_bytes(b"")
    target = tmp_path / "scores.json"
    code, out, err = score(
        capsys, str(ref), str(dist), "--spec", SPEC, "--weights", squeeze_weights, "--json", "-o", str(target)
    )
    assert code == 2
    assert out == ""
    result = json.loads(target.read_text())
    assert [Path(s["dist"]).name for s in result["scores"]] == ["b.png"]
    assert result["errors"][0]["ref"] == str(ref / "a.png")
    assert str(ref / "a.png") in result["errors"][0]["error"] and str(ref / "a.png") in err


def test_score_different_sizes_name_both_files(tmp_path, capsys, squeeze_weights):
    a = save_image(tmp_path / "a.png", 0, size=(64, 64))
    b = save_image(tmp_path / "b.png", 1, size=(80, 64))
    code, out, err = score(capsys, str(a), str(b), "--spec", SPEC, "--weights", squeeze_weights)
    assert code == 2
    assert out == ""
    assert str(a) in err and str(b) in err and "same size" in err and "64x64" in err and "80x64" in err


def test_score_grey_reference_with_colour_distorted(tmp_path, capsys, squeeze_weights):
    a = save_image(tmp_path / "a.png", 0, mode="L")
    b = save_image(tmp_path / "b.png", 1)
    code, out, err = score(capsys, str(a), str(b), "--spec", SPEC, "--weights", squeeze_weights)
    assert code == 0, err
    assert float(out.split("\t")[1]) > 0


def test_score_too_small_images_say_so(tmp_path, capsys, squeeze_weights):
    a = save_image(tmp_path / "a.png", 0, size=(8, 8))
    b = save_image(tmp_path / "b.png", 1, size=(8, 8))
    code, _, err = score(capsys, str(a), str(b), "--spec", SPEC, "--weights", squeeze_weights)
    assert code == 2
    assert str(a) in err and "pixels" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--spec", "vgg61:conv3"], "unknown backbone or preset 'vgg61'. Did you mean"),
        (["--spec", SPEC, "--weights", "/no/such/file.pth"], "weight file '/no/such/file.pth' does not exist"),
        (["--spec", SPEC, "--device", "potato"], "unknown device 'potato'"),
    ],
)
def test_score_errors_exit_2_without_traceback(tmp_path, capsys, args, message):
    a, b = save_image(tmp_path / "a.png", 0), save_image(tmp_path / "b.png", 1)
    code, out, err = score(capsys, str(a), str(b), *args)
    assert code == 2
    assert out == ""
    assert err.startswith("percept: error: ")
    assert message in err
    assert "Traceback" not in err


def test_score_file_with_folder_is_an_error(tmp_path, capsys):
    a = save_image(tmp_path / "a.png", 0)
    code, _, err = score(capsys, str(a), str(tmp_path), "--spec", SPEC)
    assert code == 2
    assert "is a file" in err and "is a folder" in err


def test_score_folders_without_common_names(tmp_path, capsys):
    ref, dist = make_folders(tmp_path, ["a.png"], ["b.png"])
    code, _, err = score(capsys, str(ref), str(dist), "--spec", SPEC)
    assert code == 2
    assert "no file name is in both" in err


def test_score_offline_without_weights_names_the_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("PERCEPT_WEIGHTS_DIR", str(tmp_path / "empty"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    a, b = save_image(tmp_path / "a.png", 0), save_image(tmp_path / "b.png", 1)
    code, _, err = score(capsys, str(a), str(b), "--spec", SPEC)
    assert code == 2
    assert "squeezenet1_1-b8a52dc0.pth" in err and "PERCEPT_WEIGHTS_DIR" in err
    assert "Traceback" not in err


def test_score_random_weights_warn_in_cli_format(tmp_path, capsys):
    a, b = save_image(tmp_path / "a.png", 0), save_image(tmp_path / "b.png", 1)
    code, out, err = score(capsys, str(a), str(b), "--spec", SPEC, "--weights", "none")
    assert code == 0
    assert float(out.split("\t")[1]) > 0
    assert "percept: warning: backbone 'squeezenet1_1' runs with random weights" in err


# -- images ----------------------------------------------------------------------------------------


def test_load_image_modes(tmp_path):
    grey16 = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    x = load_image(tmp_path / "grey16.png")
    assert x.shape == (1, 2, 2) and x.dtype == torch.float32
    assert x.flatten().tolist() == pytest.approx([0.0, 1.0, 32768 / 65535, 1000 / 65535])

    rgba = np.zeros((3, 4, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    y = load_image(tmp_path / "rgba.png")
    assert y.shape == (3, 3, 4)
    assert y[0].min() == 1.0 and y[1:].max() == 0.0


def test_find_pairs_of_two_files(tmp_path):
    a, b = save_image(tmp_path / "a.png"), save_image(tmp_path / "b.jpg")
    pairs, notes = find_pairs(a, b)
    assert [(p.ref, p.dist) for p in pairs] == [(a, b)]
    assert notes == []


# -- list, taps, plugins ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "plugin"),
    [
        ("backbones", "vgg16", "percept.builtin.vgg"),
        ("readouts", "unit", "percept.builtin.readouts"),
        ("distances", "l2", "percept.builtin.distances"),
        ("presets", "lpips-alex", "percept.builtin.lpips"),
    ],
)
def test_list(capsys, kind, name, plugin):
    assert main(["list", kind]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAME", "PLUGIN", "DESCRIPTION"]
    row = next(line for line in out.splitlines() if line.split()[0] == name)
    assert plugin in row and len(row.split()) > 2  # a description follows


def test_list_pattern(capsys):
    assert main(["list", "backbones", "--pattern", "resnet*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    assert main(["list", "distances", "--pattern", "nothing*"]) == 1
    assert "no distances matching 'nothing*'" in capsys.readouterr().err


def test_list_backbone_weight_tags(capsys):
    assert main(["list", "backbones", "--pattern", "vgg16", "--weights"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "PLUGIN", "DESCRIPTION"] and lines[1].startswith("vgg16 ")
    # Each weight set on its own indented line under its backbone, with what torchvision says of its licence.
    assert lines[2].startswith("    imagenet (= imagenet1k_v1) [") and lines[3].startswith("    imagenet1k_features [")
    assert "torchvision's BSD-3-Clause; dataset terms may apply" in lines[2]
    note = " ".join(line.strip() for line in lines[lines.index("") + 1 :])
    assert "https://github.com/pytorch/vision/blob/main/LICENSE" in note and "derived from the dataset" in note
    assert main(["list", "distances", "--weights"]) == 2
    assert "--weights" in capsys.readouterr().err


def test_list_backbones_weights_lines_stay_readable(capsys):
    """Every backbone and preset file: no line of `percept list backbones --weights` runs past 240 characters
    (it ran to 645 with all weight sets on one line); SWAG weight sets name the licence torchvision gives them."""
    assert main(["list", "backbones", "--weights"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 240
    swag = next(line for line in out.splitlines() if line.strip().startswith("imagenet1k_swag_e2e_v1"))
    assert "licence: https://github.com/facebookresearch/SWAG/blob/main/LICENSE" in swag


def test_list_without_a_kind_lists_the_kinds(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in ("backbones", "readouts", "distances", "presets"):
        line = next(li for li in out.splitlines() if li.split()[:1] == [kind])
        assert int(line.split()[1]) > 0
    assert "alexnet" in out and "lpips-alex" in out
    assert main(["list", "--weights"]) == 2  # the flag's old name still works
    assert "percept list backbones --weight-sets" in capsys.readouterr().err
    assert main(["list", "--weight-sets"]) == 2


@pytest.mark.parametrize(
    "argv",
    [["taps", "alexnett"], ["score", "a.png", "b.png", "--spec", "alexnett:conv1"]],
)
def test_a_misspelled_backbone_gets_the_nearest_name_and_a_pointer_not_sixty_names(capsys, tmp_path, argv):
    argv = [str(tmp_path / a) if a.endswith(".png") else a for a in argv]
    for name in ("a.png", "b.png"):
        _write_png(tmp_path / name)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'alexnet'?" in err and "`percept list backbones`" in err
    assert "convnext_base" not in err and err.count(",") <= 2


def _write_png(path):
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(path)


def test_list_unknown_kind_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["list", "gadgets"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_taps(capsys, recwarn):
    assert main(["taps", "mobilenet_v2"]) == 0
    out, err = capsys.readouterr()
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.split()}
    assert rows["stage1"] == ["stage1", "*", "features.1", "16", "2"]
    assert rows["block1"] == ["block1", "features.1", "16", "2"]
    assert rows["head"] == ["head", "features.18", "1280", "32"]
    assert "features.0.0" in out  # module paths listed
    assert err == ""
    assert not [w for w in recwarn if "random weights" in str(w.message)]


def test_taps_errors(capsys):
    assert main(["taps", "vgg61"]) == 2
    assert "unknown backbone 'vgg61'. Did you mean" in capsys.readouterr().err
    assert main(["taps", "lpips-vgg"]) == 2
    assert "is a preset" in capsys.readouterr().err


def test_plugins_lists_builtins(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "percept.builtin.alexnet  (built-in, percept-torch " in out
    assert "backbones: alexnet" in out
    assert "distances: mse, l1, l2, cosine" in out


def test_plugins_shows_skipped_plugin(capsys, monkeypatch):
    broken = importlib.metadata.EntryPoint("broken_plugin", "no_such_module_for_percept_tests", "percept")
    monkeypatch.setattr(percept.registry.importlib_metadata, "entry_points", lambda group: [broken])
    monkeypatch.delenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PERCEPT_PLUGINS", raising=False)
    monkeypatch.setattr(percept.registry, "_registry", None)  # rediscover; the old registry comes back after
    assert main(["plugins"]) == 1
    out, err = capsys.readouterr()
    assert "broken_plugin  (plugin," in out
    assert "SKIPPED: failed to import 'no_such_module_for_percept_tests'" in out
    assert "percept.builtin.lpips  (built-in" in out
    assert err == ""


# -- the installed command -------------------------------------------------------------------------


def test_python_dash_m_percept_help():
    result = subprocess.run(
        [sys.executable, "-m", "percept", "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    for command in ("score", "list", "taps", "plugins", "demo"):
        assert command in result.stdout


def test_console_script(tmp_path):
    script = Path(sys.executable).with_name("percept")
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable}; is percept installed (pip install -e .)?")
    result = subprocess.run(
        [str(script), "list", "distances"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "l2" in result.stdout
    missing = subprocess.run(
        [str(script), "score", str(tmp_path / "x.png"), str(tmp_path / "y.png")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("percept: error: ") and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


# -- commands plug in through the register_commands hook ----------------------------------------------

COMMAND_PLUGIN = """
import percept


def configure(parser):
    parser.add_argument("who")


def run(args):
    print(f"hello {args.who}")
    return 0


@percept.hookimpl
def register_commands(register):
    register("hello", configure, run, help="say hello")
"""

CLASHING_COMMAND_PLUGIN = """
import percept


@percept.hookimpl
def register_commands(register):
    register("hello2", lambda parser: None, lambda args: 0)
    register("score", lambda parser: None, lambda args: 0)
"""


def _command_site(tmp_path, monkeypatch, entries: dict[str, str], modules: dict[str, str]) -> None:
    info = tmp_path / "percept_cmds-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: percept-cmds\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[percept]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    for name, text in modules.items():
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PERCEPT_PLUGINS", raising=False)
    monkeypatch.setattr(percept.registry, "_registry", None)  # commands are registry state: rediscover


def test_core_and_own_commands_come_through_the_hook():
    from percept.cli import collect_commands

    commands = {c.name: c.plugin for c in collect_commands()}
    assert list(commands)[:4] == ["score", "list", "taps", "plugins"]
    assert commands["score"] == "percept.cli.score"
    assert commands["demo"] == "demo"
    assert {commands[n] for n in ("sweep", "select", "finetune", "visualize")} == {"toolkit"}


def test_the_cli_imports_neither_the_demo_nor_the_toolkit():
    import ast

    root = Path(percept.cli.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith(("percept.demo", "percept.eval")) for n in names), (path, names)


def test_own_commands_load_with_autoload_disabled(monkeypatch, capsys):
    monkeypatch.setenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", "1")
    from percept.cli import collect_commands

    names = [c.name for c in collect_commands()]
    assert {"demo", "sweep", "select", "finetune", "visualize"} <= set(names)


def test_a_plugin_adds_a_command(tmp_path, monkeypatch, capsys):
    _command_site(tmp_path, monkeypatch, {"hello": "cmd_hello"}, {"cmd_hello": COMMAND_PLUGIN})
    assert main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"
    monkeypatch.setenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setattr(percept.registry, "_registry", None)  # a new process: discovery reads the variable
    with pytest.raises(SystemExit):
        main(["hello", "world"])  # a third-party command goes with its plugin


def test_a_command_clash_skips_that_plugins_commands_with_a_warning(tmp_path, monkeypatch):
    _command_site(tmp_path, monkeypatch, {"clash": "cmd_clash"}, {"cmd_clash": CLASHING_COMMAND_PLUGIN})
    from percept.cli import collect_commands

    with pytest.warns(PluginWarning, match=r"'clash'.*command 'score' registered twice.*'percept.cli.score'"):
        names = [c.name for c in collect_commands()]
    assert "hello2" not in names  # all of the plugin's commands or none
    assert names.count("score") == 1


def test_plugins_lists_the_commands_of_a_plugin(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "toolkit  (built-in, percept-torch" in out
    assert "commands: sweep, select, finetune, visualize" in out
    assert "presets: map-selection, channel-weights" in out


@pytest.mark.parametrize(("variable", "value"), [("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", "1"), ("PERCEPT_PLUGINS", "swd")])
def test_percepts_own_entry_points_load_whatever_the_environment_says(monkeypatch, capsys, variable, value):
    monkeypatch.delenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PERCEPT_PLUGINS", raising=False)
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(percept.registry, "_registry", None)  # rediscover; the old registry comes back after
    assert main(["list", "presets", "--pattern", "*-*"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"map-selection +toolkit", out) and re.search(r"channel-weights +toolkit", out)
    toolkit = next(p for p in percept.registry.get_registry().plugins() if p.name == "toolkit")
    assert toolkit.builtin and toolkit.distribution == "percept-torch"
    assert not any(m.startswith("percept.eval") for m in percept.registry.BUILTIN_MODULES)  # not a core built-in


def test_every_command_with_a_device_option_defaults_to_cuda_when_available(monkeypatch) -> None:
    """One rule (issue 19): --device defaults to CUDA where available, else the CPU, in every command."""
    from percept.cli.app import build_parser
    from percept.cli.common import DEVICE_HELP, device_arg

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps the subparsers here
    with_device = {}
    for name, child in commands.items():
        for action in child._actions:
            if "--device" in action.option_strings:
                with_device[name] = action
    assert {"score", "demo", "sweep", "select", "finetune", "visualize"} <= set(with_device)
    for name, action in with_device.items():
        assert action.default is None and action.help == DEVICE_HELP, name
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_arg(None) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_arg(None) == torch.device("cuda")
