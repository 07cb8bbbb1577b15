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
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers import service as customers
from fidele.customers.schemas import ConsentIn, CustomerIn
from fidele.db.session import transaction
from fidele.errors import FideleError, InvalidInput
from fidele.events.repository import SyncCursorRepository
from fidele.ingest.amounts import order_amounts, to_minor
from fidele.ingest.connectors.service import apply_order, refund_once
from fidele.ingest.connectors.shop import ShopOrder, delivery_in, line_name
from fidele.kit.clock import Clock
from fidele.orders import service as orders
from fidele.orders.schemas import LineIn, OrderIn, RefundIn
from fidele.tenancy.service import Caller

EPOCH = "1970-01-01 00:00:00"
FMT = "%Y-%m-%d %H:%M:%S"
# PrestaShop's default order states (``current_state``): whether the money is in, and the
# status fidele records. ``valid`` (PrestaShop's own "the order is paid") decides the payment
# when present; the table decides for payloads without it. Custom states follow ``valid``.
STATES: dict[str, tuple[bool, str | None]] = {
    "1": (False, None),  # awaiting check payment
    "2": (True, None),  # payment accepted
    "3": (True, None),  # processing in progress
    "4": (True, "shipped"),
    "5": (True, "delivered"),
    "6": (False, "cancelled"),  # cancelled, before or after payment
    "7": (True, "refunded"),  # refunded: what remains paid goes back
    "8": (False, None),  # payment error
    "9": (True, None),  # on backorder (paid)
    "10": (False, None),  # awaiting bank wire payment
    "11": (True, None),  # remote payment accepted
    "12": (False, None),  # on backorder (not paid)
    "13": (False, None),  # awaiting cash on delivery validation
}


class PrestaShopError(FideleError):
    code = "prestashop_error"
    http_status = 502


@dataclass
class SyncSummary:
    customers_read: int = 0
    customers_created: int = 0
    orders_read: int = 0
    orders_created: int = 0
    refunds_created: int = 0  # credit slips recorded as refunds
    rejected: int = 0
    # 1 when the webservice key may not read order_slips (refunds then come from states only)
    order_slips_unreadable: int = 0

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

    def carriers(self) -> dict[str, str]:
        """Carrier names by id; empty when the key may not read ``carriers`` (the orders then
        come without their carrier)."""
        try:
            rows = self.get("carriers", {"display": "[id,name]"})
        except PrestaShopError:
            return {}
        # the in-store pickup carrier is named "0" (shown as the shop's name): no carrier
        return {str(r["id"]): str(r["name"]) for r in rows if str(r.get("name") or "0") != "0"}

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
    """An order of the webservice, stored tax-exclusive with its tax: PrestaShop gives every
    amount both ways (``*_tax_excl``/``*_tax_incl``), so every shop earns on the same base."""
    currency = currencies.get(str(row.get("id_currency")), "")
    rows = (row.get("associations") or {}).get("order_rows") or []
    lines = [_line(r, currency) for r in rows]
    lines_total = sum(ln.quantity * ln.unit_price for ln in lines)
    total = to_minor(
        row.get("total_paid_tax_incl") or row.get("total_paid"), currency, field="total_paid"
    )
    excl = row.get("total_paid_tax_excl")
    products = row.get("total_products")
    amounts = order_amounts(
        lines_total,
        discounts=to_minor(
            row.get("total_discounts_tax_excl"), currency, field="total_discounts_tax_excl"
        ),
        shipping=to_minor(
            row.get("total_shipping_tax_excl"), currency, field="total_shipping_tax_excl"
        ),
        tax=total - to_minor(excl, currency, field="total_paid_tax_excl")
        if excl not in (None, "")
        else 0,
        total=total,
        rounding=to_minor(products, currency, field="total_products") - lines_total
        if products
        else 0,
    )
    return OrderIn(
        id=str(row["id"]),
        customer_id=str(row["id_customer"]),
        placed_at=_local(row["date_add"], tz),
        currency=currency,
        lines=lines,
        **amounts,
        payment_status="paid" if is_paid(row) else "pending",
        channel="prestashop",
        attributes={"reference": row.get("reference"), "state": row.get("current_state")},
    )


