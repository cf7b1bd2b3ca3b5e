"""Fused feature-difference op against the unfused eager expression (as lpips writes it).

For each (N, C, H, W): forward, and forward+backward (gradient for x only, as in training), with
channel unit-normalisation, squared difference, per-channel weights (an LPIPS head) and a spatial
mean. Times are medians of interleaved repetitions in one process; peak extra memory is measured in
a fresh subprocess per case (peak resident set size above the inputs, glibc told to return freed
memory at once). Prints a table with ratios to the unfused expression.

    python benchmarks/bench_ops.py [--reps 7] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _peak import in_fresh_process, peak_bytes

SHAPES = [(8, 64, 256, 256), (8, 256, 64, 64), (8, 512, 16, 16)]
IMPLS = ["unfused", "reference", "eager", "fused"]


def unfused(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """LPIPS' own arithmetic: normalize_tensor, squared difference, 1x1 conv head, spatial mean."""
    nx = x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + 1e-10)
    ny = y / (torch.sqrt(torch.sum(y**2, dim=1, keepdim=True)) + 1e-10)
    d = (nx - ny) ** 2
    return torch.nn.functional.conv2d(d, w.view(1, -1, 1, 1)).mean([2, 3]).flatten()


def make_fn(impl: str, device: str = "cpu"):
    from percept.ops import feature_distance

    if impl == "unfused":
        return unfused
    # "fused": the default's fast path. On the CPU that is the compiled op, which by default compiles
    # only once eager calls have cost about a compile (percept.ops.fused.COMPILE_AFTER_SECONDS); named
    # here, it compiles at the first call, so the warm-up below holds the compile and the timings none.
    fused = "compiled" if device == "cpu" else None
    backend = {"reference": "reference", "eager": "eager", "fused": fused}[impl]
    return lambda x, y, w: feature_distance(x, y, w, normalize=True, kind="sq", backend=backend)


def inputs(shape, device, dtype=torch.float32):
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(shape, generator=g).to(device, dtype).requires_grad_()
    y = torch.rand(shape, generator=g).to(device, dtype)
    w = torch.rand(shape[1], generator=g).to(device)
    return x, y, w


def step(fn, x, y, w, backward: bool):
    if backward:
        fn(x, y, w).sum().backward()
        x.grad = None
    else:
        with torch.no_grad():
            fn(x, y, w)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_cases(shape, device, reps):
    x, y, w = inputs(shape, device)
    fns = {impl: make_fn(impl, device) for impl in IMPLS}
    first = {}
    for impl, fn in fns.items():  # warm-up; the first call of "fused" includes compiling
        for backward in (False, True):
            sync(device)
            t0 = time.perf_counter()
            step(fn, x, y, w, backward)
            sync(device)
            first[(impl, backward)] = time.perf_counter() - t0
    times = {(impl, b): [] for impl in IMPLS for b in (False, True)}
    for _ in range(reps):
        for impl, fn in fns.items():
            for backward in (False, True):
                sync(device)
                t0 = time.perf_counter()
                step(fn, x, y, w, backward)
                sync(device)
                times[(impl, backward)].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, first


def memory_case(impl, shape, device, backward=True):
    """Run in a fresh process: peak bytes above the inputs for one call after warm-up."""
    x, y, w = inputs(shape, device)
    fn = make_fn(impl, device)
    step(fn, x, y, w, backward)
    step(fn, x, y, w, backward)
    return peak_bytes(lambda: step(fn, x, y, w, backward), device)


def measure_memory(impl, shape, device):
    return in_fresh_process("bench_ops", "memory_case", impl, tuple(shape), device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, reps {args.reps}")
    print(f"{'shape':>20} {'impl':>10} {'fwd ms':>9} {'fwd+bwd ms':>11} {'x unfused':>10} {'peak MiB':>9} "
          f"{'x unfused':>10} {'first call s':>12}")  # fmt: skip
    for shape in SHAPES:
        med, first = time_cases(shape, args.device, args.reps)
        mem = {} if args.no_memory else {impl: measure_memory(impl, shape, args.device) for impl in IMPLS}
        for impl in IMPLS:
            fwd, both = med[(impl, False)] * 1e3, med[(impl, True)] * 1e3
            speed = med[("unfused", True)] / med[(impl, True)]
            peak = mem.get(impl)
            mem_ratio = f"{peak / mem['unfused']:.2f}" if peak is not None and mem.get("unfused") else "-"
            peak_text = f"{peak / 2**20:.0f}" if peak is not None else "-"
            print(f"{shape!s:>20} {impl:>10} {fwd:9.1f} {both:11.1f} {speed:9.2f}x {peak_text:>9} {mem_ratio:>10} "
                  f"{first[(impl, False)] + first[(impl, True)]:12.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
