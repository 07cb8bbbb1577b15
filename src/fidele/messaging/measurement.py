"""A merchant's measurement settings (programme holdout share, attribution windows), the
programme's global holdout and its stats."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.messaging import measure
from fidele.messaging.measure_models import MeasurementSettings
from fidele.messaging.measure_repository import ProgrammeRepository

PROGRAMME = "programme"


def get(session: Session, merchant_id: int) -> dict[str, Any]:
    row = session.get(MeasurementSettings, merchant_id)
    if row is None:
        return {"global_holdout_share": 0, "click_days": 5.0, "open_days": 3.0}
    return {
        "global_holdout_share": row.global_holdout_bp,
        "click_days": row.click_days,
        "open_days": row.open_days,
    }


def put(
    session: Session,
    merchant_id: int,
    *,
    global_holdout_share: int,
    click_days: float,
    open_days: float,
    now: datetime,
) -> dict[str, Any]:
    row = session.get(MeasurementSettings, merchant_id)
    if row is None:
        row = MeasurementSettings(merchant_id=merchant_id, updated_at=now)
        session.add(row)
    row.global_holdout_bp = global_holdout_share
    row.click_days, row.open_days, row.updated_at = click_days, open_days, now
    session.flush()
    return get(session, merchant_id)


def programme_held_out(session: Session, merchant_id: int, customer_id: int) -> bool:
    """Whether the customer is in the merchant's global holdout (no marketing message at all)."""
    return programme_holdout(session, merchant_id)(customer_id)


def programme_holdout(session: Session, merchant_id: int) -> Callable[[int], bool]:
    """The merchant's global holdout as a test of customer ids (one read, for a batch)."""
    row = session.get(MeasurementSettings, merchant_id)
    if row is None or row.global_holdout_bp == 0:
        return lambda customer_id: False
    salt, share = measure.holdout_salt(merchant_id, PROGRAMME), row.global_holdout_bp
    return lambda customer_id: measure.is_held_out(salt, customer_id, share)


def programme_stats(
    session: Session, merchant_id: int, *, since: datetime, until: datetime
) -> dict[str, Any]:
    """Customers in the global holdout against everyone else: who ordered in [since, until)
    and their revenue per customer. Customers are those who existed at ``since``."""
    share = get(session, merchant_id)["global_holdout_share"]
    salt = measure.holdout_salt(merchant_id, PROGRAMME)
    repo = ProgrammeRepository(session)
    revenue = repo.revenue_by_customer(merchant_id, since, until)
    treated_n, held_n = 0, 0
    treated_rev: list[int] = []
    held_rev: list[int] = []
    for customer_id in repo.customers_at(merchant_id, since):
        held = share > 0 and measure.is_held_out(salt, customer_id, share)
        if held:
            held_n += 1
        else:
            treated_n += 1
        if customer_id in revenue:
            (held_rev if held else treated_rev).append(revenue[customer_id])
    treated = measure.Group.of(treated_n, treated_rev)
    control = measure.Group.of(held_n, held_rev)
    return {
        "global_holdout_share": share,
        "since": since,
        "until": until,
        "treated": treated.as_dict(),
        "held_out": control.as_dict(),
        **measure.compare(treated, control).as_dict(),
    }
