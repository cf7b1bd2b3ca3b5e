"""Fused feature-difference op against the unfused eager expression (as lpips writes it).

For each (N, C, H, W): forward, and forward+backward (gradient for x only, as in training), with
channel unit-normalisation, squared difference, per-channel weights (an LPIPS head) and a spatial
mean. Times are medians of interleaved repetitions in one process; peak extra memory is measured in
a fresh subprocess per case (peak resident set size above the inputs, glibc told to return freed
memory at once). Prints a table with ratios to the unfused expression.

``--bandwidth`` (on by default on CUDA) adds the fused op's achieved memory bandwidth against a plain
device-to-device copy of the same bytes (``dst.copy_(src)`` of a buffer as large as ``x`` and ``y``
together): the op reads ``x`` and ``y`` and writes an ``(N, H, W)`` map forward; backward it reads
``x``, ``y``, the upstream gradient and per-pixel statistics and writes ``dx``. A memory-bound kernel
can at best match the copy.

    python benchmarks/bench_ops.py [--reps 7] [--device cpu|cuda] [--bandwidth] [--dtype float16]
        [--shapes 4,64,128,128]

The table above is the steady state (every implementation warmed up; the fused op compiled in the warm-up).
``--run-seconds 30`` times runs as a user meets them: each in a fresh process with default settings, as many
forward+backward calls as the unfused expression makes in 30 s from its first call in a fresh process (counted
once per shape, before the timed runs), interleaved repetitions:

    python benchmarks/bench_ops.py --shapes 4,64,128,128 4,256,32,32 --run-seconds 30 --reps 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _peak import fresh_runs, in_fresh_process, paired_speedup, peak_bytes, spread

SHAPES = [(4, 64, 128, 128), (4, 256, 32, 32), (8, 64, 256, 256), (8, 256, 64, 64), (8, 512, 16, 16)]
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
    # only once that would have paid (percept.ops.compiling.eager_budget); named
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


def _median_seconds(fn, device, reps) -> float:
    fn()
    fn()
    times = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bandwidth(shape, device, reps=7, dtype=torch.float32, backend=None) -> dict[str, float]:
    """Achieved GB/s (bytes read + written / time) of the fused op forward, backward alone, and of a copy.

    ``backend``: the fused op's (default: what ``feature_distance`` picks; ``"triton"`` on CUDA).
    Returns ``{"fwd": GB/s, "bwd": GB/s, "copy": GB/s, "fwd_ms", "bwd_ms", "copy_ms"}``.
    """
    from percept.ops import feature_distance

    x, y, w = inputs(shape, device, dtype)
    n, c, h, wd = shape
    size = x.element_size()
    pixels = n * h * wd * 4  # one float32 per pixel

    def fwd():
        with torch.no_grad():
            feature_distance(x, y, w, normalize=True, kind="sq", backend=backend)

    out = feature_distance(x, y, w, normalize=True, kind="sq", backend=backend)
    upstream = torch.ones_like(out)

    def bwd():
        (gx,) = torch.autograd.grad(out, x, upstream, retain_graph=True)
        return gx

    src = torch.empty(2 * x.numel(), device=device, dtype=dtype)
    dst = torch.empty_like(src)
    fwd_s, bwd_s = _median_seconds(fwd, device, reps), _median_seconds(bwd, device, reps)
    copy_s = _median_seconds(lambda: dst.copy_(src), device, reps)
    fwd_bytes = 2 * x.numel() * size + pixels + c * 4
    bwd_bytes = 3 * x.numel() * size + 3 * pixels + c * 4  # x, y, dx; upstream and two statistics
    copy_bytes = 2 * src.numel() * size
    return {
        "fwd": fwd_bytes / fwd_s / 1e9,
        "bwd": bwd_bytes / bwd_s / 1e9,
        "copy": copy_bytes / copy_s / 1e9,
        "fwd_ms": fwd_s * 1e3,
        "bwd_ms": bwd_s * 1e3,
        "copy_ms": copy_s * 1e3,
    }


def memory_case(impl, shape, device, backward=True):
    """Run in a fresh process: peak bytes above the inputs for one call after warm-up. What the eager form keeps
    between calls (``percept.ops.release_workspace``) is released first, so that the peak counts it."""
    from percept.ops import release_workspace

    x, y, w = inputs(shape, device)
    fn = make_fn(impl, device)
    step(fn, x, y, w, backward)
    step(fn, x, y, w, backward)
    release_workspace()
    return peak_bytes(lambda: step(fn, x, y, w, backward), device)


def measure_memory(impl, shape, device):
    return in_fresh_process("bench_ops", "memory_case", impl, tuple(shape), device)


def user_run(impl: str, shape, calls: int, device: str = "cpu") -> float:
    """In a fresh process, default settings (``impl`` ``"fused"`` is ``feature_distance`` with no backend named, so
    the op compiles only when its rule says so): seconds for ``calls`` forward+backward calls from the first."""
    from percept.ops import feature_distance

    x, y, w = inputs(shape, device)
    fn = unfused if impl == "unfused" else lambda a, b, c: feature_distance(a, b, c, normalize=True, kind="sq")
    sync(device)
    t0 = time.perf_counter()
    for _ in range(calls):
        step(fn, x, y, w, True)
    sync(device)
    return time.perf_counter() - t0


def calls_in(shape, seconds: float, device: str = "cpu") -> int:
    """In a fresh process: how many forward+backward calls of the unfused expression fit in ``seconds`` from the
    first (a sustained run, as the timed runs are: a median of warm calls would count more)."""
    x, y, w = inputs(shape, device)
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(unfused, x, y, w, True)
        sync(device)
        calls += 1
    return calls


def print_user_runs(shapes, seconds: float, reps: int, device: str) -> None:
    """The ``--run-seconds`` table: runs as long as ``seconds`` of the unfused expression, fresh processes."""
    print(f"# default settings, a fresh process per run of as many forward+backward calls as the unfused "
          f"expression makes in {seconds:.0f} s from its first call (counted in a fresh process); total seconds "
          "median [min, max]; speed-up within one repetition")  # fmt: skip
    print("| shape | calls | impl | total s | x unfused |")
    print("|---|---|---|---|---|")
    for shape in shapes:
        calls = max(1, in_fresh_process("bench_ops", "calls_in", tuple(shape), seconds, device, plain=True))
        run = (tuple(shape), calls, device)
        totals = fresh_runs("bench_ops", "user_run", ["unfused", "fused"], reps, lambda impl, run=run: (impl, *run))
        for impl, runs in totals.items():
            print(f"| {tuple(shape)} | {calls} | {impl} | {spread(runs)} | {paired_speedup(totals['unfused'], runs)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--bandwidth",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="achieved GB/s against a copy of the same bytes (default: on CUDA)",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float16", "bfloat16"],
        help="dtype of the bandwidth measurement",
    )
    parser.add_argument("--shapes", nargs="+", help="N,C,H,W shapes (default: five LPIPS-like ones)")
    parser.add_argument(
        "--run-seconds",
        type=float,
        help="time runs as a user meets them instead: fresh processes, default settings, as many calls as the "
        "unfused expression makes in this many seconds",
    )
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] if args.shapes else SHAPES
    if args.run_seconds:
        print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, reps {args.reps}")
        print_user_runs(shapes, args.run_seconds, args.reps, args.device)
        return
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, reps {args.reps}")
    print("| shape | impl | fwd ms | fwd+bwd ms | x unfused | peak MiB | memory / unfused | first call s |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        med, first = time_cases(shape, args.device, args.reps)
        mem = {} if args.no_memory else {impl: measure_memory(impl, shape, args.device) for impl in IMPLS}
        for impl in IMPLS:
            fwd, both = med[(impl, False)] * 1e3, med[(impl, True)] * 1e3
            speed = med[("unfused", True)] / med[(impl, True)]
            peak = mem.get(impl)
            mem_ratio = f"{peak / mem['unfused']:.2f}" if peak is not None and mem.get("unfused") else "-"
            peak_text = f"{peak / 2**20:.0f}" if peak is not None else "-"
            print(f"| {shape!s} | {impl} | {fwd:.1f} | {both:.1f} | {speed:.2f}x | {peak_text} | {mem_ratio} | "
                  f"{first[(impl, False)] + first[(impl, True)]:.2f} |")  # fmt: skip
    if args.bandwidth if args.bandwidth is not None else args.device == "cuda":
        dtype = getattr(torch, args.dtype)
        backend = "compiled" if args.device == "cpu" else None
        print(f"\nfused op ({backend or 'default'}), {args.dtype}: achieved bandwidth against a copy of x and y")
        print(f"{'shape':>20} {'fwd GB/s':>9} {'% copy':>7} {'bwd GB/s':>9} {'% copy':>7} {'copy GB/s':>10}")
        for shape in shapes:
            bw = bandwidth(shape, args.device, args.reps, dtype, backend)
            print(f"{shape!s:>20} {bw['fwd']:9.1f} {bw['fwd'] / bw['copy']:7.0%} {bw['bwd']:9.1f} "
                  f"{bw['bwd'] / bw['copy']:7.0%} {bw['copy']:10.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
