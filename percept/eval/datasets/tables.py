"""Score tables, for the readers of every database format: a text table (comma, tab or white space separated)
or a workbook sheet read into a :class:`Table` of text cells, cells parsed into finite numbers, and the rows of
an :class:`~percept.eval.datasets.model.IQADatabase` gathered into its DataFrame.

Column names are matched ignoring case, ``_`` and spaces: a :class:`Table` holds them normalised
(``"Dist_Img"`` and ``"dist img"`` are both ``"distimg"``), and so are the keys of each row's cells. Every
function takes ``layout``, the layout expected in words, and raises
:class:`~percept.eval.datasets.model.DatabaseError` naming the file, the line (or sheet row) and that layout.
The files themselves (existence, lookup of images, lines, MATLAB files) are :mod:`percept.eval.datasets.files`.

Example:
    >>> parse_number(" 5.51429", "'mos.txt' line 1", "TID2013's mos_with_names.txt")
    5.51429
"""

from __future__ import annotations

import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from percept.errors import install_hint
from percept.eval.datasets.files import read_lines, require_file
from percept.eval.datasets.model import COLUMNS, DatabaseError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def iqa_frame(rows: list[dict], source: Path, layout: str) -> pd.DataFrame:
    """The table of an :class:`~percept.eval.datasets.model.IQADatabase` from its rows, one per distorted image.

    Args:
        rows: dicts with the keys of :data:`~percept.eval.datasets.model.COLUMNS` (``dist``, ``ref``,
            ``ref_id``, ``score``, ``distortion``, ``level``).
        source: the file the rows were read from (for the message).
        layout: the layout expected, in words, for the message.

    Returns:
        A DataFrame with those columns in that order, ``score`` and ``level`` as float.

    Raises:
        DatabaseError: ``rows`` is empty (the file lists no images).

    Example:
        >>> row = {"dist": "d.png", "ref": "r.png", "ref_id": "r", "score": 4, "distortion": "jpeg", "level": 1}
        >>> iqa_frame([row], Path("scores.csv"), "a manifest").dtypes["score"]
        dtype('float64')
    """
    import pandas as pd

    if not rows:
        raise DatabaseError(f"'{source}' lists no images; expected {layout}")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["score"] = frame["score"].astype(float)
    frame["level"] = frame["level"].astype(float)
    return frame


def parse_number(text: object, where: str, layout: str, what: str = "score") -> float:
    """A table's cell as a finite float.

    Args:
        text: the cell (text, or a number a sheet or MATLAB file gave); white space around it is dropped.
        where: where the cell is, for the message (``"'dmos.csv' line 3"``).
        layout: the layout expected, in words, for the message.
        what: what the cell holds, for the message (``"score"``, ``"level"``).

    Returns:
        The number, finite.

    Raises:
        DatabaseError: the cell is no number, or NaN or infinite.

    Example:
        >>> parse_number("0.25", "'scores.csv' line 2", "a manifest")
        0.25
        >>> parse_number("n/a", "'scores.csv' line 3", "a manifest")
        Traceback (most recent call last):
        ...
        percept.eval.datasets.model.DatabaseError: 'scores.csv' line 3: expected a number as the score, got 'n/a'; ...
    """
    shown = repr(text) if isinstance(text, str) else repr(str(text))
    try:
        value = float(str(text).strip())
    except ValueError:
        raise DatabaseError(f"{where}: expected a number as the {what}, got {shown}; expected {layout}") from None
    if not math.isfinite(value):
        raise DatabaseError(f"{where}: the {what} {shown} is not a finite number; expected {layout}")
    return value


def parse_whole_number(text: object, where: str, layout: str, what: str) -> int:
    """A table's cell as a whole number (``"3"`` and ``3.0`` alike; ``"3.5"`` is an error).

    Args:
        text: the cell.
        where: where the cell is, for the message (``"'csiq.DMOS.csv' line 3"``).
        layout: the layout expected, in words, for the message.
        what: what the cell holds, for the message (``"dst_lev"``).

    Returns:
        The number as an int.

    Raises:
        DatabaseError: the cell is no finite number, or not a whole one.

    Example:
        >>> parse_whole_number("4.0", "'csiq.DMOS.csv' line 7", "CSIQ's score sheet", "dst_lev")
        4
    """
    value = parse_number(text, where, layout, what)
    if value != int(value):
        raise DatabaseError(f"{where}: expected a whole number as the {what}, got {text!r}; expected {layout}")
    return int(value)


