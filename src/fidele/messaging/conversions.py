"""Conversion attribution: an order is credited to the last message the customer clicked within
the click window before placing it (5 days by default), or else the last one they opened
within the open window (3 days); a click beats an open. One message per order (last touch).

A merchant may change the windows (``PUT /v1/messages/measurement``; 0 turns a kind off).

The rule is :func:`last_touch` (pure); :func:`attribute_orders` applies it to any number of
orders at once, whatever wrote them: the online path (``POST /v1/orders``, the connectors'
webhooks, the PrestaShop sync: through the ``order.placed`` handler) and the bulk path of ``fidele
import`` (which dispatches no handlers and calls it for the orders it created). Idempotent: an
order is attributed once (a replayed import or event adds nothing)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from fidele.kit.cache import ProcessCache
from fidele.messaging.measure_models import MeasurementSettings
from fidele.messaging.measure_repository import TrackingRepository
from fidele.orders.models import Order

CLICK_DAYS = 5
OPEN_DAYS = 3


class Touch(Protocol):
    """An open or a click of a sent message (a ``message_interactions`` row: its repeats
    between ``first_at`` and ``last_at``)."""

    id: int
    send_id: int
    kind: str
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True)
class Placed:
    """What attribution needs of an order."""

    order_id: int
    merchant_id: int
    customer_id: int
    placed_at: datetime


def last_touch(
    touches: Iterable[Touch], placed_at: datetime, click_window: timedelta, open_window: timedelta
) -> Touch | None:
    """The touch an order placed at ``placed_at`` is credited to: the latest click whose last
    repeat falls within ``click_window`` before the order, else the latest open within
    ``open_window`` (a zero window turns that kind off); a touch that began after the order
    does not count (one that began before and went on after it does). Ties: the latest row."""
    windows = {"click": click_window, "open": open_window}
    best: Touch | None = None
    best_key: tuple[int, datetime, int] | None = None
    for t in touches:
        window = windows.get(t.kind)
        if not window or t.first_at > placed_at or t.last_at < placed_at - window:
            continue
        key = (1 if t.kind == "click" else 0, t.last_at, t.id)
        if best_key is None or key > best_key:
            best, best_key = t, key
    return best


# Every order reads its merchant's windows: per process, for 2 s (a change through this
# process applies at once, through another within that time).
_windows: ProcessCache[tuple[timedelta, timedelta]] = ProcessCache(
    "conversion_windows",
    2.0,
    lambda objects: any(isinstance(o, MeasurementSettings) for o in objects),
)


def windows(session: Session, merchant_id: int) -> tuple[timedelta, timedelta]:
    """(click window, open window) of the merchant."""

    def load() -> tuple[timedelta, timedelta]:
        conf = session.get(MeasurementSettings, merchant_id)
        if conf is None:
            return timedelta(days=CLICK_DAYS), timedelta(days=OPEN_DAYS)
        return timedelta(days=conf.click_days), timedelta(days=conf.open_days)

    return _windows.get(session, merchant_id, load)


def attribute_orders(session: Session, orders: Sequence[Placed]) -> int:
    """Record the conversions the orders earned (one query for the touches of all their
    customers, one insert); how many orders were newly attributed."""
    if not orders:
        return 0
    repo = TrackingRepository(session)
    wins = {m: windows(session, m) for m in {o.merchant_id for o in orders}}
    longest = max(max(click, opened) for click, opened in wins.values())
    if not longest:
        return 0
    touches: dict[int, list[Touch]] = defaultdict(list)
    for t in repo.touches_of(
        {o.customer_id for o in orders},
        since=min(o.placed_at for o in orders) - longest,
        until=max(o.placed_at for o in orders),
    ):
        touches[t.customer_id].append(t)
    rows = []
    for o in orders:
        click_window, open_window = wins[o.merchant_id]
        touch = last_touch(touches.get(o.customer_id, ()), o.placed_at, click_window, open_window)
        if touch is not None:
            rows.append(
                {
                    "merchant_id": o.merchant_id,
                    "customer_id": o.customer_id,
                    "order_id": o.order_id,
                    "send_id": touch.send_id,
                    "touch": touch.kind,
                    "touched_at": min(touch.last_at, o.placed_at),
                    "placed_at": o.placed_at,
                }
            )
    return repo.add_conversions(rows)


def attribute(session: Session, order: Order) -> int:
    """Record the order's conversion, if a message earned it (the online path); 1 if it was
    attributed now, 0 otherwise."""
    return attribute_orders(
        session, [Placed(order.id, order.merchant_id, order.customer_id, order.placed_at)]
    )
