"""Benchmark of a seed-scale study: ``percept sweep --backbones @seed46`` in one command, its time and peak memory.

A synthetic database in TID2013's layout is written to a temporary folder (``--refs`` references,
``--per-ref`` distorted images each, ``--size`` pixels), and the whole study runs on it as a user runs it:
46 configurations (random weights: timing does not depend on them), every tap, ``flat-l2``, PSNR and SSIM
baselines, the correlation table, the per-backbone figures and the study figure coloured by training.
Printed: wall time, the share spent building networks, and the process's peak resident memory.

Run: ``python benchmarks/bench_study.py [--size 128] [--refs 3] [--per-ref 4]``
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from percept import RandomWeightsWarning
from percept.cli import main as percept_main
from percept.eval.configs import SEED46

sys.path.insert(0, str(Path(__file__).parent))
from bench_sweep import write_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image side (default 128)")
    parser.add_argument("--refs", type=int, default=3)
    parser.add_argument("--per-ref", type=int, default=4)
    args = parser.parse_args()
    warnings.simplefilter("ignore", RandomWeightsWarning)
    pairs = args.refs * args.per_ref
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; @seed46 ({len(SEED46)} configurations), "
          f"{args.size}x{args.size} images, {args.refs} references x {args.per_ref} = {pairs} pairs")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = write_database(Path(tmp) / "db", args.refs, args.per_ref, (args.size, args.size))
        out = Path(tmp) / "study"
        start = time.perf_counter()
        code = percept_main(["sweep", "tid2013", str(root), "--backbones", "@seed46", "--weights", "none",
                             "--baselines", "psnr,ssim", "--out", str(out), "--no-progress"])  # fmt: skip
        wall = time.perf_counter() - start
        files = sorted(p.name for p in out.iterdir())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"exit code {code}; {len(files)} files written (correlations.csv, scores.csv, study figure, "
          f"{sum(f.startswith('depth_') for f in files)} depth figures)")  # fmt: skip
    print(f"wall time {wall:.0f} s ({wall / len(SEED46):.1f} s per configuration); peak memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