@dataclass
class Table:
    """A score table read as text (:func:`read_text_table`, :func:`read_sheet`), its data rows with where each is.

    Attributes:
        source: the file read.
        columns: the column names, normalised (lower case, without ``_`` and spaces).
        rows: per data row, where it is (``"'dmos.csv' line 3"``, for messages) and its cells by normalised
            column name, as text (a blank cell is ``""``).

    Example:
        >>> table = Table(Path("dmos.csv"), ["distimg", "dmos"], [("'dmos.csv' line 2", {"distimg": "I01.png",
        ...                                                        "dmos": "4.57"})])
        >>> [parse_number(cells["dmos"], where, "KADID-10k") for where, cells in table.rows]
        [4.57]
    """

    source: Path
    columns: list[str]
    rows: list[tuple[str, dict[str, str]]]  # ("'file' line 3", {column: cell})


def _normalise(column: object) -> str:
    return re.sub(r"[\s_]", "", str(column)).lower()


def _split(line: str, sep: str | None) -> list[str]:
    import csv

    if sep is None:
        return line.split()
    return [cell.strip() for cell in next(csv.reader([line], delimiter=sep))]


def read_text_table(
    path: Path, layout: str, required: tuple[str, ...], default_header: tuple[str, ...] | None = None
) -> Table:
    """Read a comma, tab or white-space separated text table with a header row.

    The separator is the first line's: a tab if it has one, else a comma if it has one, else white space
    (CSV quoting is honoured for the first two). Column names are matched ignoring case, ``_`` and spaces.

    Args:
        path: the text file.
        layout: the layout expected, in words, for the message.
        required: the columns the header must name (as documented: ``("dist_img", "dmos")``).
        default_header: column names for a file without a header row: when the first row lacks ``required``
            but has as many cells as these, it is read as data under these names.

    Returns:
        A :class:`Table` of the data rows (not the header).

    Raises:
        DatabaseError: the file is missing, empty or blank, the header lacks a required column, a row has
            more or fewer cells than the header, or there is no data row.

    Example:
        >>> table = read_text_table(Path("/data/kadid10k/dmos.csv"), "KADID", ("dist_img", "dmos"))  # doctest: +SKIP
        >>> table.columns  # doctest: +SKIP
        ['distimg', 'refimg', 'dmos', 'var']
        >>> table.rows[0]  # doctest: +SKIP
        ("'/data/kadid10k/dmos.csv' line 2", {'distimg': 'I01_01_01.png', 'refimg': 'I01.png', ...})
    """
    lines = read_lines(path, layout)
    first = lines[0][1]
    sep = "\t" if "\t" in first else "," if "," in first else None
    shown = _split(first, sep)
    header = [_normalise(c) for c in shown]
    wanted = [_normalise(c) for c in required]
    if not set(wanted) <= set(header):
        if default_header is not None and len(shown) == len(default_header):
            shown = list(default_header)
            header = [_normalise(c) for c in default_header]
        else:
            missing = sorted(c for c in required if _normalise(c) not in header)
            raise DatabaseError(
                f"'{path}' line {lines[0][0]}: the header lacks columns {missing} (has {shown}); expected {layout}"
            )
    else:
        lines = lines[1:]
    rows = []
    for number, line in lines:
        cells = _split(line, sep)
        if len(cells) != len(header):
            raise DatabaseError(
                f"'{path}' line {number}: expected {len(header)} fields ({', '.join(shown)}), got {len(cells)}: "
                f"{line.strip()!r}; expected {layout}"
            )
        rows.append((f"'{path}' line {number}", dict(zip(header, cells, strict=True))))
    if not rows:
        raise DatabaseError(f"'{path}' has a header but no data rows; expected {layout}")
    return Table(path, header, rows)


