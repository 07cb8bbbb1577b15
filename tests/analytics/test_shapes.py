"""The same shop exported in the shapes shops use (row order, id type, date or date-time,
CSV or Parquet) gives the same results, to the bit: the installed ``fidele analytics clv``
(a subprocess, as a user runs it) on every shape, and the summary's grouping paths (packed
integer ids, hashed string ids untangled when hashes collide, the general group-by) against
each other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fidele.analytics import _runs
from fidele.analytics.files import read_transactions
from fidele.analytics.generate import simulate_bgnbd_gg
from fidele.analytics.summary import summary
from fidele.errors import InvalidInput

FIDELE = str(Path(sys.executable).parent / "fidele")
END = date(2025, 12, 30)


@pytest.fixture(scope="module")
def shop() -> pl.DataFrame:
    """1,500 customers over two years, sorted by customer then time (the generator's order)."""
    return simulate_bgnbd_gg(1500, start=date(2024, 1, 1), seed=5)


def _shape(shop: pl.DataFrame, order: str, ids: str, dates: str) -> pl.DataFrame:
    frame = {
        "customer": shop,
        "time": shop.sort("date"),
        "shuffled": shop.sample(fraction=1.0, shuffle=True, seed=3),
    }[order]
    if ids == "integer":
        frame = frame.with_columns(pl.col("customer_id").str.slice(1).cast(pl.Int64))
    if dates == "date":
        frame = frame.with_columns(pl.col("date").dt.date())
    return frame


SHAPES = [
    (order, ids, dates, fmt)
    for order in ("customer", "time", "shuffled")
    for ids in ("string", "integer")
    for dates in ("datetime", "date")
    for fmt in ("parquet", "csv")
]


def _clv(path: Path, out: Path) -> tuple[dict, pl.DataFrame]:
    result = subprocess.run(
        [FIDELE, "analytics", "clv", "--orders", str(path), "--observation-end", str(END)]
        + ["--json", "--format", "parquet", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    scores = pl.read_parquet(out)
    if scores.schema["customer_id"].is_integer():  # "c0000042" and 42 name the same customer
        scores = scores.with_columns(
            pl.format("c{}", pl.col("customer_id").cast(pl.Utf8).str.zfill(7)).alias("customer_id")
        )
    return {m: report[m] for m in ("bgnbd", "gamma_gamma")}, scores


def test_clv_is_identical_on_every_shape_of_the_same_shop(shop, tmp_path):
    want_report, want_scores = None, None
    for order, ids, dates, fmt in SHAPES:
        path = tmp_path / f"{order}_{ids}_{dates}.{fmt}"
        frame = _shape(shop, order, ids, dates)
        frame.write_parquet(path) if fmt == "parquet" else frame.write_csv(path)
        report, scores = _clv(path, tmp_path / "scores.parquet")
        if want_report is None:
            want_report, want_scores = report, scores
            assert scores.height == shop["customer_id"].n_unique()
            continue
        for model in want_report:  # timings aside, the fitted models to the bit
            assert report[model] == want_report[model], (order, ids, dates, fmt)
        assert scores.equals(want_scores), (order, ids, dates, fmt)


def _summary(frame: pl.DataFrame) -> pl.DataFrame:
    return summary(frame, observation_end=END, time_unit="weeks")


@pytest.mark.parametrize("hash_bits", [64, 3, 1])
@pytest.mark.parametrize("ids", ["string", "13-digit"])
def test_hashed_ids_in_any_order_and_colliding_hashes(shop, monkeypatch, hash_bits, ids):
    """String ids, and integer ids too widely spread to be packed as they are (13-digit shop
    ids), go by their hash. With 3 or 1 bits of it most customers share a hash with others:
    their rows are untangled by id, and the result is still the sorted file's."""
    if ids == "13-digit":
        number = pl.col("customer_id").str.slice(1).cast(pl.Int64)
        shop = shop.with_columns((6_789_012_345_678 + number * 1_000_003).alias("customer_id"))
    want = _summary(shop)
    monkeypatch.setattr(_runs, "_HASH_BITS", hash_bits)
    called = []
    general = _runs._grouped_rows
    monkeypatch.setattr(_runs, "_grouped_rows", lambda *a: called.append(1) or general(*a))
    for order in ("time", "shuffled"):
        assert _summary(_shape(shop, order, "as is", "datetime")).equals(want)
    assert not called  # the packed path did the work


def test_float_amounts_are_summed_in_the_files_order_as_before(shop, monkeypatch):
    """Within a customer and day the rows keep the file's order, so float sums are those of
    the general group-by (which keeps it too), to the bit, whatever the ids."""
    rng = np.random.default_rng(9)
    frame = shop.sample(fraction=1.0, shuffle=True, seed=4).with_columns(
        pl.Series("amount", rng.gamma(2.0, 17.3, shop.height))
    )
    shapes = [frame, frame.with_columns(pl.col("customer_id").str.slice(1).cast(pl.Int64))]
    got = [_summary(shape) for shape in shapes]
    monkeypatch.setattr(_runs, "_pack", lambda *a: None)  # the general group-by
    for shape, result in zip(shapes, got, strict=True):
        assert result.equals(_summary(shape))


@pytest.mark.parametrize(
    "ids",
    [
        pl.Series("customer_id", [-(2**62), 5, 2**62, 5, -(2**62), 7], dtype=pl.Int64),  # wide
        pl.Series("customer_id", [3, 1, 2, 1, 3, 2], dtype=pl.UInt8),
        pl.Series("customer_id", [2**64 - 1, 0, 2**64 - 1, 7, 0, 7], dtype=pl.UInt64),
        # packed exactly, and the ids read back from the keys: negative, at the top of
        # UInt64, at both ends of Int32
        pl.Series("customer_id", [-5, -7, -6, -5, -7, -6], dtype=pl.Int64),
        pl.Series("customer_id", [2**64 - 1, 2**64 - 3, 2**64 - 2] * 2, dtype=pl.UInt64),
        pl.Series("customer_id", [-(2**31), 2**31 - 1, 0] * 2, dtype=pl.Int32),
        pl.Series("customer_id", ["b", None, "a", None, "b", "a"]),  # a null customer
    ],
)
def test_unusual_ids_give_the_general_group_bys_result(ids, monkeypatch):
    frame = pl.DataFrame(
        {
            "customer_id": ids,
            "date": [date(2025, 1, d) for d in (5, 1, 3, 2, 4, 6)],
            "amount": [10, 20, 30, 40, 50, 60],
        }
    )
    got = _summary(frame)
    assert got.schema["customer_id"] == ids.dtype
    monkeypatch.setattr(_runs, "_pack", lambda *a: None)
    assert got.equals(_summary(frame))


@pytest.mark.parametrize(
    "values",
    [
        ["2025-01-02T23:59:59.123456+0000", None, "2025-01-01T00:00:00.000001+0000"],
        ["2025-01-02T23:59:59Z", "2025-01-01T00:00:00Z"],
        ["2025-01-02T23:59:59+00:00", "2025-01-01T00:00:00+00:00"],
        ["2025-01-02 23:59:59", "2025-01-01 00:00:00"],
        [None, "2025-01-02", "2024-02-29"],
        ["2025-01-02T23:30:00+0100", "2025-01-01T00:30:00+0100"],  # offsets: the full parse
        ["2025-01-02T23:30:00-0500", "2025-01-01T20:30:00+0500"],
        ["2025-01-02T10:00:00", "2025-01-01T23:00:00-0800"],  # the first value has none
        ["2025-01-02T10:00:00.1234", "2025-01-01T23:00:00-0800"],  # ... of the same length
        ["2025-01-02T23:59:59.5+0000", "2025-01-01T00:00:00.25+0000"],  # ragged fractions
    ],
)
def test_text_dates_give_the_utc_day_of_the_full_parse(values, tmp_path):
    path = tmp_path / "orders.csv"
    frame = pl.DataFrame({"customer_id": ["a"] * len(values), "date": values})
    frame.with_columns(amount=pl.lit(1)).write_csv(path)
    names = dict(customer_col="customer_id", date_col="date", amount_col=None)
    try:
        want = frame.select(pl.col("date").str.to_datetime(time_zone="UTC").dt.date())
    except pl.exceptions.PolarsError:  # polars refuses the file: so do we, naming the column
        with pytest.raises(InvalidInput, match="'date'"):
            read_transactions(path, **names)
        return
    got = read_transactions(path, **names).select(pl.col("date").dt.date()).collect()
    assert got.equals(want)


def test_an_invalid_date_is_refused_naming_the_column(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("customer_id,date,amount\na,2025-01-01,1\nb,2025-02-30,2\n")
    result = subprocess.run(
        [FIDELE, "analytics", "summary", "--orders", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "'date'" in result.stderr


@pytest.mark.parametrize("rows", [1, 3, 5])
def test_clv_on_a_new_shop_s_file_falls_back_labelled_instead_of_failing(
    tmp_path: Path, rows: int
) -> None:
    """Fewer than two repeat customers: the models cannot be fitted. The installed command
    says so and gives every customer the cadence averages (exit 0), as JSON, as a file and
    as the terminal table; it used to end in a traceback (Gamma-Gamma's ValueError)."""
    src = tmp_path / "orders.csv"
    lines = ["customer_id,date,amount", "c1,2024-01-01,1000", "c1,2024-02-01,2000"]
    lines += [f"n{i},2024-01-{10 + i:02d},500" for i in range(rows)]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "clv.csv"
    base = [FIDELE, "analytics", "clv", "--orders", str(src), "--observation-end", "2024-03-01"]
    done = subprocess.run(
        [*base, "--json", "--format", "csv", "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["method"] == "cadence_average" and report["models"] is None
    assert "not fitted" in report["warnings"][0] and report["customers"] == rows + 1
    scores = pl.read_csv(out)
    assert scores.height == rows + 1 and set(scores["clv_method"]) == {"cadence_average"}
    assert scores["p_alive"].null_count() == rows + 1
    assert scores["clv"].null_count() == 0 and (scores["clv"] > 0).all()
    wide = {**os.environ, "COLUMNS": "200"}
    table = subprocess.run(base, capture_output=True, text=True, env=wide)
    assert table.returncode == 0, table.stderr
    assert "cadence_average" in table.stdout + table.stderr
    assert "Traceback" not in table.stderr


def test_plain_iso_dates_are_read_by_the_csv_reader(tmp_path, monkeypatch):
    """A column of ISO dates without a time is parsed by the CSV reader (the text scan is not
    run); a value the reader refuses (here an invalid day) still sends the file to the text
    rules, which refuse it naming the column."""
    import fidele.analytics.files as files

    path = tmp_path / "orders.csv"
    path.write_text("customer_id,date,amount\na,2025-01-02,1\nb,,2\nc,2024-02-29,3\n")
    scanned = []
    text_scan = files._utc_days_scanned
    monkeypatch.setattr(files, "_utc_days_scanned", lambda *a: scanned.append(1) or text_scan(*a))
    names = dict(customer_col="customer_id", date_col="date", amount_col="amount")
    got = read_transactions(path, **names).collect()
    assert not scanned
    assert got.schema["date"] == pl.Datetime("us", "UTC")
    assert got.get_column("date").dt.date().to_list() == [date(2025, 1, 2), None, date(2024, 2, 29)]
    path.write_text("customer_id,date,amount\na,2025-01-02,1\nb,2025-02-30,2\n")
    with pytest.raises(InvalidInput, match="'date'"):
        read_transactions(path, **names)
    assert scanned


def test_the_sample_of_dates_comes_from_the_csv_s_first_block(tmp_path):
    """The first dates, which choose a reading, are parsed from the file's first 256 KiB
    (the scan's head read far more of the file): the same values as the scan's first rows,
    the scan not used."""
    import fidele.analytics.files as files

    path = tmp_path / "orders.csv"
    lines = [f"c{i % 37},2025-01-{1 + i % 28:02d}T10:{i % 60:02d}:00Z,{i}" for i in range(20000)]
    path.write_text("customer_id,date,amount\n" + "\n".join(lines) + "\n")
    assert path.stat().st_size > files._HEAD_BYTES
    sample = files._first_values(path, None, "date", {})  # type: ignore[arg-type]
    assert sample.equals(pl.scan_csv(path).select("date").head(1000).collect()["date"])


def test_a_compressed_csv_is_read_as_the_plain_one(tmp_path):
    """A gzipped export larger than the first block: the same frame as the plain file."""
    import gzip
    import random

    rng = random.Random(4)
    lines = [
        f"c{rng.getrandbits(40)},2025-01-{1 + i % 28:02d}T10:{i % 60:02d}:00Z,{rng.getrandbits(20)}"
        for i in range(200_000)
    ]
    text = "customer_id,date,amount\n" + "\n".join(lines) + "\n"
    plain, packed = tmp_path / "orders.csv", tmp_path / "orders.csv.gz"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    assert packed.stat().st_size > 1 << 18
    names = dict(customer_col="customer_id", date_col="date", amount_col="amount")
    got = read_transactions(packed, **names).collect()
    assert got.equals(read_transactions(plain, **names).collect()) and got.height == 200_000


@pytest.mark.parametrize("cut", ["in a quoted field", "in the header"])
def test_a_first_block_that_cuts_a_record_falls_back_to_the_scan(tmp_path, monkeypatch, cut):
    """A block that ends inside a quoted field spanning lines, or holds no whole line (the
    header is longer), gives the scan's first rows instead, and the file is read as before."""
    import fidele.analytics.files as files

    rows = [
        f'c{i % 37},"note, {i}\nnext ""line""",2025-01-{1 + i % 28:02d}T10:00:00Z,{i}'
        for i in range(3000)
    ]
    path = tmp_path / "orders.csv"
    path.write_text(
        "customer_id,notes_to_be_ignored_by_the_reader,date,amount\n" + "\n".join(rows) + "\n"
    )
    block = path.read_bytes().index(b"note, 5\n") + 8 if cut == "in a quoted field" else 40
    monkeypatch.setattr(files, "_HEAD_BYTES", block)
    lf = pl.scan_csv(path)
    head = lf.select("date").head(1000).collect().get_column("date")
    assert files._first_values(path, lf, "date", {}).equals(head)
    names = dict(customer_col="customer_id", date_col="date", amount_col="amount")
    got = read_transactions(path, **names).collect()
    want = pl.read_csv(path).select(
        "customer_id", pl.col("date").str.to_datetime(time_zone="UTC").dt.date(), "amount"
    )
    assert got.with_columns(pl.col("date").dt.date()).equals(want)


def test_the_console_script_ends_at_once_with_all_its_output_and_status(tmp_path):
    """The analytics commands end without the interpreter's teardown (``end_at_once``): the
    output piped to the caller is whole (here ~10 times a pipe's buffer, as JSON), the status
    is the command's (0, then 2 for a refused file), and the messages on stderr arrive."""
    orders = simulate_bgnbd_gg(3000, start=date(2024, 1, 1), seed=5)
    path = tmp_path / "orders.csv"
    orders.write_csv(path)
    base = [FIDELE, "analytics", "summary", "--orders", str(path), "--format", "json"]
    done = subprocess.run(base, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) > 10 * 65536
    rows = json.loads(done.stdout)
    assert {row["customer_id"] for row in rows} == set(orders["customer_id"].unique())
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,date,amount\na,2025-01-01,1\nb,2025-13-01,2\n")
    refused = subprocess.run(
        [FIDELE, "analytics", "summary", "--orders", str(bad)], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "'date'" in refused.stderr
    assert "Traceback" not in refused.stderr


def _summary_json(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FIDELE, "analytics", "summary", "--format", "json", *args], capture_output=True, text=True
    )


def _spreadsheet_exports(shop: pl.DataFrame, tmp_path: Path) -> dict[str, Path]:
    """The shop with amounts in major units, as a comma CSV (``17.29``), as a spreadsheet in
    a locale whose decimal mark is the comma saves it (``;`` between fields, ``17,29``, a BOM,
    CRLF line ends), and tab-separated."""
    cents = pl.col("amount") % 100
    major = pl.format("{}.{}", pl.col("amount") // 100, cents.cast(pl.Utf8).str.zfill(2))
    frame = _shape(shop, "time", "string", "datetime").with_columns(major.alias("amount"))
    paths = {name: tmp_path / f"{name}.csv" for name in ("comma", "semicolon", "tab")}
    frame.write_csv(paths["comma"])
    frame.with_columns(pl.col("amount").str.replace(".", ",", literal=True)).write_csv(
        paths["semicolon"], separator=";", include_bom=True, line_terminator="\r\n"
    )
    frame.write_csv(paths["tab"], separator="\t")
    return paths


def test_semicolon_and_tab_exports_read_as_the_comma_one(shop, tmp_path):
    """The separator is read off the header and, with a semicolon, the decimal commas of the
    amounts are numbers: the installed command fits and scores the same customers to the bit
    whichever way the file was saved."""
    paths = _spreadsheet_exports(shop, tmp_path)
    assert paths["semicolon"].read_bytes().startswith(b"\xef\xbb\xbfcustomer_id;date;amount\r\n")
    assert b";17," in paths["semicolon"].read_bytes() or b",5" in paths["semicolon"].read_bytes()
    want_report, want_scores = _clv(paths["comma"], tmp_path / "comma.parquet")
    assert want_scores.height == shop["customer_id"].n_unique()
    assert want_report["gamma_gamma"]["mean_spend"] < 1000  # major units: ~17, not ~1700
    for name in ("semicolon", "tab"):
        report, scores = _clv(paths[name], tmp_path / f"{name}.parquet")
        assert report == want_report, name
        assert scores.equals(want_scores), name


def test_the_separator_given_is_the_one_used(shop, tmp_path):
    """``--separator`` names the separator (``tab`` for a tab); a wrong one finds no column
    and the command says which columns it did find, with status 2."""
    paths = _spreadsheet_exports(shop, tmp_path)
    want = _summary_json("--orders", str(paths["comma"]))
    for name, sep in (("semicolon", ";"), ("tab", "tab"), ("tab", "\t")):
        done = _summary_json("--orders", str(paths[name]), "--separator", sep)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == json.loads(want.stdout), name
    refused = _summary_json("--orders", str(paths["semicolon"]), "--separator", ",")
    assert refused.returncode == 2
    assert "'customer_id' is not in semicolon.csv" in refused.stderr
    assert "'customer_id;date;amount'" in refused.stderr  # the one column it found
    for bad in ("ab", '"', ""):
        done = _summary_json("--orders", str(paths["comma"]), "--separator", bad)
        assert done.returncode == 2 and "separator" in done.stderr, bad
        assert "Traceback" not in done.stderr


def test_a_decimal_point_keeps_a_semicolon_file_s_amounts_as_they_are(tmp_path):
    """Decimal commas are read only where the amounts have them and no decimal point: a
    semicolon file with ``17.29`` (or integer cents) keeps its amounts."""
    dotted = tmp_path / "dotted.csv"
    dotted.write_text("customer_id;date;amount\na;2025-01-02;17.29\na;2025-02-03;1.5\n")
    cents = tmp_path / "cents.csv"
    cents.write_text("customer_id;date;amount\na;2025-01-02;1729\na;2025-02-03;150\n")
    assert _amounts(dotted) == [17.29, 1.5]
    assert _amounts(cents) == [1729, 150]
    mixed = tmp_path / "mixed.csv"  # a decimal comma among whole amounts
    mixed.write_text("customer_id;date;amount\n" + "a;2025-01-02;3\n" * 3 + "b;2025-01-03;2,5\n")
    assert _amounts(mixed) == [3.0, 3.0, 3.0, 2.5]


def _amounts(path: Path) -> list[object]:
    names = dict(customer_col="customer_id", date_col="date", amount_col="amount")
    return read_transactions(path, **names).collect().get_column("amount").to_list()


@pytest.mark.parametrize(
    ("sep", "late", "want"),
    [
        (",", "2.5", 2.5),  # whole amounts, then a decimal one
        (";", "2,5", 2.5),  # the same with a decimal comma, past the rows its detection reads
        (";", "2.5", 2.5),
    ],
)
def test_a_column_s_type_guessed_from_its_first_rows_widens_for_a_later_value(
    tmp_path, sep, late, want
):
    """The reader guesses a column's type from its first rows: a decimal amount after 1,500
    whole ones, or a text id after numeric ones, widens the column (the file is read again)
    instead of failing."""
    path = tmp_path / "late.csv"
    rows = [f"{i % 7}{sep}2025-01-02{sep}3" for i in range(1500)]
    path.write_text(
        f"customer_id{sep}date{sep}amount\n" + "\n".join(rows) + f"\nx7{sep}2025-01-03{sep}{late}\n"
    )
    names = dict(customer_col="customer_id", date_col="date", amount_col="amount")
    frame = read_transactions(path, **names).collect()
    assert frame.get_column("amount").to_list() == [3.0] * 1500 + [want]
    assert frame.get_column("customer_id").to_list() == [str(i % 7) for i in range(1500)] + ["x7"]
    done = _summary_json("--orders", str(path))
    assert done.returncode == 0, done.stderr
    spend = {row["customer_id"]: row["total_spend"] for row in json.loads(done.stdout)}
    assert spend["x7"] == want and spend["0"] == 3.0 * len(range(0, 1500, 7))


@pytest.mark.parametrize("rows_before", [1, 1500])
def test_an_amount_that_is_no_number_is_refused_naming_column_and_value(tmp_path, rows_before):
    """Early in the file (the column reads as text) or late (after the type was guessed): a
    clear error with status 2, no traceback."""
    path = tmp_path / "orders.csv"
    rows = "a,2025-01-02,3\n" * rows_before
    path.write_text("customer_id,date,amount\n" + rows + "b,2025-01-03,N/A\n")
    done = _summary_json("--orders", str(path))
    assert done.returncode == 2
    assert "column 'amount' of orders.csv holds 'N/A', which is not an amount" in " ".join(
        done.stderr.split()
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("orders.csv", b"", "orders.csv is empty"),
        ("orders.parquet", b"PAR1 not really", "orders.parquet cannot be read"),
    ],
)
def test_an_empty_or_damaged_file_is_refused_with_a_message(tmp_path, name, content, says):
    path = tmp_path / name
    path.write_bytes(content)
    done = subprocess.run(
        [FIDELE, "analytics", "clv", "--orders", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("written", "fmt"),
    [
        ("%m/%d/%Y", "%m/%d/%Y"),  # a US spreadsheet: month first
        ("%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M"),
        ("%Y-%m-%dT%H:%M:%S+0200", "%Y-%m-%dT%H:%M:%S%z"),  # an offset: the UTC day counts
    ],
)
def test_dates_in_a_named_format_read_as_the_iso_ones(shop, tmp_path, written, fmt):
    """``--date-format`` reads a text date column in that format, CSV or Parquet: the same
    summary as the ISO file's (with an offset, each time is moved to UTC first)."""
    iso = tmp_path / "iso.csv"
    frame = _shape(shop, "time", "string", "datetime").head(3000)
    local = pl.col("date")
    if "+0200" in written:  # the same instants, written in a zone two hours ahead
        local = local.dt.offset_by("2h")
    text = frame.with_columns(local.dt.strftime(written).alias("date"))
    frame.with_columns(pl.col("date").dt.strftime("%Y-%m-%dT%H:%M:%S")).write_csv(iso)
    want = _summary_json("--orders", str(iso))
    assert want.returncode == 0, want.stderr
    for path in (tmp_path / "named.csv", tmp_path / "named.parquet"):
        text.write_csv(path) if path.suffix == ".csv" else text.write_parquet(path)
        done = _summary_json("--orders", str(path), "--date-format", fmt)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == json.loads(want.stdout), path.name


def test_month_first_dates_without_their_format_are_refused_with_the_hint(tmp_path):
    path = tmp_path / "us.csv"
    path.write_text("customer_id,date,amount\nc1,01/05/2026,12.50\nc2,02/13/2026,8.00\n")
    done = _summary_json("--orders", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    said = " ".join(done.stderr.split())
    assert "column 'date' holds values that are not dates" in said
    assert "--date-format '%m/%d/%Y'" in said
    wrong = _summary_json("--orders", str(path), "--date-format", "%d/%m/%Y")
    assert wrong.returncode == 2
    assert "not dates in the format '%d/%m/%Y'" in " ".join(wrong.stderr.split())
    right = _summary_json("--orders", str(path), "--date-format", "%m/%d/%Y")
    rows = json.loads(right.stdout)
    assert [(r["customer_id"], r["first_purchase"]) for r in rows] == [
        ("c1", "2026-01-05"),
        ("c2", "2026-02-13"),
    ]


def test_a_parquet_file_with_text_dates_reads_as_its_csv(shop, tmp_path):
    frame = _shape(shop, "time", "string", "datetime").head(3000)
    text = frame.with_columns(pl.col("date").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    text.write_csv(tmp_path / "orders.csv")
    text.write_parquet(tmp_path / "orders.parquet")
    got = [_summary_json("--orders", str(tmp_path / f"orders.{ext}")) for ext in ("csv", "parquet")]
    assert all(done.returncode == 0 for done in got), [done.stderr for done in got]
    assert json.loads(got[0].stdout) == json.loads(got[1].stdout)
