"""First pass over images of many sizes: the default fused op against ``PERCEPT_FUSED=eager``.

A user scoring a folder of mixed sizes (PIPAL, their own photos) meets every size once. Each run is a
fresh Python process (nothing compiled yet, and an empty on-disk compile cache unless
``--disk-cache``) that builds ``PerceptualLoss(spec,
reduction="none")`` with random weights and scores ``--pairs`` pairs at each of 10 distinct sizes
without a graph; the time is that loop only (construction and imports excluded, the same in both).
Runs alternate between the two settings; the table gives the median of each and the ratio of the
medians, the second and third passes over the same sizes (where the default compiles, once, and then
pays off), and whether torch warned about its recompile limit. Goal: first pass at most 1.2x eager.

    python benchmarks/bench_sizes.py [--repeats 3] [--spec lpips-alex] [--pairs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SIZES = [(224, 224), (256, 256), (240, 320), (320, 240), (288, 288), (300, 400), (384, 384), (256, 448),
         (352, 288), (416, 320)]  # fmt: skip


def child(spec: str, pairs: int, grad: bool) -> dict:
    """One fresh-process run: seconds for the first pass over every size, then for a second and a third."""
    import logging
    import warnings

    import torch

    import percept

    warnings.simplefilter("ignore", percept.RandomWeightsWarning)
    records: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logging.getLogger("torch._dynamo").addHandler(Catch(logging.WARNING))
    loss = percept.PerceptualLoss(spec, reduction="none", weights=None)
    g = torch.Generator().manual_seed(0)
    images = [(torch.rand(pairs, 3, h, w, generator=g), torch.rand(pairs, 3, h, w, generator=g)) for h, w in SIZES]

    def one_pass() -> float:
        start = time.perf_counter()
        for x, y in images:
            if grad:
                x = x.clone().requires_grad_()
                loss(x, y).sum().backward()
            else:
                with torch.no_grad():
                    loss(x, y)
        return time.perf_counter() - start

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = one_pass()
        second = one_pass()
        third = one_pass()
    messages = records + [str(w.message) for w in caught]
    limit = any("recompile" in m.lower() or "cache_size_limit" in m for m in messages)
    return {"first": first, "second": second, "third": third, "recompile_warning": limit}


def run_child(setting: str | None, args) -> dict:
    env = dict(os.environ)
    env.pop("PERCEPT_FUSED", None)
    if setting is not None:
        env["PERCEPT_FUSED"] = setting
    if not args.disk_cache:
        # torch.compile keeps compiled code on disk across processes; a first run starts without it.
        cache = tempfile.mkdtemp(prefix="bench_sizes_")
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
        env["TRITON_CACHE_DIR"] = os.path.join(cache, "triton")
    code = (
        "import json, sys; sys.path.insert(0, 'benchmarks'); import bench_sizes; "
        f"print(json.dumps(bench_sizes.child({args.spec!r}, {args.pairs}, {args.grad})))"
    )
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    finally:
        if not args.disk_cache:
            shutil.rmtree(cache, ignore_errors=True)
    if out.returncode != 0:
        raise SystemExit(f"child ({setting or 'default'}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spec", default="lpips-alex")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--grad", action="store_true", help="forward and backward (gradient for x), as in training")
    parser.add_argument(
        "--disk-cache",
        action="store_true",
        help="let runs share torch.compile's on-disk cache (as a second run of a program does); by default each "
        "process starts with an empty one, as a first run does",
    )
    args = parser.parse_args()
    import torch

    settings = {"default": None, "eager": "eager"}
    runs: dict[str, list[dict]] = {name: [] for name in settings}
    for i in range(args.repeats):
        for name in list(settings)[:: 1 if i % 2 == 0 else -1]:  # ABBA order: drift in the machine's load cancels
            runs[name].append(run_child(settings[name], args))
    sizes = ", ".join(f"{h}x{w}" for h, w in SIZES)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.spec}, {args.pairs} pairs per size, "
          f"{'forward+backward' if args.grad else 'no grad'}, {args.repeats} fresh processes each, "
          f"{'shared' if args.disk_cache else 'empty'} compile cache on disk")  # fmt: skip
    print(f"sizes: {sizes}")
    print("\n| setting | first pass s (min..max) | second s | third s | recompile warning |\n|---|---|---|---|---|")
    med = {}
    for name, rs in runs.items():
        firsts = [r["first"] for r in rs]
        med[name] = statistics.median(firsts)
        second, third = (statistics.median(r[k] for r in rs) for k in ("second", "third"))
        warned = any(r["recompile_warning"] for r in rs)
        print(f"| {name} | {med[name]:.2f} ({min(firsts):.2f}..{max(firsts):.2f}) | {second:.2f} | {third:.2f} | "
              f"{'yes' if warned else 'no'} |")  # fmt: skip
    print()
    ratios = [d["first"] / e["first"] for d, e in zip(runs["default"], runs["eager"], strict=True)]
    print(f"first pass, default / eager: {med['default'] / med['eager']:.2f}x (paired per repeat: median "
          f"{statistics.median(ratios):.2f}x, {min(ratios):.2f}..{max(ratios):.2f}; goal <= 1.2x)")  # fmt: skip


if __name__ == "__main__":
    main()
