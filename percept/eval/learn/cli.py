"""The ``percept learn`` command: learn a perceptual metric from 2AFC judgements and save it to reload by name.

::

    percept learn bapps /data/bapps --backbone alexnet --out learned-alex
    percept learn nights /data/nights --backbone timm.vit_small_patch14_dinov2.lvd142m --size 224 --out dino
    percept learn triplets triplets.csv --backbone resnet18 --taps layer1,layer2,layer3 --epochs 10

Training uses the subsets matching ``--train-subsets`` (default ``train/*``) and reports the 2AFC agreement on
those matching ``--val-subsets`` (default ``val/*``), before (every channel weighted 1) and after learning.
The result, ``OUT/heads.json``, loads as ``PerceptualLoss("learned-heads", file="OUT/heads.json")``.

``--method`` picks the learner: ``heads`` (LPIPS' linear heads, :func:`percept.eval.learn.train_heads`) or
``lora`` (DreamSim's LoRA tuning of transformer embeddings, :func:`percept.eval.learn.embedding.train_embedding`,
writing ``OUT/embedding.json`` for the ``learned-embedding`` preset). A
learner is one entry of :data:`METHODS` (``name -> "module:function"``); the function takes
``(args, train, val)`` and returns the path it wrote.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from percept.cli.common import add_device_option, add_weights_option, device_arg, split_list, weights_arg
from percept.errors import InputError, unknown_name

METHODS: dict[str, str] = {
    "heads": "percept.eval.learn.cli:run_heads",
    "lora": "percept.eval.learn.embedding:run_lora",  # DreamSim's LoRA tuning of transformer embeddings
}
DATABASES = ("bapps", "nights", "triplets")


def method_runner(name: str) -> Callable[[argparse.Namespace, Any, Any], Path]:
    """The learner ``--method name`` runs: ``run(args, train, val) -> path written``.

    Example:
        >>> method_runner("heads").__name__
        'run_heads'
    """
    if name not in METHODS:
        raise InputError(unknown_name("learning method", name, sorted(METHODS)))
    module, _, function = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), function)


def _check(args: argparse.Namespace) -> None:
    for name, low in (("epochs", 0), ("decay_epochs", 0), ("batch_size", 1), ("size", 1)):
        value = getattr(args, name)
        if value is not None and value < low:
            raise InputError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {value}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise InputError(f"--lr must be a finite number > 0, got {args.lr}")


def _split(db, patterns: str, option: str, required: bool):
    from percept.eval.learn.train import db_subsets

    chosen = split_list(patterns)
    if not chosen:
        if required:
            raise InputError(f"{option} needs at least one subset pattern, e.g. 'train/*'")
        return None
    try:
        return db_subsets(db, chosen)
    except InputError:
        if required:
            raise
        print(f"no subset matches {option} {patterns!r}: no held-out score", file=sys.stderr)
        return None


def run_heads(args: argparse.Namespace, train, val) -> Path:
    """``--method heads``: :func:`~percept.eval.learn.train_heads` with the command's options; writes OUT/heads.json."""
    from percept.eval.learn.heads import HeadsOptions
    from percept.eval.learn.train import train_heads

    options = HeadsOptions(taps=split_list(args.taps), weights=weights_arg(args.weights), epochs=args.epochs,
                           decay_epochs=args.decay_epochs, lr=args.lr, batch_size=args.batch_size,
                           dropout=not args.no_dropout, tune_trunk=args.tune_trunk, init=args.init, size=args.size,
                           seed=args.seed, device=str(device_arg(args.device)), progress=not args.no_progress,
                           cache=args.cache)  # fmt: skip
    jnd = jnd_set(args)  # read before training: a broken JND set fails in seconds, not after the epochs
    result = train_heads(train, args.backbone, options, val=val)
    result.data["path"] = str(args.path)
    if jnd is not None:  # BAPPS' JND sets beside the 2AFC ones: the learned metric's mAP goes into heads.json too
        from percept.eval.agreement import agreement

        table = agreement(jnd, result.pipeline(), resize=args.size, batch_size=args.batch_size,
                          device=device_arg(args.device), progress=not args.no_progress)  # fmt: skip
        result.scores["jnd_map"] = {str(r.subset): float(r.jnd_map) for r in table.itertuples() if r.subset != "mean"}
    file = result.save(args.out)
    print(f"{args.backbone} ({', '.join(result.taps)}): {len(train)} training triplets, "
          f"{options.epochs}+{options.decay_epochs} epochs, final loss {result.losses[-1]:.4f}")  # fmt: skip
    if "before" in result.scores:
        before, after = result.scores["before"], result.scores["after"]
        print("subset                      2afc_before  2afc_after")
        for subset in before:
            print(f"{subset:26s}  {before[subset]:11.4f}  {after[subset]:10.4f}")
    for subset, value in result.scores.get("jnd_map", {}).items():
        print(f"{subset:26s}  jnd_map {value:.4f}")
    return file


def jnd_set(args: argparse.Namespace):
    """BAPPS' JND sets to score the learned metric on: ``--jnd ROOT``, or ``jnd/`` beside a BAPPS ``2afc/``; else None.

    Example:
        >>> jnd_set(argparse.Namespace(jnd=None, database="csv", path="t.csv")) is None
        True
    """
    from percept.eval.datasets import read_bapps_jnd

    if args.jnd is not None:
        return read_bapps_jnd(args.jnd)
    if args.database.lower() != "bapps":
        return None
    root = Path(args.path)
    base = root.parent if root.name == "2afc" else root
    return read_bapps_jnd(base) if (base / "jnd").is_dir() else None