def _line(r: dict[str, Any], currency: str) -> LineIn:
    quantity = int(r["product_quantity"])
    excl = to_minor(r.get("unit_price_tax_excl"), currency, field="order_rows.unit_price")
    incl = to_minor(r.get("unit_price_tax_incl"), currency, field="order_rows.unit_price")
    variant = str(r.get("product_attribute_id") or "0")
    return LineIn(
        product_id=str(r.get("product_reference") or r["product_id"]),
        line_id=str(r["id"]) if r.get("id") not in (None, "") else None,
        variant_id=variant if variant != "0" else None,
        name=line_name(r.get("product_name")),
        quantity=quantity,
        unit_price=excl,
        tax=max(incl - excl, 0) * quantity,
    )


def is_paid(row: dict[str, Any]) -> bool:
    if str(row.get("valid", "")) in ("0", "1"):
        return str(row["valid"]) == "1"
    return STATES.get(str(row.get("current_state")), (False, None))[0]


def shop_order(
    row: dict[str, Any],
    currencies: dict[str, str],
    tz: ZoneInfo,
    carriers: dict[str, str] | None = None,
) -> ShopOrder:
    """The order and the state PrestaShop reports for it (payment, status, refund), and its
    carrier by name. Delivered (state 5) is dated by ``delivery_date``, which PrestaShop sets
    at every change to a state with its "delivery" flag, else by ``date_upd``; the core keeps
    no promised delivery date."""
    data = order_in(row, currencies, tz)
    at = _local(row["date_upd"], tz) if row.get("date_upd") else None
    status = STATES.get(str(row.get("current_state")), (False, None))[1]
    delivered = None
    if status == "delivered":
        when = str(row.get("delivery_date") or "")
        delivered = _local(when, tz) if when and not when.startswith("0000") else at
        if delivered is not None and delivered < data.placed_at:
            raise InvalidInput("delivered before the order was placed", field="delivery_date")
    carrier = (carriers or {}).get(str(row.get("id_carrier")))
    refunds = []
    if status == "refunded" and data.payment_status == "paid":
        # the whole order went back; credit slips of the same order then find nothing left
        refunds.append(RefundIn(id=f"ps-state-refunded-{data.id}", occurred_at=at))
    return ShopOrder(
        data=data,
        paid_at=at if data.payment_status == "paid" else None,
        cancelled_at=at if status == "cancelled" else None,
        fulfilled=_fulfilled(status, delivered or at),
        refunds=refunds,
        delivery=delivery_in(None, delivered, carrier),
    )


def _fulfilled(
    status: str | None, at: datetime | None
) -> tuple[Literal["shipped", "delivered"], datetime | None] | None:
    if status == "shipped":
        return "shipped", at
    if status == "delivered":
        return "delivered", at
    return None


def slip_in(slip: dict[str, Any], currency: str, tz: ZoneInfo) -> RefundIn:
    """A credit slip (``order_slips``): products and shipping paid back, tax included."""
    amount = to_minor(slip.get("total_products_tax_incl"), currency) + to_minor(
        slip.get("total_shipping_tax_incl"), currency
    )
    if not amount:
        amount = to_minor(slip.get("amount"), currency) + to_minor(
            slip.get("shipping_cost_amount"), currency
        )
    return RefundIn(
        id=f"ps-slip-{slip['id']}", amount=amount, occurred_at=_local(slip["date_add"], tz)
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
    carriers = client.carriers()
    _pull(
        factory,
        caller,
        client,
        "orders",
        until,
        page,
        summary,
        clock,
        lambda s, r: _order(s, caller, r, currencies, carriers, tz, clock, summary),
    )
    try:
        _pull(
            factory,
            caller,
            client,
            "order_slips",
            until,
            page,
            summary,
            clock,
            lambda s, r: _slip(s, caller, r, tz, clock, summary),
        )
    except PrestaShopError:
        summary.order_slips_unreadable = 1
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
    carriers: dict[str, str],
    tz: ZoneInfo,
    clock: Clock,
    summary: SyncSummary,
) -> None:
    summary.orders_read += 1
    shop = shop_order(row, currencies, tz, carriers)
    summary.orders_created += apply_order(session, caller, shop, clock.now(), "prestashop")[1]


def _slip(
    session: Session,
    caller: Caller,
    row: dict[str, Any],
    tz: ZoneInfo,
    clock: Clock,
    summary: SyncSummary,
) -> None:
    order = orders.get(session, caller, str(row["id_order"]))
    if order.refunded_total >= order.total:
        return  # refunded whole already (state "refunded")
    refund = slip_in(row, order.currency, tz)
    summary.refunds_created += refund_once(
        session, caller, order.external_id, refund, clock.now(), "prestashop"
    )
