"""The separator of a CSV file, read off its header: shops' and spreadsheets' exports use a
comma, or a semicolon where the comma is the decimal mark (Excel in French, German, Italian...
locales, PrestaShop's exports), or a tab.

One rule for every reader of such files (the analytics' orders files, the bulk imports)."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from pathlib import Path

from fidele.errors import InvalidInput

__all__ = ["SEPARATORS", "separator_option", "sniff_separator"]

# In the order they are preferred when the header tells nothing
SEPARATORS = (",", ";", "\t", "|")
_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_HEAD_BYTES = 1 << 16


def separator_option(value: str | None) -> str | None:
    """A separator given by the user (one character, or ``tab``/``\\t``, ``comma``,
    ``semicolon``, ``pipe``); None stays None (detected from the file)."""
    if value is None:
        return None
    value = _NAMES.get(value.lower(), value)
    if len(value) != 1 or value in '\r\n"' or len(value.encode()) != 1:
        raise InvalidInput(
            f"the separator must be one ASCII character other than a quote or a line end (or "
            f"tab), not {value!r}",
            field="separator",
        )
    return value


def sniff_separator(path: Path, expected: Sequence[str] = ()) -> str:
    """The separator under which the header holds the most of the ``expected`` column names,
    else the one that splits it into the most columns; a comma when the header tells nothing
    (one column, an empty or unreadable file: the reader then reports what is missing)."""
    header = _header(path)
    if header is None:
        return ","
    best, score = ",", (-1, -1)
    for sep in SEPARATORS:
        names = next(csv.reader([header], delimiter=sep), [])
        names = [name.strip() for name in names]
        found = (sum(name in names for name in expected), len(names))
        if found > score:  # strictly better: earlier separators win ties
            best, score = sep, found
    return best


def _header(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
        if head[:2] == b"\x1f\x8b":  # a gzipped export
            with gzip.open(path, "rb") as fh:
                head = fh.read(_HEAD_BYTES)
    except (OSError, EOFError):
        return None
    text = io.TextIOWrapper(io.BytesIO(head), encoding="utf-8-sig", errors="replace", newline="")
    line = text.readline().rstrip("\r\n")
    return line or None
