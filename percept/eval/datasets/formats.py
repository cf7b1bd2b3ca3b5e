"""The database formats by name: :data:`READERS` and :func:`load_database`."""

from __future__ import annotations

import os
from collections.abc import Callable

from percept.errors import unknown_name
from percept.eval.datasets.bapps import read_bapps
from percept.eval.datasets.cidiq import read_cidiq
from percept.eval.datasets.csiq import read_csiq
from percept.eval.datasets.jnd import read_bapps_jnd
from percept.eval.datasets.kadid import read_kadid10k
from percept.eval.datasets.live import read_live
from percept.eval.datasets.manifest import read_manifest
from percept.eval.datasets.model import DatabaseError, IQADatabase, JNDDatabase, TwoAFCDatabase
from percept.eval.datasets.nights import read_nights
from percept.eval.datasets.pipal import read_pipal
from percept.eval.datasets.tid import read_tid2008, read_tid2013
from percept.eval.datasets.triplets import read_triplets

READERS: dict[str, Callable[..., IQADatabase | TwoAFCDatabase | JNDDatabase]] = {
    "tid2013": read_tid2013,
    "tid2008": read_tid2008,
    "kadid10k": read_kadid10k,
    "csiq": read_csiq,
    "live": read_live,
    "cidiq-50": lambda root, **kw: read_cidiq(root, 50, **kw),
    "cidiq-100": lambda root, **kw: read_cidiq(root, 100, **kw),
    "pipal": read_pipal,
    "bapps": read_bapps,
    "bapps-jnd": read_bapps_jnd,
    "nights": read_nights,
    "triplets": read_triplets,
    "csv": read_manifest,
}
_ALIASES = {"kadid-10k": "kadid10k", "kadid": "kadid10k", "live2": "live", "cidiq50": "cidiq-50",
            "cidiq100": "cidiq-100", "manifest": "csv", "bapps-2afc": "bapps", "jnd": "bapps-jnd",
            "bapps_jnd": "bapps-jnd", "triplet": "triplets"}  # fmt: skip


def load_database(name: str, path: str | os.PathLike, **kwargs) -> IQADatabase | TwoAFCDatabase | JNDDatabase:
    """Read database ``name`` from ``path`` in its native layout (see the module docstring).

    Args:
        name: ``tid2013``, ``tid2008``, ``kadid10k``, ``csiq``, ``live``, ``cidiq-50``, ``cidiq-100``,
            ``pipal``, ``csv`` (then ``path`` is the manifest file); the 2AFC sets ``bapps``, ``nights`` and
            ``triplets`` (a triplet manifest file); the JND set ``bapps-jnd``.
        path: the database's folder (or the manifest).
        **kwargs: reader options (``scores=``, ``higher_is_better=``, ``root=``, ``subsets=``, ``min_votes=``,
            ``split=``).

    Example:
        >>> load_database("cidiq-100", "/data/cidiq").name  # doctest: +SKIP
        'cidiq-100'
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in READERS:
        raise DatabaseError(unknown_name("database", name, READERS))
    return READERS[key](path, **kwargs)
