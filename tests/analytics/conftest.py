from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from fidele.analytics.generate import simulate_bgnbd_gg

GOLDEN = Path(__file__).parent / "golden"
START = date(2024, 1, 1)
END = date(2025, 12, 30)  # last day of simulate_bgnbd_gg(start=START, days=730)


def read_orders(name: str) -> pl.DataFrame:
    return pl.read_csv(GOLDEN / name, try_parse_dates=True)


def read_golden(name: str) -> pl.DataFrame:
    return pl.read_csv(GOLDEN / name, try_parse_dates=True)


@pytest.fixture(scope="session")
def simulated() -> pl.DataFrame:
    return simulate_bgnbd_gg(30_000, start=START, seed=11)


@pytest.fixture
def small_orders() -> pl.DataFrame:
    return read_orders("orders_small.csv")
