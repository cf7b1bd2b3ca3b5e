"""Hostile plugins and hostile environments against the ``percept`` command (issue 27, cases 8-10, 12-15, 17).

Each plugin here is a real installed distribution: a ``.dist-info`` folder and its module on ``sys.path``
(:func:`make_distribution`), found through ``importlib.metadata`` as pip's would be. The rules: a plugin's
bug costs its own command only, percept's own commands and presets always win, a stale install is named
with its fix, every failure is one line ``percept: error: ...`` (exit 2; interrupted: 130) and every
warning one line ``percept: warning: ...``, once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _distributions import make_distribution

import percept
import percept.registry
from percept.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path for fake distributions, and a registry that discovers them afresh."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PERCEPT_PLUGINS", raising=False)
    monkeypatch.setattr(percept.registry, "_registry", None)
    return tmp_path


def run_cli(args: list[str], *, env: dict[str, str] | None = None, paths: tuple[Path, ...] = ()):
    """``python -m percept ARGS`` in a fresh process (``paths`` first on its sys.path, ``env`` on top)."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("PERCEPT_DISABLE_PLUGIN_AUTOLOAD", "PERCEPT_PLUGINS")
    }
    environment.update(env or {})
    environment["PYTHONPATH"] = os.pathsep.join([*map(str, paths), environment.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "percept", *args], capture_output=True, text=True, env=environment)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("percept: error: "), err
    assert "Traceback" not in err
    return lines[0]


# -- 8. a broken command is skipped, every other command works ---------------------------------------

BROKEN_COMMANDS = """
import percept


def boom(parser):
    raise ValueError("configure exploded")


def clash(parser):
    parser.add_argument("-h", help="takes the help option")


@percept.hookimpl
def register_commands(register):
    register("boom", boom, lambda args: 0, help="raises in configure")
    register("clash", clash, lambda args: 0, help="adds -h")
"""
BAD_HELP = """
import percept


@percept.hookimpl
def register_commands(register):
    register("badhelp", lambda parser: None, lambda args: 0, help=123)
"""


