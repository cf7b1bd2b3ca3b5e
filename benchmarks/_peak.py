"""Peak-memory measurement shared by the benchmarks.

``peak_bytes(run, device)``: peak memory above the current level while ``run()`` executes (the CUDA
allocator on a GPU; on Linux CPUs the process' peak resident set size, reset first).
``in_fresh_process(module, function, *args, plain=False)``: call ``benchmarks/<module>.<function>(*args)`` in a
new Python process (with glibc told to return freed memory at once unless ``plain``) and return its JSON result.
``fresh_runs(module, function, impls, reps, args_for)``: that, for every implementation, in interleaved repetitions.
``spread(values)`` and ``paired_speedup(slower, faster)``: the "median [min, max]" cells of the tables.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable

import torch


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_bytes(run: Callable[[], object], device: str) -> int:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set size (VmHWM)
    base = _status("VmRSS")
    run()
    return _status("VmHWM") - base


def in_fresh_process(module: str, function: str, *args, plain: bool = False):
    """``plain``: the environment as it is (timing what a user meets); otherwise glibc returns freed memory at once,
    so that the peak resident set size measures what the call holds."""
    env = dict(os.environ) if plain else dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    code = (
        f"import json, sys; sys.path.insert(0, 'benchmarks'); import {module}; "
        f"print(json.dumps({module}.{function}(*{args!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_runs(module: str, function: str, impls, reps: int, args_for) -> dict[str, list]:
    """``impl -> [result per repetition]`` of ``<module>.<function>(*args_for(impl))``, each call in a fresh
    process with the environment as it is (a user's run); the order of the implementations alternates between
    repetitions, so slow drift of the machine falls on all of them alike."""
    results: dict[str, list] = {impl: [] for impl in impls}
    for rep in range(reps):
        for impl in impls if rep % 2 == 0 else impls[::-1]:
            results[impl].append(in_fresh_process(module, function, *args_for(impl), plain=True))
    return results


def spread(values, unit: str = "") -> str:
    """``"median [min, max]"`` of ``values``, two decimals, ``unit`` after the median (``"x"``)."""
    return f"{statistics.median(values):.2f}{unit} [{min(values):.2f}, {max(values):.2f}]"


def paired_speedup(slower, faster) -> str:
    """The speed-up of ``faster`` over ``slower`` within each repetition (``slower / faster`` times), as
    ``"median x [min, max]"``."""
    return spread([s / f for s, f in zip(slower, faster, strict=True)], "x")
