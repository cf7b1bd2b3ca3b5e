"""percept type-checks: ``mypy`` with the settings in ``pyproject.toml`` (``[tool.mypy]``) finds no error.

The modules not yet clean are listed there, in one override; take a module off that list once it
passes. A cold run takes about a minute on two cores (torch's annotations are large); later runs
reuse ``.mypy_cache`` and take seconds.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="needs mypy (the dev extra)")
def test_mypy_finds_no_errors():
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"mypy found errors:\n{done.stdout}\n{done.stderr}"
    assert "Success: no issues found" in done.stdout
