"""The separator of a CSV file, read off its header, and the one a user names."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from fidele.errors import InvalidInput
from fidele.kit.csvfiles import separator_option, sniff_separator


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_the_separator_that_splits_the_header_into_its_columns(tmp_path: Path, sep: str) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(sep.join(["customer_id", "date", "amount"]) + "\n" + sep.join("a1b") + "\n")
    assert sniff_separator(path) == sep
    assert sniff_separator(path, ["customer_id", "date", "amount"]) == sep


def test_the_expected_columns_decide_over_the_count(tmp_path: Path) -> None:
    """Column names holding another candidate separator: the one under which the expected
    names appear wins, even when another splits the header into more pieces."""
    path = tmp_path / "orders.csv"
    path.write_text("customer_id;date;amount,net;note,a,b\n")
    assert sniff_separator(path) == ","  # 4 pieces against 4: the comma comes first
    assert sniff_separator(path, ["customer_id", "date", "amount,net"]) == ";"


def test_a_quoted_name_holding_the_separator_stays_one_column(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text('"customer_id";"date";"amount; net"\n')
    assert sniff_separator(path, ["customer_id", "date", "amount; net"]) == ";"


def test_a_spreadsheet_s_bom_and_crlf_and_a_gzipped_file(tmp_path: Path) -> None:
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbfcustomer_id;date;amount\r\na;2025-01-02;1,5\r\n")
    assert sniff_separator(excel, ["customer_id"]) == ";"
    packed = tmp_path / "orders.csv.gz"
    packed.write_bytes(gzip.compress(b"customer_id\tdate\tamount\na\t2025-01-02\t1\n"))
    assert sniff_separator(packed, ["customer_id", "date"]) == "\t"


@pytest.mark.parametrize("content", [b"", b"customer_id\n", b"\n\n"])
def test_a_header_that_tells_nothing_means_a_comma(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(content)
    assert sniff_separator(path, ["customer_id"]) == ","
    assert sniff_separator(tmp_path / "missing.csv") == ","


@pytest.mark.parametrize(
    ("given", "want"),
    [(None, None), (";", ";"), ("tab", "\t"), ("TAB", "\t"), ("\\t", "\t"), ("\t", "\t")]
    + [("semicolon", ";"), ("comma", ","), ("pipe", "|"), ("|", "|")],
)
def test_a_named_separator(given: str | None, want: str | None) -> None:
    assert separator_option(given) == want


@pytest.mark.parametrize("given", ["", "ab", '"', "\n", "\r", "é", ";;"])
def test_a_separator_that_cannot_be_one_is_refused_naming_the_field(given: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        separator_option(given)
    assert caught.value.extra["fields"][0]["field"] == "separator"
