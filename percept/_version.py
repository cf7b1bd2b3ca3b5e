"""The distribution percept is installed as, and its version from the installed metadata.

The import name is ``percept``; the distribution is ``percept-torch`` (the name ``percept`` on
PyPI belongs to an unrelated project), as scikit-image installs ``skimage``.
"""

from __future__ import annotations

import importlib.metadata

DISTRIBUTION = "percept-torch"
UNKNOWN_VERSION = "0+unknown"  # a source tree that was never installed


def read_version() -> str:
    """The installed ``percept-torch`` version, or ``"0+unknown"`` when percept runs uninstalled.

    Example:
        >>> read_version()  # doctest: +SKIP
        '0.1.0'
    """
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN_VERSION
