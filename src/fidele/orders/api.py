from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from fidele.deps import ERRORS, NowDep, OneHopRoute, ReadCaller, SessionDep, WriteCaller
from fidele.kit.pagination import MAX_LIMIT, Cursor, Page, decode_cursor, encode_cursor
from fidele.kit.schemas import ExternalId, UtcDatetime
from fidele.orders import service
from fidele.orders.schemas import OrderIn, OrderOut, RefundIn, RefundOut, StatusIn

router = APIRouter(prefix="/v1/orders", tags=["orders"], responses=ERRORS, route_class=OneHopRoute)
IdPath = Annotated[ExternalId, Path(description="The shop's own order id")]


@router.post(
    "",
    response_model=OrderOut,
    status_code=201,
    responses={
        200: {"description": "Replay of an order already recorded"},
        409: {"description": "Same order id, different body"},
    },
)
def create_order(
    body: OrderIn, caller: WriteCaller, session: SessionDep, now: NowDep, response: Response
) -> OrderOut:
    order, created = service.create(session, caller, body, now)
    response.status_code = 201 if created else 200
    return service.view(session, order, body.customer_id)


@router.get("/{external_id}", response_model=OrderOut, responses={404: {}})
def get_order(external_id: IdPath, caller: ReadCaller, session: SessionDep) -> OrderOut:
    return service.view(session, service.get(session, caller, external_id))


@router.get("", response_model=Page[OrderOut])
def list_orders(
    caller: ReadCaller,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    updated_since: UtcDatetime | None = None,
) -> Page[OrderOut]:
    rows = service.list_page(
        session, caller, after_id=decode_cursor(cursor), limit=limit, updated_since=updated_since
    )
    nxt = encode_cursor(rows[-1][0].id) if len(rows) == limit else None
    return Page[OrderOut](items=[service.view(session, o, ext) for o, ext in rows], next_cursor=nxt)


@router.post(
    "/{external_id}/status",
    response_model=OrderOut,
    responses={404: {}, 409: {"description": "Transition not allowed"}},
)
def set_order_status(
    external_id: IdPath, body: StatusIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> OrderOut:
    return service.view(session, service.set_status(session, caller, external_id, body, now))


@router.post(
    "/{external_id}/refunds",
    response_model=RefundOut,
    status_code=201,
    responses={200: {"description": "Replay"}, 404: {}, 409: {}},
)
def refund_order(
    external_id: IdPath,
    body: RefundIn,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
    response: Response,
) -> RefundOut:
    row, created = service.refund(session, caller, external_id, body, now)
    response.status_code = 201 if created else 200
    return RefundOut(
        id=row.external_id,
        amount=row.amount,
        lines=row.lines,
        reason=row.reason,
        occurred_at=row.occurred_at,
    )
