import json
from datetime import date

import polars as pl
import pytest
from typer.testing import CliRunner

from fidele.analytics.summary import summary
from fidele.cli import app

from .conftest import GOLDEN

runner = CliRunner()


@pytest.fixture(scope="module")
def orders_file(tmp_path_factory, request):
    from fidele.analytics.generate import simulate_bgnbd_gg

    path = tmp_path_factory.mktemp("orders") / "orders.parquet"
    simulate_bgnbd_gg(3000, start=date(2024, 1, 1), seed=21).write_parquet(path)
    return path


def run(*args: str):
    result = runner.invoke(app, ["analytics", *args])
    assert result.exit_code == 0, result.output
    return result


def test_summary_csv_matches_the_library(tmp_path):
    out = tmp_path / "summary.csv"
    src = GOLDEN / "orders_small.csv"
    run(
        "summary",
        "--orders",
        str(src),
        "--observation-end",
        "2024-01-20",
        "--format",
        "csv",
        "--out",
        str(out),
    )
    got = pl.read_csv(out, try_parse_dates=True)
    want = summary(pl.read_csv(src, try_parse_dates=True), observation_end=date(2024, 1, 20))
    assert got["customer_id"].to_list() == want["customer_id"].to_list()
    assert got["T"].to_list() == want["T"].to_list()
    assert got["monetary_value"].to_list() == want["monetary_value"].to_list()


def test_renamed_columns_and_weeks(tmp_path):
    src = tmp_path / "renamed.csv"
    pl.read_csv(GOLDEN / "orders_small.csv").rename(
        {"customer_id": "who", "date": "at", "amount": "net"}
    ).write_csv(src)
    result = run(
        "summary",
        "--orders",
        str(src),
        "--customer-col",
        "who",
        "--date-col",
        "at",
        "--amount-col",
        "net",
        "--observation-end",
        "2024-01-20",
        "--time-unit",
        "weeks",
        "--format",
        "json",
    )
    rows = json.loads(result.stdout)
    assert rows[0]["who"] == "A"
    assert rows[0]["T"] == pytest.approx(19 / 7)


def test_clv_json_prints_parameters_and_writes_customers(orders_file, tmp_path):
    out = tmp_path / "customers.parquet"
    result = run(
        "clv", "--orders", str(orders_file), "--json", "--format", "parquet", "--out", str(out)
    )
    report = json.loads(result.stdout)
    assert set(report["bgnbd"]) >= {"r", "alpha", "a", "b", "log_likelihood", "se"}
    assert set(report["gamma_gamma"]) >= {"p", "q", "v", "log_likelihood"}
    assert 0.1 < report["bgnbd"]["r"] < 0.5
    customers = pl.read_parquet(out)
    assert customers.height == 3000
    assert set(customers.columns) >= {"customer_id", "p_alive", "expected_purchases", "clv"}


def test_clv_with_calibration_reports_holdout_table(orders_file):
    result = run(
        "clv",
        "--orders",
        str(orders_file),
        "--json",
        "--calibration-end",
        "2025-06-30",
        "--observation-end",
        "2025-12-30",
    )
    table = json.loads(result.stdout)["calibration_vs_holdout"]
    assert [row["frequency_cal"] for row in table] == list(range(8))


def test_rfm_cohorts_kpis(orders_file, tmp_path):
    seg = run("rfm", "--orders", str(orders_file), "--format", "json").stdout
    assert {row["segment"] for row in json.loads(seg)} <= {
        "Champions",
        "Loyal",
        "Can't lose them",
        "At risk",
        "Potential loyalists",
        "New customers",
        "Promising",
        "Need attention",
        "About to sleep",
        "Hibernating",
        "Lost",
    }
    table = run("rfm", "--orders", str(orders_file)).stdout
    assert "Champions" in table
    cohorts = json.loads(run("cohorts", "--orders", str(orders_file), "--format", "json").stdout)
    assert all(row["0"] == 1.0 for row in cohorts)
    kpis = json.loads(run("kpis", "--orders", str(orders_file), "--format", "json").stdout)
    assert kpis["kpis"]["customers"] == 3000
    assert kpis["kpis"]["stage"] in {"growing", "established"}


def test_observation_end_ignores_later_orders(tmp_path):
    src = GOLDEN / "orders_small.csv"
    rows = json.loads(run("summary", "--orders", str(src), "--format", "json").stdout)
    assert rows[0]["total_spend"] == 1239  # default end: the file's last day
    rows = json.loads(
        run(
            "summary", "--orders", str(src), "--observation-end", "2024-01-20", "--format", "json"
        ).stdout
    )
    assert rows[0]["total_spend"] == 240


def test_bad_inputs_exit_with_a_message(tmp_path):
    src = str(GOLDEN / "orders_small.csv")
    missing = runner.invoke(app, ["analytics", "summary", "--orders", src, "--amount-col", "x"])
    assert missing.exit_code == 2
    assert "'x'" in missing.output
    bad_day = runner.invoke(
        app, ["analytics", "summary", "--orders", src, "--observation-end", "yesterday"]
    )
    assert bad_day.exit_code == 2
    parquet = runner.invoke(app, ["analytics", "summary", "--orders", src, "--format", "parquet"])
    assert parquet.exit_code == 2
    assert "--out" in parquet.output


def test_calendar_weeks_from_the_cli():
    result = run(
        "summary",
        "--orders",
        str(GOLDEN / "orders_calendar_weeks.csv"),
        "--observation-end",
        "2025-12-30",
        "--time-unit",
        "calendar_weeks",
        "--format",
        "json",
    )
    want = pl.read_csv(GOLDEN / "summary_calendar_weeks_lifetimes.csv")
    got = {r["customer_id"]: r for r in json.loads(result.stdout)}
    for row in want.iter_rows(named=True):
        assert got[row["customer_id"]]["frequency"] == row["frequency"]
        assert got[row["customer_id"]]["T"] == row["T"]
    assert "calendar_weeks" in runner.invoke(app, ["analytics", "clv", "--help"]).stdout
