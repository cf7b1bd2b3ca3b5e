"""Moved to :mod:`percept.builtin.timm`.

This module forwards every attribute there with a ``DeprecationWarning``; it goes in the next release.
"""

from percept._deprecated import moved

__getattr__ = moved(__name__, "percept.builtin.timm")
