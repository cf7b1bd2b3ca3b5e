"""Benchmark of the layer sweep against one plain forward per image and against a per-tap metric loop.

Goals (issue 5), on a 2-core CPU: the sweep over all taps costs at most 1.3x one plain forward of
every image, and at least 5x less than looping a per-tap metric over the pairs.

A synthetic database in TID2013's layout is written to a temporary folder (``--refs`` references,
``--per-ref`` distorted images each, ``--size`` pixels), and three things are timed on it:

1. *plain forward*: every distorted image through the backbone once, up to its deepest stage, in
   batches, images decoded by the same DataLoader (what any evaluation must at least pay);
2. *sweep*: :func:`percept.eval.sweep.sweep_backbone` over the input and every stage (VGG16: 32
   stages) with ``flat-l2`` (reference features once per reference, one pass per distorted batch);
3. *per-tap loop*: for each tap, a ``PerceptualLoss``-style pipeline for that tap alone applied to
   each pair (reference and distorted image through the network each time), the way one would
   measure every tap with an ordinary metric. It is timed on ``--loop-taps`` taps spread over the
   depth and extrapolated to all taps (stated in the output).

Random weights (``weights=None``): timing does not depend on them.

Run: ``python benchmarks/bench_sweep.py [--backbone vgg16] [--size 384x512] [--refs 2] [--per-ref 8]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from percept import RandomWeightsWarning, create_backbone
from percept.builtin.readouts import Raw
from percept.eval.datasets import load_database
from percept.eval.sweep import iterate_chunks, make_chunks, sweep_backbone, sweep_taps
from percept.pipeline import Pipeline


def write_database(root: Path, refs: int, per_ref: int, size: tuple[int, int]) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    (root / "reference_images").mkdir(parents=True)
    (root / "distorted_images").mkdir()
    for r in range(1, refs + 1):
        ref = rng.uniform(0, 1, (*size, 3))
        Image.fromarray((ref * 255).astype(np.uint8)).save(root / "reference_images" / f"I{r:02d}.BMP")
        for k in range(1, per_ref + 1):
            dist = np.clip(ref + 0.02 * k * rng.standard_normal(ref.shape), 0, 1)
            name = f"i{r:02d}_01_{k}.bmp"
            Image.fromarray((dist * 255).astype(np.uint8)).save(root / "distorted_images" / name)
            lines.append(f"{9 - 0.5 * k:.4f} {name}")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    return root


def plain_forward(db, net, batch_size: int) -> float:
    deepest = net.module_paths[-1]
    start = time.perf_counter()
    with torch.no_grad():
        for _, _, _, dists, _ in iterate_chunks(db, make_chunks(db, batch_size)):
            net(dists, [deepest])
    return time.perf_counter() - start


def per_tap_loop(db, net, taps) -> float:
    from percept.builtin.distances import MSE

    start = time.perf_counter()
    with torch.no_grad():
        for tap in taps:
            pipe = Pipeline(net, [tap.module], [Raw()], MSE(), check_inputs=False)
            for _, _, ref, dists, _ in iterate_chunks(db, make_chunks(db, 1)):
                pipe(ref, dists)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--size", default="384x512", help="HEIGHTxWIDTH (TID2013 and KADID-10k: 384x512)")
    parser.add_argument("--refs", type=int, default=2)
    parser.add_argument("--per-ref", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--loop-taps", type=int, default=4,
                        help="taps timed in the per-tap loop (extrapolated; 0: no loop)")  # fmt: skip
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    warnings.simplefilter("ignore", RandomWeightsWarning)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.backbone}, {size[0]}x{size[1]}, "
          f"{args.refs} references x {args.per_ref} distorted images, batch {args.batch_size}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        db = load_database("tid2013", write_database(Path(tmp), args.refs, args.per_ref, size))
        net = create_backbone(args.backbone, weights=None)
        taps = sweep_taps(net)
        plain_forward(db, net, args.batch_size)  # warm-up (allocator, oneDNN primitives)
        plain = min(plain_forward(db, net, args.batch_size) for _ in range(2))
        # Warm-up on one reference: the fused distance compiles once per process (a few seconds, paid
        # once per sweep of thousands of images), as the plain forward's warm-up above. By default it
        # compiles after some seconds of eager calls, which could land in the timed sweep: here, at once.
        from percept.ops import compiling

        compiling.COMPILE_AFTER_SECONDS = 0.0
        first = db.subset(db.table["ref_id"] == db.table["ref_id"].iloc[0])
        start = time.perf_counter()
        sweep_backbone(first, net, measures=["flat-l2"], batch_size=args.batch_size)
        warm = time.perf_counter() - start
        sweeps = []
        for _ in range(2):
            start = time.perf_counter()
            sweep_backbone(db, net, measures=["flat-l2"], batch_size=args.batch_size)
            sweeps.append(time.perf_counter() - start)
        sweep = min(sweeps)
        staged = [t for t in taps if t.module]
        if not args.loop_taps:
            n = len(db)
            print(f"plain forward of every distorted image: {plain:.2f} s ({plain / n * 1000:.0f} ms/image)")
            print(f"sweep over {len(taps)} taps (input + every stage), flat-l2: {sweep:.2f} s = {sweep / plain:.2f}x "
                  "plain (goal <= 1.3x)")  # fmt: skip
            return
        picked = [staged[int(i)] for i in np.linspace(0, len(staged) - 1, args.loop_taps)]
        # The per-tap loop runs the fused distance eagerly: compiling it for every tap's shape would
        # add compile time to the loop and flatter the sweep.
        os.environ["PERCEPT_FUSED"] = "eager"
        loop_part = per_tap_loop(db, net, picked)
        # Extrapolate by depth: a tap's cost grows with its depth, so scale by the summed depths.
        loop = loop_part * sum(t.depth for t in staged) / sum(t.depth for t in picked)
    n = len(db)
    print(f"plain forward of every distorted image: {plain:.2f} s ({plain / n * 1000:.0f} ms/image)")
    print(f"first sweep over one reference's {len(first)} images (compiles the fused distance): {warm:.2f} s")
    print(f"sweep over {len(taps)} taps (input + every stage), flat-l2: {sweep:.2f} s = {sweep / plain:.2f}x plain "
          "(goal <= 1.3x)")  # fmt: skip
    print(f"per-tap metric loop: {loop_part:.2f} s for {len(picked)} taps, extrapolated to {len(staged)} taps: "
          f"{loop:.1f} s = {loop / sweep:.1f}x the sweep (goal >= 5x)")  # fmt: skip


if __name__ == "__main__":
    main()