OUTPUT_FILES = ("heads.json", "heads.safetensors", "heads.pt", "embedding.json", "lora.safetensors")
"""What ``percept learn`` may write into ``--out``; each is checked against every input before anything is written."""


def cmd_learn(args: argparse.Namespace) -> int:
    """``percept learn``: read the 2AFC set, pick the splits, run the learner, say how to reload."""
    from percept.eval.agreement import command_inputs
    from percept.eval.datasets import TwoAFCDatabase, load_database
    from percept.io import check_outputs, ensure_output_folder

    _check(args)
    runner = method_runner(args.method)
    ensure_output_folder(args.out)
    db = load_database(args.database, args.path)
    if not isinstance(db, TwoAFCDatabase):
        raise InputError(f"{args.database} is not a 2AFC set; percept learn needs one of {', '.join(DATABASES)}")
    check_outputs(
        [Path(args.out) / name for name in OUTPUT_FILES], command_inputs(args, db), what="learn output (--out)"
    )
    train = _split(db, args.train_subsets, "--train-subsets", required=True)
    val = _split(db, args.val_subsets, "--val-subsets", required=False)
    file = runner(args, train, val)
    preset = "learned-embedding" if Path(file).name == "embedding.json" else "learned-heads"
    print(f"wrote {file} (load: PerceptualLoss('{preset}', file='{file}'))", file=sys.stderr)
    return 0


def configure_learn(parser: argparse.ArgumentParser) -> None:
    """The options of ``percept learn``."""
    parser.add_argument("database", metavar="DATABASE", help="bapps, nights or triplets (a CSV manifest)")
    parser.add_argument("path", metavar="PATH", help="the set's folder as distributed (the CSV file for triplets)")
    parser.add_argument("--backbone", required=True, help="backbone name, e.g. alexnet, vgg16, timm.<model>")
    parser.add_argument("--taps", default=None, help="comma-separated taps (default: the canonical taps)")
    add_weights_option(parser)
    parser.add_argument("--method", default="heads", choices=sorted(METHODS), help="what to learn (default heads)")
    lora = parser.add_argument_group("--method lora (DreamSim: --epochs 6 --lr 3e-4 --batch-size 16 --size 224)")
    lora.add_argument("--rank", type=int, default=16, help="LoRA rank (default 16)")
    lora.add_argument("--alpha", type=float, default=8.0, help="LoRA alpha: updates scaled by alpha/rank (default 8)")
    lora.add_argument("--lora-dropout", type=float, default=0.3, help="dropout on LoRA's input (default 0.3)")
    lora.add_argument("--margin", type=float, default=0.05, help="hinge loss margin (default 0.05)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs at the base learning rate (default 5)")
    parser.add_argument("--decay-epochs", type=int, default=5, help="then epochs of linear decay (default 5)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam's learning rate (default 1e-4)")
    parser.add_argument("--batch-size", type=int, default=50, help="triplets per step (default 50)")
    parser.add_argument("--size", type=int, default=64, help="images resized to SIZE x SIZE (default 64)")
    parser.add_argument("--init", default="random", choices=["random", "lpips"],
                        help="initial heads: random, or LPIPS v0.1's (alexnet, vgg16, squeezenet1_1)")  # fmt: skip
    parser.add_argument("--tune-trunk", action="store_true", help="train the backbone too (slow)")
    parser.add_argument("--no-dropout", action="store_true", help="no dropout before the heads (faster)")
    parser.add_argument("--train-subsets", default="train/*", help="subsets to train on (default 'train/*')")
    parser.add_argument("--val-subsets", default="val/*", help="subsets to report on (default 'val/*')")
    parser.add_argument("--jnd", default=None, metavar="ROOT",
                        help="BAPPS folder holding jnd/ to report the learned metric's JND mAP on (default: the jnd/ "
                        "beside a BAPPS 2afc/ set, when there is one)")  # fmt: skip
    parser.add_argument("--cache", default=None, metavar="DIR", help="on-disk float16 feature cache (large sets)")
    parser.add_argument("--seed", type=int, default=0, help="seed of heads, shuffling, dropout, random weights")
    parser.add_argument("--out", default="percept-learn", help="output folder (default percept-learn)")
    add_device_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def register_commands(register) -> None:
    """Register ``percept learn`` (called from :mod:`percept.eval.plugin`).

    Example:
        >>> names = []
        >>> register_commands(lambda name, configure, run, **kw: names.append(name))
        >>> names
        ['learn']
    """
    register(
        "learn",
        configure_learn,
        cmd_learn,
        help="learn a perceptual metric (LPIPS heads) for any backbone from 2AFC judgements",
        description="Train LPIPS' linear heads over the chosen taps of a backbone on a 2AFC set (BAPPS, NIGHTS or "
        "a triplet CSV), as lpips' trainer does; report the held-out 2AFC agreement before and after; write "
        "OUT/heads.json, which loads as PerceptualLoss('learned-heads', file=...).",
    )
