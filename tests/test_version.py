"""``percept.__version__`` comes from the installed ``percept-torch`` metadata, not a second copy."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import percept
from percept import _version


def test_version_is_the_installed_distributions():
    assert percept.__version__ == importlib.metadata.version("percept-torch") == _version.read_version()
    assert "__version__" in dir(percept)


def test_version_when_not_installed(monkeypatch):
    monkeypatch.setattr(_version, "DISTRIBUTION", "percept-torch-not-installed-anywhere")
    assert _version.read_version() == "0+unknown"


def test_import_does_not_read_the_metadata():
    code = "import percept; v = vars(percept); print('__version__' in v, percept.__version__ == v['__version__'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "True"]  # read on first use, then kept
