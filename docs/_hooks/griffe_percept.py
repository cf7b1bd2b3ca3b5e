"""Griffe extension: read percept's docstrings as the API pages should show them.

percept's docstrings head their doctests ``Example:`` (tests/test_doctests.py runs them). Griffe's
Google parser knows only ``Examples:`` as an examples section and reads ``Example:`` as an admonition,
whose ``>>>`` lines Markdown then renders as nested blockquotes. This extension renames the heading
while griffe loads each object, so the examples render as code blocks (with ``# doctest:`` flags
trimmed), writes Sphinx roles (``:func:`~percept.x```) as code, and splits grouped parameters
(``weights, input_range: as for ...``) into one entry per name, so each row of a parameters table
shows that parameter's own default. The source is untouched.

Listed under ``extensions`` of the mkdocstrings handler in mkdocs.yml.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([\w.]+)(\(\))?`")  # Sphinx roles


def _role(match: re.Match) -> str:
    """``:func:`~a.b.c``` as ```c```, ``:class:`a.B``` as ```a.B```: code, as the rest of the page writes names."""
    name = match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2)
    return f"`{name}{match.group(3) or ''}`"


_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Attributes|Keyword Args):\s*$")
_GROUPED = re.compile(r"^(\s+)((?:\*{0,2}\w+)(?:,\s*\*{0,2}\w+)+):\s*(.*)$")


def _split_grouped(lines: list[str]) -> list[str]:
    """In parameter sections, ``a, b: text`` (and its continuation lines) becomes ``a: text`` and ``b: text``."""
    out: list[str] = []
    section_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = _SECTION.match(line)
        if heading:
            section_indent = len(heading.group(1))
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        if section_indent is not None and line.strip() and indent <= section_indent:
            section_indent = None  # the section ended
        grouped = _GROUPED.match(line) if section_indent is not None else None
        if grouped is None:
            out.append(line)
            i += 1
            continue
        item_indent = grouped.group(1)
        rest = []
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(item_indent)):
            if not lines[i].strip():
                break
            rest.append(lines[i])
            i += 1
        for name in (n.strip() for n in grouped.group(2).split(",")):
            out.append(f"{item_indent}{name}: {grouped.group(3)}")
            out.extend(rest)
    return out


def rewrite(text: str) -> str:
    """The docstring as griffe should parse it (see the module docstring).

    Example:
        >>> rewrite("Do it.\\n\\nArgs:\\n    x, y: images.\\n\\nExample:\\n    >>> 1\\n    1")
        'Do it.\\n\\nArgs:\\n    x: images.\\n    y: images.\\n\\nExamples:\\n    >>> 1\\n    1'
        >>> rewrite("See :func:`~percept.signature.signature` and :class:`percept.Pipeline`.")
        'See `signature` and `percept.Pipeline`.'
    """
    text = _ROLE.sub(_role, _EXAMPLE.sub(r"\1Examples:", text))
    return "\n".join(_split_grouped(text.split("\n")))


class PerceptDocstrings(Extension):
    """Rewrites each object's docstring as it is loaded (:func:`rewrite`)."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is not None and docstring.value:
            docstring.value = rewrite(docstring.value)
