"""Benchmark of forward map selection: 3000 pairs x 4224 maps (every VGG16 conv map), 40 steps.

The goal (issue 5): under 60 s on a 2-core CPU. The matrix is synthetic (what :func:`map_scores`
would return for TID2013 and VGG16's 13 conv layers: 64*2 + 128*2 + 256*3 + 512*6 = 4224 maps), with a
handful of informative maps among noise, so that every step has real work to do; the selection is
forced to 40 steps (``tol=-inf``). Computing the matrix itself is one sweep over the database (see
``bench_sweep.py``) and is not timed here.

Run: ``python benchmarks/bench_select.py [--pairs 3000] [--maps 4224] [--steps 40] [--criterion plcc srocc]``
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from percept.eval.select import MapScores, forward_select


def synthetic(pairs: int, maps: int, seed: int = 0) -> tuple[MapScores, np.ndarray]:
    rng = np.random.default_rng(seed)
    mos = rng.uniform(0, 9, pairs)
    quality = (mos - mos.mean()) / mos.std()
    strength = np.where(rng.random(maps) < 0.05, rng.uniform(0.2, 1.0, maps), 0.0)
    matrix = 0.7 + 0.05 * (quality[:, None] * strength + rng.standard_normal((pairs, maps)))
    taps = [f"map{m // 64}" for m in range(maps)]
    return MapScores(matrix.astype(np.float32), taps, [m % 64 for m in range(maps)], "ssim", "vgg16"), mos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--maps", type=int, default=4224)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--screen", type=int, default=64)
    parser.add_argument("--criterion", nargs="+", default=["plcc", "srocc"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    scores, mos = synthetic(args.pairs, args.maps)
    for criterion in args.criterion:
        start = time.perf_counter()
        sel = forward_select(
            scores, mos, higher_is_better=True, criterion=criterion, tol=-math.inf, max_maps=args.steps,
            min_maps=args.steps, screen=args.screen,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        final = sel.path["criterion"].iloc[-1]
        print(
            f"{criterion:6s} {args.pairs} pairs x {args.maps} maps, {len(sel.maps)} steps, screen {args.screen}: "
            f"{seconds:.1f} s ({seconds / len(sel.maps):.2f} s/step); criterion {final:.4f}, "
            f"all maps {sel.baseline['criterion']:.4f}"
        )


if __name__ == "__main__":
    main()
