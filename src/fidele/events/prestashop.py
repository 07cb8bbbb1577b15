"""``fidele sync prestashop``: pull customers and orders from a PrestaShop webservice.

PrestaShop core has no webhooks; its webservice answers ``GET /api/customers`` and
``/api/orders`` (``output_format=JSON&display=full``), authenticated by HTTP basic auth with
the webservice key as user and an empty password. The sync asks for what changed since the
last run (``filter[date_upd]=[since,until]&date=1``, sorted by ``date_upd``), pages with
``limit=offset,count``, and writes each page in its own transaction together with the cursor
(``sync_cursors``), so an interrupted sync resumes and a repeated one creates nothing twice.
PrestaShop times carry no zone: they are read in ``--timezone`` (the shop's, default UTC)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers import service as customers
from fidele.customers.schemas import ConsentIn, CustomerIn
from fidele.db.session import transaction
from fidele.errors import FideleError
from fidele.events.amounts import order_amounts, to_minor
from fidele.events.connectors.service import ensure_order, move_status
from fidele.events.repository import SyncCursorRepository
from fidele.kit.clock import Clock
from fidele.orders.schemas import LineIn, OrderIn, StatusIn
from fidele.tenancy.service import Caller

EPOCH = "1970-01-01 00:00:00"
FMT = "%Y-%m-%d %H:%M:%S"
# PrestaShop's default order states that fidele records as a status change.
STATES = {"4": "shipped", "5": "delivered", "6": "cancelled"}


class PrestaShopError(FideleError):
    code = "prestashop_error"
    http_status = 502


@dataclass
class SyncSummary:
    customers_read: int = 0
    customers_created: int = 0
    orders_read: int = 0
    orders_created: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Client:
    """A thin webservice client (``httpx``); ``transport`` lets tests swap the network."""

    def __init__(self, url: str, key: str, *, timeout: float = 30.0, **kwargs: Any) -> None:
        self.base = url.rstrip("/")
        self.http = httpx.Client(auth=(key, ""), timeout=timeout, **kwargs)

    def get(self, resource: str, params: dict[str, str]) -> list[dict[str, Any]]:
        try:
            r = self.http.get(
                f"{self.base}/api/{resource}", params={"output_format": "JSON", **params}
            )
        except httpx.HTTPError as exc:
            raise PrestaShopError(f"PrestaShop unreachable: {exc}") from exc
        if r.status_code != 200:
            raise PrestaShopError(f"PrestaShop answered {r.status_code} for {resource}")
        body = r.json()
        # an empty result is a bare [] rather than {"customers": []}
        return list(body.get(resource, [])) if isinstance(body, dict) else []

    def changed(
        self, resource: str, since: str, until: str, page: int
    ) -> Iterator[list[dict[str, Any]]]:
        offset = 0
        while True:
            rows = self.get(
                resource,
                {
                    "display": "full",
                    "date": "1",
                    "filter[date_upd]": f"[{since},{until}]",
                    "sort": "[date_upd_ASC,id_ASC]",
                    "limit": f"{offset},{page}",
                },
            )
            if rows:
                yield rows
            if len(rows) < page:
                return
            offset += page

    def currencies(self) -> dict[str, str]:
        rows = self.get("currencies", {"display": "[id,iso_code]"})
        return {str(r["id"]): str(r["iso_code"]).upper() for r in rows}

    def close(self) -> None:
        self.http.close()


def _local(value: str, tz: ZoneInfo) -> datetime:
    return datetime.strptime(value.strip(), FMT).replace(tzinfo=tz)


def customer_in(row: dict[str, Any], tz: ZoneInfo) -> CustomerIn:
    data: dict[str, Any] = {
        "email": row.get("email") or None,
        "first_name": row.get("firstname") or None,
        "last_name": row.get("lastname") or None,
    }
    birthday = row.get("birthday")
    if birthday and birthday != "0000-00-00":
        data["birthday"] = birthday
    newsletter = str(row.get("newsletter", "")) == "1"
    at = row.get("newsletter_date_add")
    data["consent"] = ConsentIn(
        email_marketing=newsletter,
        source="prestashop",
        at=_local(at, tz) if newsletter and at and not at.startswith("0000") else None,
    )
    return CustomerIn(**{k: v for k, v in data.items() if v is not None})


def order_in(row: dict[str, Any], currencies: dict[str, str], tz: ZoneInfo) -> OrderIn:
    currency = currencies.get(str(row.get("id_currency")), "")
    rows = (row.get("associations") or {}).get("order_rows") or []
    lines = [
        LineIn(
            product_id=str(r.get("product_reference") or r["product_id"]),
            name=r.get("product_name") or None,
            quantity=int(r["product_quantity"]),
            unit_price=to_minor(
                r.get("unit_price_tax_incl"), currency, field="unit_price_tax_incl"
            ),
        )
        for r in rows
    ]
    # prices are taken tax included, so tax is 0 in the total's equation
    amounts = order_amounts(
        sum(ln.quantity * ln.unit_price for ln in lines),
        discounts=to_minor(
            row.get("total_discounts_tax_incl"), currency, field="total_discounts_tax_incl"
        ),
        shipping=to_minor(
            row.get("total_shipping_tax_incl"), currency, field="total_shipping_tax_incl"
        ),
        tax=0,
        total=to_minor(
            row.get("total_paid_tax_incl") or row.get("total_paid"), currency, field="total_paid"
        ),
    )
    return OrderIn(
        id=str(row["id"]),
        customer_id=str(row["id_customer"]),
        placed_at=_local(row["date_add"], tz),
        currency=currency,
        lines=lines,
        **amounts,
        channel="prestashop",
        attributes={"reference": row.get("reference")},
    )


def sync(
    factory: sessionmaker[Session],
    caller: Caller,
    client: Client,
    clock: Clock,
    *,
    tz: ZoneInfo,
    page: int = 100,
) -> SyncSummary:
    """Pull what changed since the last sync; one transaction per page (this is an edge)."""
    summary = SyncSummary()
    until = (clock.now().astimezone(tz) + timedelta(days=1)).strftime(FMT)
    _pull(
        factory,
        caller,
        client,
        "customers",
        until,
        page,
        summary,
        clock,
        lambda s, r: _customer(s, caller, r, tz, clock, summary),
    )
    currencies = client.currencies()
    _pull(
        factory,
        caller,
        client,
        "orders",
        until,
        page,
        summary,
        clock,
        lambda s, r: _order(s, caller, r, currencies, tz, clock, summary),
    )
    return summary


def _pull(
    factory: sessionmaker[Session],
    caller: Caller,
    client: Client,
    resource: str,
    until: str,
    page: int,
    summary: SyncSummary,
    clock: Clock,
    apply: Callable[[Session, dict[str, Any]], None],
) -> None:
    source = f"prestashop:{resource}:{client.base}"
    with transaction(factory) as session:
        since = SyncCursorRepository(session).position(caller.merchant_id, source) or EPOCH
    for rows in client.changed(resource, since, until, page):
        with transaction(factory) as session:
            for row in rows:
                try:
                    with session.begin_nested():
                        apply(session, row)
                except (FideleError, ValidationError, KeyError, ValueError, TypeError):
                    summary.rejected += 1
            last = max(str(r.get("date_upd") or since) for r in rows)
            SyncCursorRepository(session).save(
                caller.merchant_id, source, max(last, since), clock.now()
            )


def _customer(
    session: Session,
    caller: Caller,
    row: dict[str, Any],
    tz: ZoneInfo,
    clock: Clock,
    summary: SyncSummary,
) -> None:
    summary.customers_read += 1
    _, created = customers.upsert(
        session, caller, str(row["id"]), customer_in(row, tz), clock.now(), source="prestashop"
    )
    summary.customers_created += created


def _order(
    session: Session,
    caller: Caller,
    row: dict[str, Any],
    currencies: dict[str, str],
    tz: ZoneInfo,
    clock: Clock,
    summary: SyncSummary,
) -> None:
    summary.orders_read += 1
    data = order_in(row, currencies, tz)
    order, created = ensure_order(session, caller, data, clock.now(), "prestashop")
    summary.orders_created += created
    status = STATES.get(str(row.get("current_state")))
    if status is not None and order.status != status:
        at = _local(row["date_upd"], tz) if row.get("date_upd") else None
        move_status(
            session,
            caller,
            data.id,
            StatusIn(status=status, occurred_at=at),
            clock.now(),
            "prestashop",
        )
