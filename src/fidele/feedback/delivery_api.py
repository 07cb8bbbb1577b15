"""HTTP endpoints of delivery experience."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from fidele.deps import ERRORS, NowDep, OneHopRoute, ReadCaller, SessionDep, WriteCaller
from fidele.feedback import delivery_service as service
from fidele.feedback.complaints_repository import GestureRepository
from fidele.feedback.delivery_models import OrderDelivery
from fidele.feedback.delivery_schemas import DeliveryIn, DeliveryKpis, DeliveryOut
from fidele.kit.schemas import ExternalId, UtcDatetime
from fidele.orders.models import Order

router = APIRouter(tags=["delivery"], responses=ERRORS, route_class=OneHopRoute)
NOT_FOUND = {404: {"description": "No such order for this merchant"}}


def _out(session: Session, order: Order, row: OrderDelivery | None) -> DeliveryOut:
    grant = GestureRepository(session).by_source_ref(order.merchant_id, f"late:{order.id}")
    return DeliveryOut(
        order_id=order.external_id,
        promised_at=row.promised_at if row else None,
        delivered_at=row.delivered_at if row else order.delivered_at,
        carrier=row.carrier if row else None,
        days_late=row.days_late if row else None,
        gesture={"kind": grant.kind, "value": grant.value, "code": grant.reference}
        if grant
        else None,
    )


@router.get("/v1/orders/{external_id}/delivery", response_model=DeliveryOut, responses=NOT_FOUND)
def get_delivery(external_id: ExternalId, caller: ReadCaller, session: SessionDep) -> DeliveryOut:
    order, row = service.get(session, caller, external_id)
    return _out(session, order, row)


@router.put("/v1/orders/{external_id}/delivery", response_model=DeliveryOut, responses=NOT_FOUND)
def put_delivery(
    external_id: ExternalId,
    body: DeliveryIn,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
) -> DeliveryOut:
    """Promised and/or actual delivery and the carrier (absent fields keep their value). When
    both dates are known the delivery is judged once: late, it records
    ``order.delivered_late`` (days late) and grants the merchant's late-delivery gesture
    within the recovery budget. ``order.delivered`` and the order's
    ``attributes.promised_delivery_at``/``attributes.carrier`` set them too."""
    order, row = service.put(session, caller, external_id, body, now)
    return _out(session, order, row)


@router.get("/v1/delivery/kpis", response_model=DeliveryKpis)
def kpis(
    caller: ReadCaller,
    session: SessionDep,
    now: NowDep,
    since: Annotated[UtcDatetime | None, Query()] = None,
) -> Any:
    """On-time rate, average delay (calendar days in the merchant's zone), by carrier, and
    the repeat rate within 90 days of delivery for on-time against late deliveries."""
    return service.kpis(session, caller, now, since=since)
