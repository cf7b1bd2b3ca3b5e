"""The GPU check's CPU part (Triton kernels under TRITON_INTERPRET=1 on small shapes) runs in CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_mode_passes_and_prints_one_table():
    pytest.importorskip("triton")
    out = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--cpu", "--budget", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = out.stdout[out.stdout.index("| check | result | goal | status |") :]
    rows = [line for line in table.splitlines() if line.startswith("| Triton vs float64 reference")]
    assert len(rows) == 3 and all(line.endswith("| ok |") for line in rows), table  # float32, float16, bfloat16
    assert "| fused op bandwidth, float32" in table, table