def _cell_text(value: object) -> str:
    """A spreadsheet cell as text: empty for a blank, ``1600`` for the number 1600.0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_sheet(path: Path, sheet: str, layout: str, required: tuple[str, ...]) -> Table:
    """Read one sheet of an ``.xlsx`` workbook (pandas + openpyxl, the ``eval`` extra) into a :class:`Table`.

    The header row is the first row naming every ``required`` column, so it may sit below title rows and
    right of empty columns, as in CSIQ's ``csiq.DMOS.xlsx`` (header in row 4, columns D..I). Rows whose
    cells are all blank are skipped; a number cell with no fraction reads as a whole number (``1600``).

    Args:
        path: the workbook.
        sheet: the sheet's name.
        layout: the layout expected, in words, for the message.
        required: the columns the header row must name.

    Returns:
        A :class:`Table` of the rows below the header, each placed as ``"'file' sheet 'name' row 5"``.

    Raises:
        DatabaseError: openpyxl is not installed (the message says how to install it), the file is no
            workbook or lacks the sheet, no row names the required columns, or no data row follows it.

    Example:
        >>> path = Path("/data/csiq/csiq.DMOS.xlsx")
        >>> table = read_sheet(path, "all_by_image", "CSIQ", ("image", "dmos"))  # doctest: +SKIP
        >>> table.rows[0][0]  # doctest: +SKIP
        "'/data/csiq/csiq.DMOS.xlsx' sheet 'all_by_image' row 5"
    """
    import pandas as pd

    require_file(path, layout)
    try:
        import openpyxl  # noqa: F401 - pandas reads .xlsx through it; fail here with a clear message
    except ImportError:
        raise DatabaseError(
            f"reading '{path}' needs openpyxl, which is not installed: `{install_hint('eval')}` (or "
            f"`pip install openpyxl`), or export the sheet {sheet!r} to a CSV file next to it"
        ) from None
    try:
        grid = pd.read_excel(path, sheet_name=sheet, header=None, dtype=object)
    except ValueError as exc:
        if "not found" in str(exc).lower() or "worksheet" in str(exc).lower():
            raise DatabaseError(f"'{path}' has no sheet {sheet!r} ({exc}); expected {layout}") from None
        raise DatabaseError(f"cannot read '{path}': {exc}; expected {layout}") from None
    except (OSError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise DatabaseError(f"cannot read '{path}' as an Excel workbook: {exc}; expected {layout}") from None
    cells = [[_cell_text(v) for v in row] for row in grid.itertuples(index=False)]
    wanted = {_normalise(c) for c in required}
    top = next((i for i, row in enumerate(cells) if wanted <= {_normalise(c) for c in row}), None)
    if top is None:
        raise DatabaseError(
            f"'{path}' sheet {sheet!r} has no header row with the columns {sorted(required)}; expected {layout}"
        )
    named = [(i, _normalise(c)) for i, c in enumerate(cells[top]) if c]
    rows = []
    for offset, row in enumerate(cells[top + 1 :], top + 2):
        values = {name: row[i] for i, name in named}
        if any(values.values()):
            rows.append((f"'{path}' sheet {sheet!r} row {offset}", values))
    if not rows:
        raise DatabaseError(f"'{path}' sheet {sheet!r} has a header but no data rows; expected {layout}")
    return Table(path, [n for _, n in named], rows)


def require_cells(where: str, values: dict[str, str], columns: tuple[str, ...], layout: str) -> None:
    """Check that a row of a :class:`Table` has a non-blank cell in each of ``columns``.

    Args:
        where: where the row is, for the message (one of :attr:`Table.rows`' places).
        values: the row's cells by normalised column name.
        columns: the columns that must not be blank (as documented: ``("dist_img", "dmos")``).
        layout: the layout expected, in words, for the message.

    Raises:
        DatabaseError: naming the blank columns.

    Example:
        >>> require_cells("'dmos.csv' line 2", {"distimg": "I01.png", "dmos": ""}, ("dist_img", "dmos"), "KADID")
        Traceback (most recent call last):
        ...
        percept.eval.datasets.model.DatabaseError: 'dmos.csv' line 2: empty dmos; expected KADID
    """
    empty = [c for c in columns if not values.get(_normalise(c))]
    if empty:
        raise DatabaseError(f"{where}: empty {', '.join(empty)}; expected {layout}")


def has_openpyxl() -> bool:
    """Whether openpyxl, which :func:`read_sheet` needs, is installed (without importing it).

    Returns:
        True where ``import openpyxl`` would find the package.

    Example:
        >>> isinstance(has_openpyxl(), bool)
        True
    """
    import importlib.util

    return importlib.util.find_spec("openpyxl") is not None
