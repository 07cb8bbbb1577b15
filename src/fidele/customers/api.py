from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from fidele.customers import service
from fidele.customers.schemas import CustomerIn, CustomerOut
from fidele.deps import ERRORS, NowDep, OneHopRoute, ReadCaller, SessionDep, WriteCaller
from fidele.kit.pagination import MAX_LIMIT, Cursor, Page, decode_cursor, encode_cursor
from fidele.kit.schemas import ExternalId, UtcDatetime

router = APIRouter(
    prefix="/v1/customers", tags=["customers"], responses=ERRORS, route_class=OneHopRoute
)
IdPath = Annotated[ExternalId, Path(description="The shop's own customer id")]


@router.put(
    "/{external_id}",
    response_model=CustomerOut,
    responses={201: {"model": CustomerOut, "description": "Created"}, 404: {}},
)
def upsert_customer(
    external_id: IdPath,
    body: CustomerIn,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
    response: Response,
) -> CustomerOut:
    customer, created = service.upsert(session, caller, external_id, body, now)
    response.status_code = 201 if created else 200
    return CustomerOut.of(customer)


@router.get("/{external_id}", response_model=CustomerOut, responses={404: {}})
def get_customer(external_id: IdPath, caller: ReadCaller, session: SessionDep) -> CustomerOut:
    return CustomerOut.of(service.get(session, caller, external_id))


@router.get("", response_model=Page[CustomerOut])
def list_customers(
    caller: ReadCaller,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    updated_since: UtcDatetime | None = None,
) -> Page[CustomerOut]:
    rows = service.list_page(
        session, caller, after_id=decode_cursor(cursor), limit=limit, updated_since=updated_since
    )
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return Page[CustomerOut](items=[CustomerOut.of(c) for c in rows], next_cursor=nxt)


@router.get("/{external_id}/export", responses={404: {}})
def export_customer(
    external_id: IdPath, caller: ReadCaller, session: SessionDep, now: NowDep
) -> dict[str, Any]:
    """Everything held on the person (GDPR access/portability): profile, orders, loyalty
    statement, vouchers, coupons, gift cards, referrals, insights and events."""
    return service.export(session, caller, external_id, now)


@router.delete("/{external_id}", status_code=204, responses={404: {}})
def erase_customer(
    external_id: IdPath, caller: WriteCaller, session: SessionDep, now: NowDep
) -> Response:
    """Erase personal data; anonymised rows stay so totals and ledgers remain right."""
    service.erase(session, caller, external_id, now)
    return Response(status_code=204)
