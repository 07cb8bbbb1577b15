"""Apply verified shop webhooks through the same customer and order services as the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.errors import Conflict, IdempotencyConflict, InvalidInput
from fidele.feedback import delivery_service
from fidele.feedback.delivery_schemas import DeliveryIn
from fidele.ingest.connectors import shopify, woocommerce
from fidele.ingest.connectors.shop import ShopOrder, external_id
from fidele.ingest.repository import PackageRepository
from fidele.kit.clock import as_utc
from fidele.orders import service as orders
from fidele.orders.models import Order
from fidele.orders.schemas import OrderIn, RefundIn, StatusIn
from fidele.tenancy.models import Merchant
from fidele.tenancy.service import Caller

T = TypeVar("T")


class WebhookResult(BaseModel):
    status: str  # processed | ignored | ping
    topic: str | None = None
    object_id: str | None = None
    created: bool = False


def caller_for(merchant: Merchant) -> Caller:
    """A webhook acts for the merchant whose secret signed it, with write rights only."""
    return Caller(merchant.id, merchant.programme_id, None, frozenset({"write"}))


def mapped(fn: Callable[..., T], *args: Any) -> T:
    """Run a payload mapping; a payload that does not fit is a 422 naming the field."""
    try:
        return fn(*args)
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        raise InvalidInput("the payload does not map onto a valid input", fields=fields) from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"the payload is not shaped as expected: {exc!r}"[:300]) from exc


def ensure_order(
    session: Session, caller: Caller, data: OrderIn, now: datetime, source: str
) -> tuple[Order, bool]:
    """Create the order unless it is known; a later webhook of the same order (paid, updated)
    carries a different body, which is not a conflict here: the first version stands."""
    try:
        return orders.create(session, caller, data, now, source=source)
    except IdempotencyConflict:
        return orders.get(session, caller, data.id), False


def move_status(
    session: Session, caller: Caller, order_id: str, data: StatusIn, now: datetime, source: str
) -> None:
    """Apply a status the shop reports, unless fidele refuses the transition (e.g. completed
    after a cancellation): the history stands as first recorded."""
    try:
        orders.set_status(session, caller, order_id, data, now, source=source)
    except Conflict:
        pass


def refund_once(
    session: Session, caller: Caller, order_id: str, data: RefundIn, now: datetime, source: str
) -> bool:
    try:
        return orders.refund(session, caller, order_id, data, now, source=source)[1]
    except IdempotencyConflict:
        return False  # this refund id was recorded from an earlier delivery
    except Conflict:
        # The order was cancelled first: its points are all taken back, and the shop would
        # retry (then disable the webhook) on an error.
        return False


def record_delivery(
    session: Session, caller: Caller, order_id: str, data: DeliveryIn, now: datetime
) -> None:
    """What the shop says of the delivery, through the delivery API's own service (which
    judges the delivery once both dates are known). The first promise known stands: carriers
    re-estimate along the way, and a late estimate must not hide a late delivery; the first
    delivery time known stands too, as the order's ``delivered_at`` does."""
    row = delivery_service.get(session, caller, order_id)[1]
    if row is not None:
        known = {k: None for k in ("promised_at", "delivered_at") if getattr(row, k) is not None}
        data = data.model_copy(update=known)
    delivery_service.put(session, caller, order_id, data, now)


def deliver(
    session: Session,
    caller: Caller,
    order_id: str,
    data: DeliveryIn | None,
    status: StatusIn | None,
    now: datetime,
    source: str,
) -> None:
    """The delivery facts first, then the status: ``order.delivered`` is recorded by the
    orders service once (a status already reached records nothing), and its handler finds the
    promise already known."""
    if status is not None and status.status == "delivered" and status.occurred_at is not None:
        placed = orders.get(session, caller, order_id).placed_at
        if status.occurred_at < as_utc(placed):
            raise InvalidInput("delivered before the order was placed", field="delivered_at")
    if data is not None:
        record_delivery(session, caller, order_id, data, now)
    if status is not None:
        move_status(session, caller, order_id, status, now, source)


def apply_order(
    session: Session, caller: Caller, shop: ShopOrder, now: datetime, source: str
) -> tuple[Order, bool]:
    """Record an order and the state the shop reports for it: payment, cancellation,
    fulfilment, refunds. Every step is idempotent, so any delivery of any topic, in any
    order, leads to the same order."""
    data = shop.data
    if data.payment_status == "paid" and data.paid_at is None and shop.paid_at is not None:
        data = data.model_copy(update={"paid_at": shop.paid_at})
    if shop.customer is not None and customers.find(session, caller, data.customer_id) is None:
        # Created from the order's customer record (names, its own email), not the contact email.
        customers.upsert(session, caller, data.customer_id, shop.customer, now, source=source)
    order, created = ensure_order(session, caller, data, now, source)
    if shop.packages:  # for the webhooks that later speak of one package (see _shopify_fulfillment)
        locked = orders.get(session, caller, data.id, lock=True)
        packages = PackageRepository(session)
        for p in shop.packages:
            packages.record(caller.merchant_id, locked.id, p, now)
    if shop.paid_at is not None and order.payment_status != "paid":
        move_status(
            session, caller, data.id, StatusIn(status="paid", occurred_at=shop.paid_at), now, source
        )
    status = None
    if shop.fulfilled is not None:
        status = StatusIn(status=shop.fulfilled[0], occurred_at=shop.fulfilled[1])
    deliver(session, caller, data.id, shop.delivery, status, now, source)
    for refund in shop.refunds:
        refund_once(session, caller, data.id, refund, now, source)
    if shop.cancelled_at is not None:
        cancel = StatusIn(status="cancelled", occurred_at=shop.cancelled_at)
        move_status(session, caller, data.id, cancel, now, source)
    return order, created


