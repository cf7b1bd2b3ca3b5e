"""Where percept's step goes: the share of CPU time in the distance (and its backward) and the input check.

A profile is steadier than a difference of two noisy wall-clock times (``compare.py``'s floor). The steady state,
as in ``compare.py``'s tables: the fused op compiles in the warm-up, so no compile falls in the profiled steps
(by default it would compile once compiling had paid, possibly within them):

    python benchmarks/overhead.py [--case lpips-vgg] [--size 8x256] [--reps 3]
"""

from __future__ import annotations

import argparse
import warnings

import compare
from torch.profiler import ProfilerActivity, profile

OPS = ("FeatureDistanceFunction", "_DISTSTerms", "aten::aminmax")  # the fused op, DISTS' terms, the input check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="lpips-vgg", choices=list(compare.IMPLS))
    parser.add_argument("--size", default="8x256", help="NxSIZE batch")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    n, size = (int(v) for v in args.size.split("x"))
    loss = compare.build(args.case, "percept")
    x, y = compare.inputs(n, size, "cpu")
    compare.warm_compiles()
    for _ in range(2):  # warm-up (and compile where the fused op compiles)
        compare.step(loss, x, y, True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.reps):
            compare.step(loss, x, y, True)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    head = f"# {args.case}, {n} x {size}, forward+backward, {args.reps} steps"
    print(head + " after a warm-up that compiled the fused op: share of CPU time")
    for e in events:
        if e.key.startswith("autograd::engine"):
            continue  # the engine's wrappers repeat the backward's own entry
        if any(e.key.startswith(op) for op in OPS):
            print(f"{e.key}: {100 * e.cpu_time_total / total:.1f}%")


if __name__ == "__main__":
    main()
