"""Helpers that put generated shops into the database through the orders service."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
from sqlalchemy.orm import Session

from fidele.analytics.generate import simulate_bgnbd_gg
from fidele.orders import service as orders
from fidele.orders.schemas import OrderIn
from fidele.tenancy.service import Caller
from tests.fixtures.factories import order_body

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def shop_orders(n: int, seed: int = 5) -> pl.DataFrame:
    """A generated shop whose period ends the day before ``NOW``."""
    return simulate_bgnbd_gg(n, start=date(2024, 6, 1), days=730, seed=seed)


def load_shop(session: Session, caller: Caller, frame: pl.DataFrame, prefix: str = "") -> None:
    for i, row in enumerate(frame.iter_rows(named=True)):
        body = order_body(
            f"{prefix}o{i}",
            row["customer_id"],
            placed_at=row["date"].isoformat(),
            lines=[{"product_id": "p", "quantity": 1, "unit_price": row["amount"]}],
        )
        orders.create(session, caller, OrderIn(**body), NOW)
    session.flush()