def _order_webhook(
    session: Session, caller: Caller, topic: str, shop: ShopOrder, now: datetime, source: str
) -> WebhookResult:
    created = apply_order(session, caller, shop, now, source)[1]
    return WebhookResult(status="processed", topic=topic, object_id=shop.data.id, created=created)


def shopify_webhook(
    session: Session, merchant: Merchant, topic: str, payload: dict[str, Any], now: datetime
) -> WebhookResult:
    caller = caller_for(merchant)
    if topic in shopify.ORDER_TOPICS:
        return _order_webhook(
            session, caller, topic, mapped(shopify.shop_order, payload), now, "shopify"
        )
    if topic == shopify.REFUND_TOPIC:
        return _shopify_refund(session, caller, topic, payload, now)
    if topic in shopify.FULFILLMENT_TOPICS:
        return _shopify_fulfillment(session, caller, topic, payload, now)
    if topic == shopify.CUSTOMER_TOPIC:
        ext = mapped(external_id, payload)
        data = mapped(shopify.customer_in, payload)
        created = customers.upsert(session, caller, ext, data, now, source="shopify")[1]
        return WebhookResult(status="processed", topic=topic, object_id=ext, created=created)
    return WebhookResult(status="ignored", topic=topic)


def _shopify_refund(
    session: Session, caller: Caller, topic: str, payload: dict[str, Any], now: datetime
) -> WebhookResult:
    order_id = mapped(external_id, payload, "order_id")
    currency = orders.get(session, caller, order_id).currency
    object_id = str(payload.get("id"))
    if mapped(shopify.is_void, payload):
        at = mapped(shopify.refund_time, payload)
        cancel = StatusIn(status="cancelled", occurred_at=at)
        move_status(session, caller, order_id, cancel, now, "shopify")
        return WebhookResult(status="processed", topic=topic, object_id=object_id)
    refund = mapped(shopify.refund_in, payload, currency)
    if refund is None:  # no money went back (restock only): nothing to book
        return WebhookResult(status="ignored", topic=topic, object_id=object_id)
    created = refund_once(session, caller, order_id, refund, now, "shopify")
    return WebhookResult(status="processed", topic=topic, object_id=refund.id, created=created)


def _shopify_fulfillment(
    session: Session, caller: Caller, topic: str, payload: dict[str, Any], now: datetime
) -> WebhookResult:
    """``fulfillments/create|update`` (a fulfillment) and ``fulfillment_events/create`` (a
    carrier's event on one): the carrier and its estimate, and the package's delivery, of an
    order fidele already knows (404 otherwise). The order is delivered once all its packages
    known so far are (see :func:`shopify.packages_delivered`): the first package of two
    arriving does not deliver it. The order's row is locked meanwhile, so two packages'
    webhooks at once see each other's package."""
    order_id = mapped(external_id, payload, "order_id")
    order = orders.get(session, caller, order_id, lock=True)
    fn = shopify.fulfillment_event if topic == shopify.EVENT_TOPIC else shopify.fulfillment
    data, package = mapped(fn, payload, order.placed_at)
    packages = PackageRepository(session)
    packages.record(caller.merchant_id, order.id, package, now)
    delivered = shopify.packages_delivered(_to_ship(order), packages.of_order(order.id))
    status = StatusIn(status="delivered", occurred_at=delivered) if delivered else None
    if data is not None:  # one package's arrival is not the order's
        data = data.model_copy(update={"delivered_at": delivered})
    if data is None and status is None:
        return WebhookResult(status="ignored", topic=topic, object_id=str(payload.get("id")))
    deliver(session, caller, order_id, data, status, now, "shopify")
    return WebhookResult(status="processed", topic=topic, object_id=str(payload.get("id")))


def _to_ship(order: Order) -> dict[str, int] | None:
    """The order's lines by the shop's line id, less what was refunded; None when a line has no
    id (an order recorded through the API, not from the shop)."""
    if any(line.line_id is None for line in order.lines):
        return None
    return {
        str(line.line_id): line.quantity - line.refunded_quantity
        for line in order.lines
        if line.quantity > line.refunded_quantity
    }


def woocommerce_webhook(
    session: Session, merchant: Merchant, topic: str, payload: dict[str, Any], now: datetime
) -> WebhookResult:
    caller = caller_for(merchant)
    if topic in woocommerce.ORDER_TOPICS:
        return _order_webhook(
            session, caller, topic, mapped(woocommerce.shop_order, payload), now, "woocommerce"
        )
    if topic in woocommerce.CUSTOMER_TOPICS:
        body = payload["customer"] if isinstance(payload.get("customer"), dict) else payload
        ext = mapped(external_id, body)
        data = mapped(woocommerce.customer_in, body)
        created = customers.upsert(session, caller, ext, data, now, source="woocommerce")[1]
        return WebhookResult(status="processed", topic=topic, object_id=ext, created=created)
    return WebhookResult(status="ignored", topic=topic)
