"""A database's files on disk, for the readers of every database format: existence checks that hint at the
right folder, case-insensitive lookup of the images a table names, the lines of a text file, the variables of
a MATLAB file.

Every function takes ``layout``, the layout expected in words (``"TID2013's mos_with_names.txt"``), and
raises :class:`~percept.eval.datasets.model.DatabaseError` naming the file and that layout, never a bare
``OSError``. A reader for a new format uses them the way :mod:`percept.eval.datasets.tid` does::

    images = index_folder(root / "distorted_images", LAYOUT)
    for number, line in read_lines(root / "mos_with_names.txt", LAYOUT):  # the file checked, then read
        path = find_file(images, line.split()[1], root / "distorted_images", root / "mos_with_names.txt", LAYOUT)
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from percept.eval.datasets.model import DatabaseError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


def require_path(path: Path, layout: str) -> Path:
    """``path`` if it exists (a file or a folder), else a :class:`DatabaseError` naming it and ``layout``.

    A common slip, passing the folder above the database (``/data`` for ``/data/tid2013``), gets a hint
    naming the folder to pass instead.

    Args:
        path: the file or folder a database needs.
        layout: the layout expected, in words, for the message.

    Returns:
        ``path``, unchanged.

    Raises:
        DatabaseError: ``path`` does not exist.

    Example:
        >>> require_path(Path("/data/tid2013"), "TID2013's folders")  # doctest: +SKIP
        Traceback (most recent call last):
        DatabaseError: '/data/tid2013' does not exist; expected TID2013's folders
    """
    if not path.exists():
        hint = ""
        with contextlib.suppress(OSError):
            found = sorted(path.parent.glob(f"*/{path.name}"))[:1] if path.parent.is_dir() else []
            if found:
                hint = f" (there is '{found[0]}': pass '{found[0].parent}' instead)"
        raise DatabaseError(f"'{path}' does not exist{hint}; expected {layout}")
    return path


def require_file(path: Path, layout: str) -> Path:
    """``path`` if it is a file of at least one byte, else a :class:`DatabaseError` saying what it is instead.

    Args:
        path: the file a database needs (a score table, a MATLAB file).
        layout: the layout expected, in words, for the message.

    Returns:
        ``path``, unchanged.

    Raises:
        DatabaseError: ``path`` does not exist, is a folder, or is empty (0 bytes).

    Example:
        >>> require_file(Path("/data/kadid10k/dmos.csv"), "KADID-10k's dmos.csv")  # doctest: +SKIP
        PosixPath('/data/kadid10k/dmos.csv')
    """
    require_path(path, layout)
    if not path.is_file():
        raise DatabaseError(f"'{path}' is a folder, not a file; expected {layout}")
    if path.stat().st_size == 0:
        raise DatabaseError(f"'{path}' is empty (0 bytes); expected {layout}")
    return path


def index_folder(folder: Path, layout: str) -> dict[str, Path]:
    """The files of ``folder`` by lower-cased name, for case-insensitive lookups with :func:`find_file`.

    Copies of one database differ in case (TID's references are ``I01.BMP`` on some, ``i01.bmp`` on others).

    Args:
        folder: a folder of images (not searched below).
        layout: the layout expected, in words, for the message.

    Returns:
        Lower-cased file name -> its path, for every file directly inside ``folder``.

    Raises:
        DatabaseError: ``folder`` does not exist or is not a folder.

    Example:
        >>> index_folder(Path("/data/tid2013/reference_images"), "TID2013's folders")["i01.bmp"]  # doctest: +SKIP
        PosixPath('/data/tid2013/reference_images/I01.BMP')
    """
    require_path(folder, layout)
    if not folder.is_dir():
        raise DatabaseError(f"'{folder}' is not a folder; expected {layout}")
    return {p.name.lower(): p for p in folder.iterdir() if p.is_file()}


def find_file(index: dict[str, Path], name: str, folder: Path, source: Path, layout: str) -> Path:
    """The file ``name`` in an :func:`index_folder` index, ignoring case; else an error naming who named it.

    Args:
        index: :func:`index_folder` of ``folder``.
        name: the file name as the score table writes it.
        folder: the indexed folder (for the message).
        source: the file that names ``name`` (for the message).
        layout: the layout expected, in words, for the message.

    Returns:
        The path of the file, as spelled on disk.

    Raises:
        DatabaseError: no file of ``folder`` has that name, in any case.

    Example:
        >>> images = index_folder(Path("/data/tid2013/distorted_images"), "TID2013")  # doctest: +SKIP
        >>> find_file(images, "I01_01_1.BMP", Path("/data/tid2013/distorted_images"),
        ...           Path("/data/tid2013/mos_with_names.txt"), "TID2013")  # doctest: +SKIP
        PosixPath('/data/tid2013/distorted_images/i01_01_1.bmp')
    """
    try:
        return index[name.lower()]
    except KeyError:
        raise DatabaseError(
            f"'{folder / name}' (named in '{source}') does not exist (file names are matched ignoring case); "
            f"expected {layout}"
        ) from None


def read_lines(path: Path, layout: str) -> list[tuple[int, str]]:
    """The non-blank lines of a text file with their (1-based) numbers, for messages that name the line.

    Read as UTF-8 (a byte-order mark dropped), or as Latin-1 where that fails.

    Args:
        path: a text file.
        layout: the layout expected, in words, for the message.

    Returns:
        ``(line number, line)`` for each line holding more than white space, in file order.

    Raises:
        DatabaseError: the file is missing, empty, unreadable, or holds only blank lines.

    Example:
        >>> read_lines(Path("/data/tid2013/mos_with_names.txt"), "TID2013")[:1]  # doctest: +SKIP
        [(1, '5.51429 i01_01_1.bmp')]
    """
    require_file(path, layout)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise DatabaseError(f"cannot read '{path}': {exc.strerror or exc}; expected {layout}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise DatabaseError(f"'{path}' holds no lines (only blanks); expected {layout}")
    return lines


def load_mat(path: Path, layout: str) -> dict:
    """The variables of a MATLAB ``.mat`` file (``scipy.io.loadmat``), with a clear error for one it cannot read.

    Args:
        path: a ``.mat`` file (format 4 or 5, as LIVE and CID:IQ ship theirs).
        layout: the layout expected, in words, for the message.

    Returns:
        Variable name -> value (numpy arrays), with scipy's ``__header__``-style entries.

    Raises:
        DatabaseError: scipy cannot read the file as a MATLAB file.

    Example:
        >>> mat = load_mat(Path("/data/live/dmos.mat"), "LIVE's dmos.mat")  # doctest: +SKIP
        >>> mat_vector(mat, ("dmos",), Path("/data/live/dmos.mat"), "LIVE").shape  # doctest: +SKIP
        (982,)
    """
    import scipy.io

    try:
        return scipy.io.loadmat(path)
    except (scipy.io.matlab.MatReadError, ValueError, OSError, TypeError, NotImplementedError) as exc:
        raise DatabaseError(f"cannot read '{path}' as a MATLAB file: {exc}; expected {layout}") from None


def mat_vector(mat: dict, keys: tuple[str, ...], source: Path, layout: str) -> np.ndarray:
    """The first of the variables ``keys`` found in a :func:`load_mat` result, flattened to one dimension.

    Args:
        mat: what :func:`load_mat` returned.
        keys: the variable's possible names, tried in order (``("dmos_new", "dmos")``).
        source: the file ``mat`` was read from (for the message).
        layout: the layout expected, in words, for the message.

    Returns:
        The variable as a 1-D numpy array (MATLAB's row or column vector alike).

    Raises:
        DatabaseError: none of ``keys`` is in the file (the message lists the variables it holds).

    Example:
        >>> import numpy as np
        >>> mat_vector({"MOS50": np.ones((1, 3))}, ("MOS50",), Path("MOS50.mat"), "CID:IQ's MOS50.mat")
        array([1., 1., 1.])
    """
    import numpy as np

    for key in keys:
        if key in mat:
            return np.asarray(mat[key]).reshape(-1)
    found = sorted(k for k in mat if not k.startswith("__"))
    raise DatabaseError(f"'{source}' holds no variable {' or '.join(keys)} (it holds {found}); expected {layout}")
