"""What every ``percept`` subcommand shares: exit codes, messages on stderr, and the parsers of the
options that several commands take (``--weights``, ``--device``, comma lists, ``--resize``, ``-o``).

A plugin's command (registered through the ``register_commands`` hook) may use these too, so that
its options read and fail like the core's.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, TextIO

from percept.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

PROG = "percept"
EXIT_OK, EXIT_NOTHING, EXIT_ERROR = 0, 1, 2
RANDOM_WEIGHTS = ("none", "random")


def error(message: str) -> None:
    """Print ``percept: error: <message>`` on stderr."""
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


_WEIGHTS_KEYWORD = re.compile(r"\bweights=(['\"])([^'\"]*)\1")


def cli_wording(message: str) -> str:
    """A library message as the command line says it: ``weights='X'`` (the Python keyword) is ``--weights X``.

    Example:
        >>> cli_wording("pass weights='/path/to/vgg16-397923af.pth' or weights='imagenet1k_v1'")
        'pass --weights /path/to/vgg16-397923af.pth or --weights imagenet1k_v1'
    """
    return _WEIGHTS_KEYWORD.sub(lambda m: f"--weights {m.group(2)}", message)


def warn(message: str) -> None:
    """Print ``percept: warning: <message>`` on stderr."""
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def weights_arg(text: str | None) -> str | None:
    """A ``--weights`` value as ``create_backbone`` takes it: ``'none'`` or ``'random'`` (any case) is ``None``.

    Example:
        >>> weights_arg("None"), weights_arg("imagenet"), weights_arg(None)
        (None, 'imagenet', None)
    """
    return None if text is None or text.strip().lower() in RANDOM_WEIGHTS else text


def split_list(text: str | None) -> list[str] | None:
    """A comma-separated option as a list (``None`` for no option or only commas and spaces).

    Example:
        >>> split_list(" vgg16, alexnet,"), split_list(" , ")
        (['vgg16', 'alexnet'], None)
    """
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def resize_arg(text: str | None) -> int | tuple[int, int] | None:
    """A ``--resize`` value: ``SIDE`` or ``HEIGHTxWIDTH`` (also ``HEIGHT,WIDTH``), sizes >= 1.

    Raises:
        InputError: not one or two positive integers.

    Example:
        >>> resize_arg("256"), resize_arg("384x512"), resize_arg(None)
        (256, (384, 512), None)
    """
    if text is None:
        return None
    try:
        parts = [int(p) for p in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise InputError(f"--resize expects SIDE or HEIGHTxWIDTH (e.g. 256 or 384x512), got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise InputError(f"--resize expects SIDE or HEIGHTxWIDTH with positive sizes, got {text!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def device_arg(text: str | None) -> torch.device:
    """A ``--device`` value as a ``torch.device``; ``None`` is CUDA where available, else the CPU.

    Raises:
        InputError: not a device name, or a device this machine or this build of torch lacks (CUDA, MPS, XPU ...).

    Example:
        >>> device_arg("cpu")
        device(type='cpu')
    """
    import torch

    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise InputError(f"unknown device {text!r}; expected e.g. 'cpu', 'cuda' or 'cuda:1'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {text!r} asked for, but CUDA is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda"):  # mps, xpu ...: only a build of torch with them can allocate there
        try:
            torch.empty(0, device=device)
        except Exception as exc:  # noqa: BLE001 - each backend fails its own way (RuntimeError, AssertionError ...)
            raise InputError(
                f"device {text!r} is not available in this build of torch ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:120] if str(exc) else 'no detail'}); use --device cpu"
            ) from None
    return device


DEVICE_HELP = "torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available, else cpu)"


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--device`` as every command takes it: default CUDA where available, else the CPU.

    The option's value stays ``None`` unless given; :func:`device_arg` turns it into a device by the one
    rule (``score``, ``demo``, ``sweep``, ``select``, ``finetune`` and ``visualize`` all use it).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_device_option(parser)
        >>> parser.parse_args([]).device is None, parser.parse_args(["--device", "cpu"]).device
        (True, 'cpu')
    """
    parser.add_argument("--device", default=None, help=DEVICE_HELP)


WEIGHTS_HELP = (
    "backbone weights: a tag (default 'imagenet': from $PERCEPT_WEIGHTS_DIR, torch's hub cache, or downloaded), "
    "a path to a state_dict file, or random weights (scores then mean nothing): 'random:SEED' (the same seed "
    "gives the same network), or 'none' / 'random' (a seed drawn from torch's generator, stated in the signature)"
)


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--weights`` as the commands that build a backbone take it: default ``"imagenet"``.

    :func:`weights_arg` turns the value into ``create_backbone``'s ``weights=`` (``'none'`` -> ``None``).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_weights_option(parser)
        >>> parser.parse_args([]).weights, parser.parse_args(["--weights", "none"]).weights
        ('imagenet', 'none')
    """
    parser.add_argument("--weights", default="imagenet", help=WEIGHTS_HELP)


@contextlib.contextmanager
def open_output(path: str | None, *, errors: str = "strict") -> Iterator[IO[str]]:
    """stdout (``None``, ``-``, ``/dev/stdout``: written in place), or ``path`` written whole or not at all
    (:func:`percept.io.atomic_write`). ``errors`` as for :func:`open` (``"surrogateescape"``: names read from
    a non-UTF-8 file system are written back as their original bytes)."""
    from percept.io import atomic_write

    with atomic_write("-" if path is None else path, "w", errors=errors) as handle:
        yield handle


def print_table(
    header: list[str],
    rows: list[list[str]],
    file: TextIO | None = None,
    below: list[list[str]] | None = None,
) -> None:
    """Print ``rows`` under ``header`` in left-aligned columns (the last one unpadded).

    ``below[i]``, when given, holds lines printed indented under row ``i`` (a backbone's weight sets).

    Example:
        >>> print_table(["NAME", "DESCRIPTION"], [["l2", "squared difference"]], below=[["a note"]])
        NAME  DESCRIPTION
        l2    squared difference
            a note
    """
    file = file or sys.stdout
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for index, row in enumerate([header, *rows]):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)] + [row[-1]]
        print("  ".join(cells).rstrip(), file=file)
        for line in below[index - 1] if below and index else ():
            print(f"    {line}", file=file)
