"""The GPU check: one call on a machine with one NVIDIA GPU, at most 8 minutes, one table at the end.

On CUDA (the default where a GPU is present):

1. the CUDA tests: Triton kernels against the float64 reference, forward and backward, float32, float16
   and bfloat16 (``tests/test_ops.py``), DISTS statistics, no host synchronisation in a training step,
   float16 autocast (``pytest -k "triton or cuda"`` over the files that hold them);
2. the same kernel check in this process on a larger map, as numbers: the worst error relative to the
   reference per dtype;
3. ``bench_ops.bandwidth``: the fused op's achieved bandwidth forward and backward against a plain
   device-to-device copy of the same bytes (goal: at least 60% of the copy), float32 and float16;
4. ``compare.time_case``: ``lpips-vgg`` and ``dists`` at 8 x 256², forward+backward, percept against the
   peers, without and with float16 autocast (goal: lpips-vgg with autocast at least 1.5x the ``lpips``
   package).

``--cpu`` runs what a CPU can: step 2 with the Triton kernels under ``TRITON_INTERPRET=1`` on small shapes,
and step 3 on a small map (the interpreter's "bandwidth" says only that the code runs). CI runs it
(``tests/test_gpu_check.py``). Sections that fail are reported in the table, not raised; the exit code
is 1 if any did.

    python benchmarks/gpu_check.py [--cpu] [--budget 470]
"""

from __future__ import annotations

import os
import sys

if "--cpu" in sys.argv:  # before anything imports triton
    os.environ["TRITON_INTERPRET"] = "1"

import argparse
import re
import statistics
import subprocess
import time
import traceback
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

TEST_FILES = [
    "tests/test_ops.py",
    "tests/test_dists_terms.py",
    "tests/test_host_sync.py",
    "tests/test_precision_compile.py",
]
TOL = {torch.float32: 2e-5, torch.float16: 2e-2, torch.bfloat16: 5e-2}


class Report:
    """Rows of ``(check, result, goal, status)``; a section that raises becomes one FAIL row."""

    def __init__(self, budget: float) -> None:
        self.rows: list[tuple[str, str, str, str]] = []
        self.deadline = time.monotonic() + budget

    def add(self, check: str, result: str, goal: str = "", ok: bool | None = None) -> None:
        status = "-" if ok is None else ("ok" if ok else "FAIL")
        self.rows.append((check, result, goal, status))
        print(f"  {check}: {result} {f'(goal {goal})' if goal else ''} {status}", flush=True)

    def section(self, name: str, fn, *args, need: float = 0.0) -> None:
        left = self.deadline - time.monotonic()
        if left < need:
            self.add(name, f"skipped: {left:.0f} s left of the budget, needs about {need:.0f} s", ok=None)
            return
        print(f"== {name}", flush=True)
        start = time.monotonic()
        try:
            fn(self, *args)
        except Exception as exc:  # noqa: BLE001 - the table reports it
            traceback.print_exc()
            self.add(name, f"{type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}", ok=False)
        print(f"   ({time.monotonic() - start:.0f} s)", flush=True)

    @property
    def failed(self) -> bool:
        return any(r[3] == "FAIL" for r in self.rows)

    def print(self, header: str) -> None:
        print(f"\n{header}\n")
        print("| check | result | goal | status |")
        print("|---|---|---|---|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")


def run_tests(report: Report) -> None:
    """The CUDA and Triton tests in a subprocess (pytest's own summary line, parsed)."""
    timeout = max(30.0, report.deadline - time.monotonic() - 200)  # leave time for the benchmarks
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "triton or cuda", *TEST_FILES]
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        report.add("CUDA tests", f"timed out after {timeout:.0f} s", "all pass", ok=False)
        return
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-200:]
    counts = dict((k, int(v)) for v, k in re.findall(r"(\d+) (passed|failed|error|errors|skipped)", summary))
    if out.returncode not in (0, 5):
        print(out.stdout[-4000:], out.stderr[-2000:])
    ok = out.returncode == 0 and counts.get("passed", 0) > 0 and not counts.get("failed")
    report.add(
        f"CUDA tests ({', '.join(Path(f).name for f in TEST_FILES)}, -k 'triton or cuda')", summary, "all pass", ok
    )


