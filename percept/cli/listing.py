"""``percept list``, ``percept taps`` and ``percept plugins``: what is registered, and where it comes from."""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import warnings
from collections.abc import Callable

from percept.cli.common import EXIT_NOTHING, EXIT_OK, PROG, print_table
from percept.errors import PluginWarning, RandomWeightsWarning, SpecError, shorten
from percept.hookspecs import hookimpl

_KINDS = {"backbones": "backbone", "readouts": "readout", "distances": "distance", "presets": "preset"}


def configure_list(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``percept list``."""
    parser.add_argument("kind", choices=list(_KINDS), help="what to list")
    parser.add_argument("--pattern", default=None, help="shell pattern on the names, e.g. 'vgg*'")
    parser.add_argument(
        "--weights",
        action="store_true",
        help="backbones and presets: show their weight sets (source, data, licence, checksum)",
    )


def configure_taps(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``percept taps``."""
    parser.add_argument("backbone", metavar="BACKBONE", help="a backbone name (`percept list backbones`)")


@hookimpl
def register_commands(register: Callable[..., None]) -> None:
    """``list``, ``taps`` and ``plugins``."""
    register("list", configure_list, run_list, help="list registered backbones, readouts, distances or presets")
    register(
        "taps",
        configure_taps,
        run_taps,
        help="show a backbone's taps: module, channels, reduction",
        description="Show the taps of a backbone (built with random weights: shapes do not depend on them, "
        "and nothing is downloaded).",
    )
    register(
        "plugins",
        lambda parser: None,
        run_plugins,
        help="show plugins, their versions, what they register, and errors",
    )


def run_list(args: argparse.Namespace) -> int:
    """``percept list KIND``: a table of the registered names; 1 if none matches."""
    from percept.registry import get_registry

    kind = _KINDS[args.kind]
    if args.weights and kind not in ("backbone", "preset"):
        raise SpecError(
            f"--weights lists the weight sets of backbones and presets; it does not apply to `list {args.kind}`"
        )
    entries = get_registry().entries(kind)
    if args.pattern:
        entries = [e for e in entries if fnmatch.fnmatchcase(e.name, args.pattern)]
    if not entries:
        where = f" matching {args.pattern!r}" if args.pattern else ""
        print(f"{PROG}: no {args.kind}{where}", file=sys.stderr)
        return EXIT_NOTHING
    header = ["NAME", "PLUGIN"] + (["WEIGHTS"] if args.weights else []) + ["DESCRIPTION"]
    rows = []
    for entry in entries:
        description = entry.description + (f" (aliases: {', '.join(entry.aliases)})" if entry.aliases else "")
        row = [entry.name, entry.plugin]
        if args.weights:
            row.append(_weight_tags_text(entry, kind))
        rows.append([*row, description])
    print_table(header, rows)
    if args.weights and kind == "backbone" and not args.pattern:
        _print_preset_files()
    return EXIT_OK


def _weight_tags_text(entry, kind: str = "backbone") -> str:
    from percept.backbones.catalogue import preset_weights_text, weights_text

    return preset_weights_text(entry.name) if kind == "preset" else weights_text(entry.name)


def _print_preset_files() -> None:
    """The presets' own weight files (LPIPS heads, DISTS alpha/beta), below the backbones' weight sets."""
    from percept.backbones.catalogue import preset_weight_sets, verify_preset_file
    from percept.registry import get_registry

    rows = []
    for entry in get_registry().entries("preset"):
        for cfg in preset_weight_sets(entry.name):
            state = {True: "installed copy matches", False: "INSTALLED COPY DIFFERS", None: "not installed"}
            digest = f"sha256 {cfg.checksum[:12]}..." if cfg.checksum else "no published checksum"
            checksum = f"{digest} ({state[verify_preset_file(entry.name)]})"
            rows.append([entry.name, f"{cfg.filename} {cfg.tag}", cfg.data, cfg.license, checksum, cfg.source])
    if rows:
        print("\nweight files of the presets (on top of their backbone's weights):")
        print_table(["PRESET", "FILE", "DATA", "LICENCE", "CHECKSUM", "SOURCE"], rows)


def run_taps(args: argparse.Namespace) -> int:
    """``percept taps BACKBONE``: the backbone's taps, built with random weights (nothing downloaded)."""
    from percept.backbones.factory import create_backbone
    from percept.registry import get_registry

    registry = get_registry()
    if not registry.has("backbone", args.backbone) and registry.has("preset", args.backbone):
        raise SpecError(
            f"{args.backbone!r} is a preset (a whole metric), not a backbone; `percept list presets` describes it, "
            "and `percept taps` takes one of `percept list backbones`"
        )
    with warnings.catch_warnings():
        # Shapes do not depend on the weights; random ones keep this offline and quick.
        warnings.simplefilter("ignore", RandomWeightsWarning)
        backbone = create_backbone(args.backbone, weights=None)
    infos = sorted(backbone.feature_info, key=lambda t: (t.index, not t.canonical))
    rows = [[t.name, "*" if t.canonical else "", t.module, str(t.channels), str(t.reduction)] for t in infos]
    print(f"taps of {backbone.name} (* = canonical: what 'all' means; reduction = input size / tap size)")
    print_table(["TAP", "", "MODULE", "CHANNELS", "REDUCTION"], rows)
    print(f"module paths work as taps too: {shorten(backbone.module_paths, 40)}")
    canonical = backbone.canonical_taps
    example = ",".join(canonical[:2]) if canonical else infos[0].name if infos else "all"
    print(f"e.g. --spec '{backbone.name}:{example}/unit/l2' or '{backbone.name}:all'")
    return EXIT_OK


def run_plugins(args: argparse.Namespace) -> int:
    """``percept plugins``: every plugin, where it comes from, what it registers; 1 if one was skipped."""
    from percept._version import read_version
    from percept.discovery import autoload_disabled, wanted_plugins
    from percept.registry import get_registry

    with warnings.catch_warnings():
        # Skipped plugins are listed below with their error; no need to warn twice.
        warnings.simplefilter("ignore", PluginWarning)
        plugins = get_registry().plugins()
    if autoload_disabled():
        print("third-party entry-point plugins are not loaded (PERCEPT_DISABLE_PLUGIN_AUTOLOAD is set)")
    elif wanted_plugins() is not None:
        print(f"only the entry-point plugins named in PERCEPT_PLUGINS={os.environ['PERCEPT_PLUGINS']} are loaded")
    commands: dict[str, list[str]] = {}
    for command in getattr(args, "command_table", ()):
        commands.setdefault(command.plugin, []).append(command.name)
    skipped = 0
    for info in plugins:
        version = info.version or (read_version() if info.builtin else None)
        origin = " ".join(p for p in (info.distribution, version) if p) or "registered at run time"
        print(f"{info.name}  ({'built-in' if info.builtin else 'plugin'}, {origin})")
        if info.error:
            skipped += 1
            print(f"    SKIPPED: {info.error}")
        elif not info.registered and info.name not in commands:
            print("    registers nothing")
        for kind, names in info.registered.items():
            print(f"    {kind}s: {', '.join(names)}")
        if not info.error and info.name in commands:
            print(f"    commands: {', '.join(commands[info.name])}")
    return EXIT_NOTHING if skipped else EXIT_OK
