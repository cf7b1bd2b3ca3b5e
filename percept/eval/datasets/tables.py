"""Reading score tables (text, CSV, XLSX, MATLAB) and image folders, with errors that name the file, the
line and the layout expected; shared by every database format."""

from __future__ import annotations

import contextlib
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from percept.errors import install_hint
from percept.eval.datasets.model import COLUMNS, DatabaseError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def _need(path: Path, layout: str) -> Path:
    if not path.exists():
        hint = ""
        with contextlib.suppress(OSError):
            # A common slip: the folder above the database (``/data`` for ``/data/tid2013``).
            found = sorted(path.parent.glob(f"*/{path.name}"))[:1] if path.parent.is_dir() else []
            if found:
                hint = f" (there is '{found[0]}': pass '{found[0].parent}' instead)"
        raise DatabaseError(f"'{path}' does not exist{hint}; expected {layout}")
    return path


def _need_file(path: Path, layout: str) -> Path:
    _need(path, layout)
    if not path.is_file():
        raise DatabaseError(f"'{path}' is a folder, not a file; expected {layout}")
    if path.stat().st_size == 0:
        raise DatabaseError(f"'{path}' is empty (0 bytes); expected {layout}")
    return path


def _index(folder: Path, layout: str) -> dict[str, Path]:
    """Lower-cased file name -> path, for case-insensitive lookups in one folder."""
    _need(folder, layout)
    if not folder.is_dir():
        raise DatabaseError(f"'{folder}' is not a folder; expected {layout}")
    return {p.name.lower(): p for p in folder.iterdir() if p.is_file()}


def _find(index: dict[str, Path], name: str, folder: Path, source: Path, layout: str) -> Path:
    try:
        return index[name.lower()]
    except KeyError:
        raise DatabaseError(
            f"'{folder / name}' (named in '{source}') does not exist (file names are matched ignoring case); "
            f"expected {layout}"
        ) from None


def _frame(rows: list[dict], source: Path, layout: str) -> pd.DataFrame:
    import pandas as pd

    if not rows:
        raise DatabaseError(f"'{source}' lists no images; expected {layout}")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["score"] = frame["score"].astype(float)
    frame["level"] = frame["level"].astype(float)
    return frame


def _float(text: object, where: str, layout: str, what: str = "score") -> float:
    """``text`` as a finite float; ``where`` is ``"'file' line 3"`` for the message."""
    shown = repr(text) if isinstance(text, str) else repr(str(text))
    try:
        value = float(str(text).strip())
    except ValueError:
        raise DatabaseError(f"{where}: expected a number as the {what}, got {shown}; expected {layout}") from None
    if not math.isfinite(value):
        raise DatabaseError(f"{where}: the {what} {shown} is not a finite number; expected {layout}")
    return value


def _int(text: object, where: str, layout: str, what: str) -> int:
    value = _float(text, where, layout, what)
    if value != int(value):
        raise DatabaseError(f"{where}: expected a whole number as the {what}, got {text!r}; expected {layout}")
    return int(value)


def _read_lines(path: Path, layout: str) -> list[tuple[int, str]]:
    """Non-blank lines of a text file with their numbers; an empty or unreadable file is an error."""
    _need_file(path, layout)
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


@dataclass
class _Table:
    """A score table read as text: normalised column names and, per data row, where it is and its cells."""

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


def _read_text_table(
    path: Path, layout: str, required: tuple[str, ...], default_header: tuple[str, ...] | None = None
) -> _Table:
    """Read a comma, tab or whitespace separated table with a header row (column names matched
    ignoring case, ``_`` and spaces). Every row must have as many cells as the header.

    ``default_header``: column names for a file without a header row (its first row then holds data).
    """
    lines = _read_lines(path, layout)
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
    return _Table(path, header, rows)


def _cell_text(value: object) -> str:
    """A spreadsheet cell as text: empty for a blank, ``1600`` for the number 1600.0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_sheet(path: Path, sheet: str, layout: str, required: tuple[str, ...]) -> _Table:
    """Read one sheet of a workbook (pandas + openpyxl) whose header row may sit below title rows
    and right of empty columns, as in CSIQ's ``csiq.DMOS.xlsx`` (header in row 4, columns D..I)."""
    import pandas as pd

    _need_file(path, layout)
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
    return _Table(path, [n for _, n in named], rows)


def _required(where: str, values: dict[str, str], columns: tuple[str, ...], layout: str) -> None:
    empty = [c for c in columns if not values.get(_normalise(c))]
    if empty:
        raise DatabaseError(f"{where}: empty {', '.join(empty)}; expected {layout}")


def _has_openpyxl() -> bool:
    import importlib.util

    return importlib.util.find_spec("openpyxl") is not None


def _mat_vector(mat: dict, keys: tuple[str, ...], source: Path, layout: str):
    import numpy as np

    for key in keys:
        if key in mat:
            return np.asarray(mat[key]).reshape(-1)
    found = sorted(k for k in mat if not k.startswith("__"))
    raise DatabaseError(f"'{source}' holds no variable {' or '.join(keys)} (it holds {found}); expected {layout}")


def _loadmat(path: Path, layout: str) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(path)
    except (scipy.io.matlab.MatReadError, ValueError, OSError, TypeError, NotImplementedError) as exc:
        raise DatabaseError(f"cannot read '{path}' as a MATLAB file: {exc}; expected {layout}") from None