def kernel_check(report: Report, device: str, shape: tuple[int, ...]) -> None:
    """Triton forward and backward against the float64 reference: worst error relative to its scale."""
    from percept.ops import feature_distance, feature_distance_reference

    torch.manual_seed(0)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        worst, cases = 0.0, 0
        for kind in ("sq", "abs", "cos"):
            for normalize in (False, True):
                x = torch.randn(shape, device=device).to(dtype).requires_grad_()
                y = torch.randn(shape, device=device).to(dtype).requires_grad_()
                w = (torch.rand(shape[1], device=device) + 0.1).requires_grad_()
                out = feature_distance(x, y, w, normalize=normalize, kind=kind, backend="triton")
                got = (out, *torch.autograd.grad(out.sum(), (x, y, w)))
                xr, yr, wr = (t.detach().double().requires_grad_() for t in (x, y, w))
                ref_out = feature_distance_reference(xr, yr, wr, normalize=normalize, kind=kind)
                ref = (ref_out, *torch.autograd.grad(ref_out.sum(), (xr, yr, wr)))
                for a, b in zip(got, ref, strict=True):
                    scale = max(1.0, float(b.abs().max()))
                    worst = max(worst, float((a.double() - b).abs().max()) / scale)
                cases += 1
        name = str(dtype).split(".")[-1]
        report.add(
            f"Triton vs float64 reference, {name}, {shape}, fwd+bwd ({cases} variants)",
            f"max error {worst:.2e}",
            f"<= {TOL[dtype]:.0e}",
            worst <= TOL[dtype],
        )


def bandwidth_check(report: Report, device: str, shapes, dtypes, reps: int) -> None:
    import bench_ops

    for dtype in dtypes:
        for shape in shapes:
            bw = bench_ops.bandwidth(shape, device, reps, dtype, backend="triton")
            fwd, bwd = bw["fwd"] / bw["copy"], bw["bwd"] / bw["copy"]
            name = str(dtype).split(".")[-1]
            goal = ">= 60% of copy" if device == "cuda" else ""
            ok = (min(fwd, bwd) >= 0.6) if device == "cuda" else None
            report.add(
                f"fused op bandwidth, {name} {shape}",
                f"fwd {bw['fwd']:.3g} GB/s ({fwd:.0%}), bwd {bw['bwd']:.3g} GB/s ({bwd:.0%}); "
                f"copy {bw['copy']:.3g} GB/s",
                goal,
                ok,
            )


def compare_check(
    report: Report, case: str, autocast: str | None, n: int, size: int, reps: int, device: str = "cuda"
) -> None:
    import compare

    times = compare.time_case(case, n, size, device, reps, autocast)
    impls = compare.IMPLS[case]
    ours = times[("percept", True)]
    parts = []
    for impl in impls[1:]:
        paired = statistics.median(t / o for t, o in zip(times[(impl, True)], ours, strict=True))
        parts.append(f"{impl} {statistics.median(times[(impl, True)]) * 1e3:.1f} ms ({paired:.2f}x)")
    head = f"percept {statistics.median(ours) * 1e3:.1f} ms"
    goal, ok = "", None
    if case == "lpips-vgg" and autocast:
        lpips_ratio = statistics.median(t / o for t, o in zip(times[("lpips", True)], ours, strict=True))
        goal, ok = ">= 1.5x lpips", lpips_ratio >= 1.5
    report.add(
        f"{case} {n}x{size}² fwd+bwd, autocast {autocast or 'off'} (peer / percept)",
        "; ".join([head, *parts]),
        goal,
        ok,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="the CI part: Triton under TRITON_INTERPRET=1, small")
    parser.add_argument("--budget", type=float, default=470.0, help="seconds for everything (default 470)")
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and not args.cpu
    report = Report(args.budget)
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    device_name = torch.cuda.get_device_name() if cuda else "CPU (Triton interpreter)"
    header = f"GPU check: {device_name}, torch {torch.__version__}, triton {triton_version}"
    print(header, flush=True)
    if triton_version == "not installed":
        report.add("triton", "not installed: the fused op's kernels cannot run", ok=False)
    elif cuda:
        report.section("CUDA tests", run_tests, need=60)
        report.section("kernels", kernel_check, "cuda", (4, 64, 67, 61), need=20)
        report.section("bandwidth", bandwidth_check, "cuda", [(8, 64, 256, 256), (8, 256, 64, 64)],
                       (torch.float32, torch.float16), 20, need=30)  # fmt: skip
        for case in ("lpips-vgg", "dists"):
            for autocast in (None, "float16"):
                report.section(f"compare {case}", compare_check, case, autocast, 8, 256, 5, need=45)
    else:
        report.section("kernels", kernel_check, "cpu", (2, 8, 5, 7))
        report.section("bandwidth", bandwidth_check, "cpu", [(1, 8, 16, 16)], (torch.float32,), 1)
        report.add("CUDA tests, bandwidth and peers on a GPU", "skipped: no GPU (--cpu)", ok=None)
    report.print(header)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
