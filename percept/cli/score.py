"""``percept score REF DIST``: score two images, or two folders of images paired by file name."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from percept.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_device_option,
    add_weights_option,
    device_arg,
    error,
    open_output,
    warn,
    weights_arg,
)
from percept.errors import PerceptError, first_line, plural
from percept.hookspecs import hookimpl
from percept.images import ImagePair, find_pairs, load_pair

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEFAULT_SPEC = "lpips-alex"
DESCRIPTION = (
    "Score two image files, or two folders whose files are paired by file name. "
    "Prints one line per pair, NAME<TAB>SCORE (lower: more alike), after a first line '# signature: ...' that "
    "names what the scores depend on (spec and version, input range, resize, weights checksum, percept version; "
    "skip it as a comment, e.g. pandas.read_csv(..., sep='\\t', comment='#', header=None)), or JSON with --json. "
    "Images are read by content, whatever the extension: grey ones (8- or 16-bit) stay grey and are "
    "repeated against a colour partner, alpha is dropped, palette and CMYK become RGB, 16-bit data is "
    "divided by 65535, float images are taken as they are (values must lie in [0, 1]); 32-bit integer images are "
    "refused. A pair that cannot be scored (unreadable file, different sizes, too small, no partner in the other "
    "folder) is named on stderr and the exit code is 2, but every other pair is still scored and written."
)


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``percept score``."""
    parser.add_argument("ref", metavar="REF", nargs="?", help="reference image file, or folder of reference images")
    parser.add_argument(
        "dist", metavar="DIST", nargs="?", help="distorted image file, or folder of images named as in REF"
    )
    parser.add_argument(
        "--spec",
        default=DEFAULT_SPEC,
        help=f"metric spec, e.g. 'vgg16:conv3/unit/l2' or a preset (default {DEFAULT_SPEC})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON: spec, signature, signature_record, weights, scores [{ref, dist, score}], errors",
    )
    parser.add_argument(
        "--signature",
        action="store_true",
        help="print the metric's signature (spec, version, input range, resize, weights checksum, percept version: "
        "what the scores depend on) and exit; REF and DIST are then not needed",
    )
    add_weights_option(parser)
    add_device_option(parser)
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="FILE",
        help="write the scores to FILE (whole or not at all), not stdout; '-' or /dev/stdout: stdout, in place",
    )


@hookimpl
def register_commands(register: Callable[..., None]) -> None:
    """``score``, the core's first command."""
    register("score", configure, run, help="score image pairs with a perceptual metric", description=DESCRIPTION)


def run(args: argparse.Namespace) -> int:
    """``percept score``: score every pair, print NAME<TAB>SCORE lines or JSON; 2 if a pair failed."""
    if args.signature:
        return _print_signature(args)
    if args.ref is None or args.dist is None:
        error("percept score needs REF and DIST (two image files or two folders), or --signature alone")
        return EXIT_ERROR
    pairs, notes, unpaired = find_pairs(args.ref, args.dist, return_unpaired=True)
    for note in notes:
        warn(note)
    if args.output is not None:
        from percept.io import check_outputs

        # Before anything is opened: the output is no image and no weights file, by any path or link.
        inputs = [p for pair in pairs for p in (pair.ref, pair.dist)] + [p for r, d, _ in unpaired for p in (r, d) if p]
        check_outputs([args.output], [*inputs, args.weights], what="output file (-o)")

    from percept.pipeline import build_pipeline
    from percept.signature import format_signature, signature_record

    device = device_arg(args.device)
    scores: list[dict] = []
    errors: list[dict] = []
    # Opened first: an output that cannot be written (missing or read-only folder, a folder named)
    # fails before the network is built; the file appears only once complete.
    # Names read from a non-UTF-8 file system are written back as their original bytes (surrogateescape).
    with open_output(args.output, errors="surrogateescape") as out:
        pipeline = build_pipeline(args.spec, weights=weights_arg(args.weights)).to(device)
        record = signature_record(pipeline)
        # Before the first score, a comment line: what the scores depend on (pandas: comment="#"); none without scores.
        header = [] if args.json else [f"# signature: {format_signature(record)}"]
        for ref, dist, message in unpaired:
            errors.append({"ref": ref, "dist": dist, "error": message})
            error(message)
        runnable = pairs if args.json else _drop_untabulable(pairs, errors)
        lines = None if args.json else out
        interrupted = _score_pairs(pipeline, runnable, device, scores, errors, lines, header)
        if args.json:
            result = {
                "spec": pipeline.spec or args.spec,
                "signature": format_signature(record),
                "signature_record": record,
                "weights": args.weights,
                "scores": [{k: s[k] for k in ("ref", "dist", "score")} for s in scores],
                "errors": errors,
            }
            json.dump(result, out, indent=2)
            out.write("\n")
            out.flush()
    if interrupted is not None:
        raise interrupted
    return _exit_status(len(pairs), len(unpaired), len(scores), len(errors))


def _print_signature(args: argparse.Namespace) -> int:
    """``percept score --signature``: print what the scores of ``args.spec`` depend on."""
    from percept.pipeline import build_pipeline
    from percept.signature import signature

    print(signature(build_pipeline(args.spec, weights=weights_arg(args.weights))))
    return EXIT_OK


def _score_pairs(
    pipeline,
    pairs: list[ImagePair],
    device: torch.device,
    scores: list[dict],
    errors: list[dict],
    lines: IO[str] | None,
    header: list[str],
) -> KeyboardInterrupt | None:
    """Score ``pairs`` in turn into ``scores`` (a failing pair into ``errors``), each written to ``lines`` as
    NAME<TAB>SCORE as it comes (after ``header``) unless ``lines`` is None; a Ctrl-C stops the loop and is
    returned, so the scores so far are still written out (a complete file) before the run stops."""
    try:
        for pair in pairs:
            try:
                score = _score_pair(pipeline, pair, device)
            except (PerceptError, RuntimeError, MemoryError) as exc:
                # RuntimeError/MemoryError: a failure inside the network (out of memory, a backend
                # error) stops this pair, not the run; the scores so far are kept.
                message = _pair_message(pair, exc)
                errors.append({"ref": str(pair.ref), "dist": str(pair.dist), "error": message})
                error(message)
                continue
            scores.append({"name": pair.name, "ref": str(pair.ref), "dist": str(pair.dist), "score": score})
            if lines is not None:
                print(*header, f"{pair.name}\t{score:.6g}", sep="\n", file=lines, flush=True)
                header = []
    except KeyboardInterrupt as exc:
        return exc
    return None


def _exit_status(pairs: int, unpaired: int, scored: int, errors: int) -> int:
    """``EXIT_OK`` without errors; else ``EXIT_ERROR``, after a summary line where there was more than one pair."""
    if not errors:
        return EXIT_OK
    if pairs + unpaired > 1:
        summary = f"{errors - unpaired} of {plural(pairs, 'pair')} could not be scored"
        if unpaired:
            summary += f" and {plural(unpaired, 'image')} had no partner"
        error(f"{summary} (see above); {scored} scored")
    return EXIT_ERROR


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
            error(message)
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
