"""Stream a CSV or Parquet file as batches of row groups, without loading it whole."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from fidele.errors import InvalidInput
from fidele.kit.csvfiles import sniff_separator

Row = dict[str, Any]


@dataclass
class Group:
    """The rows of one record (an order spans one row per line in some layouts)."""

    first_row: int  # 1-based data row number in the file (header excluded)
    rows: list[Row] = field(default_factory=list)


def scan(path: Path) -> pl.LazyFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pl.scan_parquet(path)
    if suffix in (".csv", ".txt"):
        # every column as text: the layout mappers parse, so "007" stays "007"; the separator
        # is the one that splits the header into the most columns (a comma, or the semicolon
        # of spreadsheets where the comma is the decimal mark, or a tab)
        sep = sniff_separator(path)
        return pl.scan_csv(path, infer_schema=False, missing_columns="insert", separator=sep)
    raise InvalidInput(f"{path.name}: use a .csv or .parquet file", field="file")


def columns(path: Path) -> list[str]:
    return list(scan(path).collect_schema().names())


def batches(path: Path, key: str | None, size: int) -> Iterator[list[Group]]:
    """Batches of about ``size`` groups; rows with the same ``key`` value that follow each other
    form one group (``key`` None: one row per group). A group is never split between batches."""
    pending: list[Group] = []
    row_no = 0
    for frame in scan(path).collect_batches(chunk_size=max(size, 1000)):
        for row in frame.iter_rows(named=True):
            row_no += 1
            if key is not None and pending and _same(pending[-1].rows[0], row, key):
                pending[-1].rows.append(row)
                continue
            if len(pending) > size:  # the last group may still grow: keep it for later
                yield pending[:-1]
                pending = pending[-1:]
            pending.append(Group(row_no, [row]))
    if pending:
        yield pending


def _same(first: Row, row: Row, key: str) -> bool:
    value = row.get(key)
    return value is None or value == "" or value == first.get(key)
