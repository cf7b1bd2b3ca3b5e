"""``percept list``, ``percept taps`` and ``percept plugins``: what is registered, and where it comes from."""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import textwrap
import warnings
from collections.abc import Callable

from percept.cli.common import EXIT_NOTHING, EXIT_OK, PROG, print_table
from percept.errors import PluginWarning, RandomWeightsWarning, SpecError, shorten
from percept.hookspecs import hookimpl

# Printed once below a listing that holds torchvision's weights (see LICENSE in percept.builtin._torchvision).
TORCHVISION_LICENCE_NOTE = (
    "torchvision's weights: torchvision states no licence per weight file; its code is BSD-3-Clause "
    "(https://github.com/pytorch/vision/blob/main/LICENSE), and its README says: 'The pre-trained models provided "
    "in this library may have their own licenses or terms and conditions derived from the dataset used for "
    "training. It is your responsibility to determine whether you have permission to use the models for your use "
    "case.' Where the weights name a licence (the SWAG sets), it is shown instead."
)
_KINDS = {"backbones": "backbone", "readouts": "readout", "distances": "distance", "presets": "preset"}


def configure_list(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``percept list``."""
    parser.add_argument(
        "kind", nargs="?", choices=list(_KINDS), help="what to list (without one: each kind, with how many there are)"
    )
    parser.add_argument("--pattern", default=None, help="shell pattern on the names, e.g. 'vgg*'")
    parser.add_argument(
        "--weight-sets",
        "--weights",
        dest="weights",
        action="store_true",
        help="backbones and presets: show their weight sets (source, data, licence, checksum). --weights is "
        "an older name of this flag; elsewhere --weights takes a value (the weights to load)",
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

    if args.kind is None:
        return _list_kinds(args)
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
    rows = []
    for entry in entries:
        description = entry.description + (f" (aliases: {', '.join(entry.aliases)})" if entry.aliases else "")
        rows.append([entry.name, entry.plugin, description])
    # With --weights, each weight set goes on its own indented line under its backbone.
    below = [_weight_lines(entry.name, kind) for entry in entries] if args.weights else None
    print_table(["NAME", "PLUGIN", "DESCRIPTION"], rows, below=below)
    if args.weights and kind == "backbone":
        _print_licence_note([entry.name for entry in entries])
        if not args.pattern:
            _print_preset_files()
    return EXIT_OK


_SUMMARIES = {
    "backbones": "networks whose layers (taps) are compared: `percept taps NAME` shows a backbone's taps",
    "readouts": "how a tap's features are turned into what is compared (unit, gram, meanstd ...)",
    "distances": "how two readouts are compared (l2, l1, cosine ...)",
    "presets": "whole published metrics (LPIPS, DISTS ...) used by name: --spec lpips-alex",
}


def _list_kinds(args: argparse.Namespace) -> int:
    """``percept list`` without a kind: each kind with how many are registered, a summary and a few names."""
    from percept.registry import get_registry

    if args.weights:
        raise SpecError(
            "--weight-sets lists weight sets of one kind: `percept list backbones --weight-sets` or `... presets`"
        )
    registry = get_registry()
    print("what `percept list KIND` lists (a spec is BACKBONE:TAPS/READOUT/DISTANCE, or a PRESET):")
    for plural_kind, kind in _KINDS.items():
        names = [n for n in registry.names(kind) if not args.pattern or fnmatch.fnmatchcase(n, args.pattern)]
        print(f"  {plural_kind:<10} {len(names):>4}  {_SUMMARIES[plural_kind]}")
        print(f"  {'':<16} e.g. {shorten(names, 5) or '(none)'}")
    print("e.g. `percept list backbones --pattern 'resnet*'`, `percept list presets --weights`")
    return EXIT_OK


def _weight_lines(name: str, kind: str) -> list[str]:
    from percept.backbones.catalogue import preset_weights_text, weights_lines

    return [f"weights: {preset_weights_text(name)}"] if kind == "preset" else weights_lines(name)


def _print_licence_note(names: list[str]) -> None:
    """Where the licence of torchvision's weights comes from, once, when any of ``names`` has torchvision weights."""
    from percept.backbones.catalogue import weight_sets

    if any(cfg.source == "torchvision" for name in names for cfg in weight_sets(name)):
        print("\nnote: " + textwrap.fill(TORCHVISION_LICENCE_NOTE, width=110, subsequent_indent="      "))


def _print_preset_files() -> None:
    """The presets' own weight files (LPIPS heads, DISTS alpha/beta), below the backbones' weight sets."""
    from percept.backbones.catalogue import checksum_text, preset_file_state, preset_weight_sets
    from percept.registry import get_registry

    rows, below = [], []
    for entry in get_registry().entries("preset"):
        for cfg in preset_weight_sets(entry.name):
            checksum = f"{checksum_text(cfg)} ({preset_file_state(entry.name)})"
            rows.append([entry.name, f"{cfg.filename} {cfg.tag}", checksum, cfg.license])
            below.append([f"data: {cfg.data}", f"source: {cfg.source}"])
    if rows:
        print("\nweight files of the presets (on top of their backbone's weights):")
        print_table(["PRESET", "FILE", "CHECKSUM", "LICENCE"], rows, below=below)


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
    from percept.registry import ALL_KINDS, get_registry

    registry = get_registry()
    with warnings.catch_warnings():
        # Skipped plugins are listed below with their error; no need to warn twice.
        warnings.simplefilter("ignore", PluginWarning)
        registry.ensure_commands()
        plugins = registry.plugins()
    for notice in registry.notices:  # a leftover install under an old name: named, with the fix; not an error
        print(f"notice: {notice}")
    if autoload_disabled():
        print("third-party entry-point plugins are not loaded (PERCEPT_DISABLE_PLUGIN_AUTOLOAD is set)")
    elif wanted_plugins() is not None:
        print(f"only the entry-point plugins named in PERCEPT_PLUGINS={os.environ['PERCEPT_PLUGINS']} are loaded")
    skipped = 0
    for info in plugins:
        version = info.version or (read_version() if info.builtin else None)
        origin = " ".join(p for p in (info.distribution, version) if p) or "registered at run time"
        print(f"{info.name}  ({'built-in' if info.builtin else 'plugin'}, {origin})")
        if info.error:
            skipped += 1
            print(f"    SKIPPED: {info.error}")
        elif not info.registered:
            print("    registers nothing")
        for kind in ALL_KINDS:
            if info.registered.get(kind):
                print(f"    {kind}s: {', '.join(info.registered[kind])}")
        if info.command_error and not info.error:
            skipped += 1
            print(f"    commands SKIPPED: {info.command_error}")
    return EXIT_NOTHING if skipped else EXIT_OK
