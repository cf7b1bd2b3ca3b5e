"""Start-up cost of percept: ``percept --help``, ``percept score --help``, and a first metric build.

Each measurement is a fresh process (``python -m percept ...``, as the ``percept`` script runs it), repeated
``--repeat`` times; the table gives the median and the fastest wall time. The first build is
``PerceptualLoss("pixel:all/raw/l1")`` right after ``import percept``, timed inside the process, with the list
of percept's application modules (``percept.cli``, ``percept.demo``, ``percept.eval``) it imported: the
core should import none. With ``--source DIR`` the percept package in ``DIR`` is measured instead (a
checkout of an older commit, for a before/after comparison); the installed plugins are the same.
``--timm-offline`` adds a timm build with ``weights="imagenet"`` on a machine without a network (slow:
the old behaviour retried for about a minute).

Usage::

    python benchmarks/cli_startup.py [--repeat 5] [--source /path/to/old/checkout] [--timm-offline]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

FIRST_BUILD = """
import sys, time
start = time.perf_counter()
from percept import PerceptualLoss
PerceptualLoss("pixel:all/raw/l1")
print(f"{time.perf_counter() - start:.3f}")
print(",".join(sorted(m for m in sys.modules if m.startswith(("percept.cli", "percept.demo", "percept.eval")))))
"""
TIMM_OFFLINE = """
import time, warnings
warnings.simplefilter("ignore")
import percept, timm
start = time.perf_counter()
try:
    percept.create_backbone("timm.resnet10t", weights="imagenet")
except percept.WeightsError:
    pass
print(f"{time.perf_counter() - start:.1f}")
"""


def _env(source: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = os.pathsep.join([source, env.get("PYTHONPATH", "")])
    return env


def wall_times(args: list[str], repeat: int, env: dict[str, str]) -> list[float]:
    """Wall-clock seconds of ``python ARGS`` in ``repeat`` fresh processes."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def first_build(repeat: int, env: dict[str, str]) -> tuple[list[float], list[str]]:
    """In-process seconds of import + first build, and the application modules it imported."""
    times, modules = [], []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_BUILD], env=env, check=True, capture_output=True, text=True
        ).stdout.splitlines()
        times.append(float(out[0]))
        modules = [m for m in (out[1] if len(out) > 1 else "").split(",") if m]
    return times, modules


def _row(label: str, times: list[float]) -> str:
    return f"{label:<36} median {statistics.median(times):6.3f} s   fastest {min(times):6.3f} s   (n={len(times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per measurement (default 5)")
    parser.add_argument("--source", default=None, help="measure the percept package in this folder instead")
    parser.add_argument("--timm-offline", action="store_true", help="also time a timm build offline (slow)")
    options = parser.parse_args()
    env = _env(options.source)
    where = subprocess.run(
        [sys.executable, "-c", "import percept; print(percept.__file__)"], env=env, capture_output=True, text=True
    ).stdout.strip()
    plugins = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.metadata as m; print(sorted(e.name for e in m.entry_points(group='percept')))",
        ],
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"percept from {where}; entry points of the group percept: {plugins}")
    print(_row("percept --help", wall_times(["-m", "percept", "--help"], options.repeat, env)))
    print(_row("percept score --help", wall_times(["-m", "percept", "score", "--help"], options.repeat, env)))
    times, modules = first_build(options.repeat, env)
    print(_row('import + PerceptualLoss("pixel:all/raw/l1")', times))
    print(f"application modules imported by that first build ({len(modules)}): {', '.join(modules) or 'none'}")
    if options.timm_offline:
        out = subprocess.run([sys.executable, "-c", TIMM_OFFLINE], env=env, capture_output=True, text=True)
        print(f"timm.resnet10t weights='imagenet' offline: {out.stdout.strip()} s to fail")


if __name__ == "__main__":
    main()