@pytest.mark.parametrize("command", ["boom", "clash"])
def test_a_command_whose_configure_fails_is_unavailable_with_one_line_naming_its_plugin(site, capsys, command):
    make_distribution(site, "acme-cmds", {"acme": "acme_cmds"}, {"acme_cmds": BROKEN_COMMANDS})
    assert main([command]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"command {command!r} of plugin 'acme' is unavailable: its configure(parser) raised" in line


def test_broken_commands_leave_every_other_command_working(site, capsys):
    make_distribution(site, "acme-cmds", {"acme": "acme_cmds"}, {"acme_cmds": BROKEN_COMMANDS})
    assert main(["list", "distances", "--pattern", "l2"]) == 0
    assert main(["plugins"]) == 0
    out, err = capsys.readouterr()
    assert "l2" in out and "commands: boom, clash" in out and err == ""
    with pytest.raises(SystemExit) as stop:
        main(["score", "--help"])
    assert stop.value.code == 0


def test_build_parser_leaves_a_broken_command_out_with_one_warning_naming_its_plugin(site):
    make_distribution(site, "acme-cmds", {"acme": "acme_cmds"}, {"acme_cmds": BROKEN_COMMANDS})
    from percept.cli.app import build_parser

    with pytest.warns(percept.PluginWarning) as caught:
        parser = build_parser()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and all("of plugin 'acme' is unavailable" in m for m in messages), messages
    assert parser.parse_args(["list", "distances"]).kind == "distances"


def test_help_that_is_not_a_string_skips_the_plugin_with_one_warning(site, capsys):
    make_distribution(site, "acme-help", {"badhelp": "acme_help"}, {"acme_help": BAD_HELP})
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    out, err = capsys.readouterr()
    assert stop.value.code == 0 and "badhelp" not in out and "score" in out
    assert err == (
        "percept: warning: skipped the commands of plugin 'badhelp': "
        "RegistrationError: command 'badhelp': help must be a string, got int\n"
    )


# -- 9. percept's own commands and presets win, whatever the entry points are called ----------------

TAKES_SWEEP = """
import percept


@percept.hookimpl
def register_commands(register):
    register("sweep", lambda parser: None, lambda args: 0, help="not percept's sweep")
"""
NAMED_TOOLKIT = """
import percept
from percept.plugin import Distance


class Zero(Distance):
    def forward(self, a, b, *, spatial=False):
        return (a - b).flatten(1).sum(1) * 0


@percept.hookimpl
def register_distances(register):
    register("zero", lambda **kw: Zero())
"""


def test_a_third_party_sweep_does_not_replace_percepts(site, capsys):
    make_distribution(site, "acme-sweep", {"acme": "acme_sweep"}, {"acme_sweep": TAKES_SWEEP})
    from percept.cli import collect_commands

    with pytest.warns(percept.PluginWarning, match="'acme'.*command 'sweep' registered twice: by plugin 'toolkit'"):
        commands = {c.name: c.plugin for c in collect_commands()}
    assert {commands[n] for n in ("sweep", "select", "finetune", "visualize")} == {"toolkit"}


def test_a_third_party_entry_point_named_toolkit_does_not_hide_percepts(site):
    make_distribution(site, "acme-toolkit", {"toolkit": "acme_toolkit"}, {"acme_toolkit": NAMED_TOOLKIT})
    registry = percept.registry.get_registry()
    with pytest.warns(percept.PluginWarning, match="skipped plugin 'toolkit': a plugin named 'toolkit' is already"):
        presets = registry.names("preset")
    assert {"map-selection", "channel-weights"} <= set(presets)
    assert registry.get("preset", "map-selection").plugin == "toolkit"
    owners = {(p.name, p.distribution) for p in registry.plugins()}
    assert ("toolkit", "percept-torch") in owners and ("toolkit", "acme-toolkit") in owners


def test_a_third_party_preset_cannot_take_a_declared_toolkit_preset(site):
    source = """
    import percept


    @percept.hookimpl
    def register_presets(register):
        register("map-selection", lambda **kw: None)
    """
    make_distribution(site, "acme-preset", {"acme": "acme_preset"}, {"acme_preset": source})
    registry = percept.registry.get_registry()
    with pytest.warns(percept.PluginWarning, match="preset 'map-selection' registered twice: by plugin 'toolkit'"):
        assert registry.get("preset", "map-selection").plugin == "toolkit"


# -- 10. a leftover install under the old name ------------------------------------------------------


def test_a_stale_percept_distribution_is_named_with_the_fix(site, capsys):
    make_distribution(site, "percept", {"demo": "percept.demo.plugin", "toolkit": "percept.eval.plugin"}, {})
    assert main(["plugins"]) == 0
    out, err = capsys.readouterr()
    assert "notice: a leftover install of percept under its old distribution name 'percept'" in out
    assert "`pip uninstall percept`" in out and "registered twice" not in out + err
    assert main(["list", "presets", "--pattern", "map-*"]) == 0
    err = capsys.readouterr().err
    assert "registered twice" not in err and "skipped plugin" not in err


# -- 12. the toolkit without its eval extra ----------------------------------------------------------


def test_sweep_without_scipy_stops_before_computing_with_the_install_hint(tmp_path):
    code = (
        "import sys; sys.modules['scipy'] = None\n"  # as if scipy were not installed
        "import percept.eval.sweep as s\n"
        "s.run_sweep = lambda *a, **k: sys.exit('computed anyway')\n"
        "from percept.cli import main\n"
        "sys.exit(main(['sweep', 'csv', sys.argv[1], '--backbones', 'alexnet', '--weights', 'none']))\n"
    )
    manifest = tmp_path / "scores.csv"
    manifest.write_text("dis_img_path,ref_img_path,score\n")
    done = subprocess.run([sys.executable, "-c", code, str(manifest)], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    line = one_error_line(done.stderr)
    assert "`percept sweep` needs scipy, which is not installed: pip install 'percept-torch[eval]'" in line


def test_a_missing_module_at_run_time_is_one_line_with_the_hint(site, capsys, monkeypatch):
    from percept.eval import cli as eval_cli

    def needs_pandas(args):
        raise ModuleNotFoundError("No module named 'pandas'", name="pandas")

    monkeypatch.setattr(eval_cli, "cmd_finetune", needs_pandas)
    assert main(["finetune", "csv", "x.csv", "--backbone", "alexnet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "`percept finetune` needs pandas, which is not installed: pip install 'percept-torch[eval]'" in line


# -- 13. devices this build lacks; Ctrl-C while plugins load ----------------------------------------


@pytest.mark.parametrize("device", ["mps", "xpu"])
def test_a_device_this_build_lacks_is_one_line(tmp_path, capsys, device):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this build has MPS")
    from PIL import Image

    for name in ("a.png", "b.png"):
        Image.new("RGB", (16, 16)).save(tmp_path / name)
    args = ["score", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--spec", "pixel:all/raw/l1"]
    assert main([*args, "--device", device]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"device '{device}' is not available in this build of torch" in line and "--device cpu" in line


@pytest.mark.parametrize("name", ["map.jpg", "map.txt", "map"])
def test_visualize_to_a_format_it_cannot_write_is_one_line(tmp_path, capsys, name):
    out = tmp_path / name
    assert main(["visualize", "alexnet", "conv1", "0", "--weights", "none", "--out", str(out), "--steps", "1"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--out must name a .png file" in line and not out.exists()


CTRL_C = """
import os, signal
os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while this plugin imports
"""


@pytest.mark.parametrize(
    ("args", "hook"),
    [(["--help"], "# its register_commands: loaded to build the parser\n"), (["list", "distances"], "")],
)
def test_ctrl_c_while_plugins_load_is_one_line_and_130(tmp_path, args, hook):
    make_distribution(tmp_path, "slow-plugin", {"slow": "slow_plugin"}, {"slow_plugin": hook + CTRL_C})
    done = run_cli(args, paths=(tmp_path,))
    assert done.returncode == 130, done.stderr
    assert one_error_line(done.stderr) == "percept: error: interrupted"


# -- 14. the fused op's Triton backend where it cannot run; meta tensors ----------------------------


def test_triton_on_a_cpu_is_refused_at_construction(monkeypatch):
    monkeypatch.setenv("PERCEPT_FUSED", "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    import percept.ops.fused as fused

    monkeypatch.setattr(fused, "triton_available", lambda: True)
    with pytest.raises(percept.InputError, match="PERCEPT_FUSED=triton runs on CUDA GPUs and this machine has none"):
        percept.PerceptualLoss("pixel:all/raw/l1")
    monkeypatch.setattr(fused, "triton_available", lambda: False)
    with pytest.raises(percept.InputError, match="needs the triton package, which is not installed"):
        percept.PerceptualLoss("pixel:all/raw/l1")


def test_meta_inputs_with_checks_on_say_so():
    loss = percept.PerceptualLoss("pixel:all/raw/l1")
    x = torch.empty(1, 3, 16, 16, device="meta")
    with pytest.raises(percept.InputError, match="meta device, which holds shapes but no values.*check_inputs=False"):
        loss(x, x)


# -- 15. warnings: one format, once; a plugin's SystemExit ------------------------------------------

EXITS = "raise SystemExit(3)\n"


def test_warnings_are_one_line_each_once_and_name_a_plugins_system_exit(tmp_path):
    make_distribution(tmp_path, "exits-plugin", {"exits": "exits_plugin"}, {"exits_plugin": EXITS})
    done = run_cli(["list", "distances"], env={"PERCEPT_DISABLE_PLUGIN_AUTOLOAD": "maybe"}, paths=(tmp_path,))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert all(line.startswith("percept: warning: ") for line in lines), lines
    assert sum("PERCEPT_DISABLE_PLUGIN_AUTOLOAD='maybe' is not understood" in line for line in lines) == 1, lines
    exits = [line for line in lines if "skipped plugin 'exits'" in line]
    assert len(exits) == 1 and "SystemExit: 3 (raised by the plugin itself" in exits[0], lines


# -- 17. timm weights offline fail fast -------------------------------------------------------------


def test_timm_weights_offline_fail_fast_without_retries(monkeypatch, caplog, tmp_path):
    pytest.importorskip("timm")
    from huggingface_hub import constants

    import percept.builtin.timm as timm_family

    monkeypatch.setattr(timm_family, "hub_reachable", lambda: False)  # as on a machine without a network
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # and nothing cached
    monkeypatch.setenv("PERCEPT_WEIGHTS_DIR", str(tmp_path / "weights"))
    import time

    start = time.perf_counter()
    with pytest.raises(percept.WeightsError, match="could not get timm weights for 'resnet10t"):
        percept.create_backbone("timm.resnet10t", weights="imagenet")
    assert time.perf_counter() - start < 15
    assert not [r for r in caplog.records if "Retry" in r.getMessage()]
