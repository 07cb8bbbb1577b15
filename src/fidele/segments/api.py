"""HTTP endpoints of segments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from fidele.customers.schemas import CustomerOut
from fidele.deps import ERRORS, NowDep, OneHopRoute, ReadCaller, SessionDep, WriteCaller
from fidele.kit.pagination import MAX_LIMIT, Cursor, Page, decode_cursor, encode_cursor
from fidele.kit.schemas import Id
from fidele.segments import domain, service
from fidele.segments.repository import SegmentRepository
from fidele.segments.schemas import FieldOut, PreviewIn, PreviewOut, SegmentIn, SegmentOut

router = APIRouter(
    prefix="/v1/segments", tags=["segments"], responses=ERRORS, route_class=OneHopRoute
)
CONFLICT = {409: {"description": "A segment of that name exists, or the segment is built-in"}}
NOT_FOUND = {404: {"description": "No such segment for this merchant"}}


@router.post("", response_model=SegmentOut, status_code=201, responses=CONFLICT)
def create_segment(
    body: SegmentIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> SegmentOut:
    made = service.create(session, caller.merchant_id, name=body.name, rule=body.rule, now=now)
    return SegmentOut.of(made)


@router.get("", response_model=Page[SegmentOut])
def list_segments(
    caller: ReadCaller,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Page[SegmentOut]:
    rows = service.listing(session, caller.merchant_id, after_id=decode_cursor(cursor), limit=limit)
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return Page[SegmentOut](items=[SegmentOut.of(s) for s in rows], next_cursor=nxt)


@router.get("/fields", response_model=list[FieldOut])
def list_fields(caller: ReadCaller) -> list[FieldOut]:
    """The fields a rule may name, with their ops."""
    out = [
        FieldOut(
            name=name,
            type=spec.kind,
            ops=list(domain.KIND_OPS[spec.kind]),
            within_days=spec.counted,
            values=list(spec.choices) if spec.choices else None,
            min=spec.bounds[0] if spec.bounds else None,
            max=spec.bounds[1] if spec.bounds else None,
        )
        for name, spec in domain.STATIC_FIELDS.items()
    ]
    patterns = {
        "customer.attributes.<key>": ("attr", False),
        "consent.<topic>.<channel>": ("bool", False),
        "events.<type>.count": ("int", True),
        **{f"messages.<flow>.{a}": (spec.kind, True) for a, spec in domain.MESSAGE_FIELDS.items()},
    }
    out += [
        FieldOut(name=n, type=k, ops=list(domain.KIND_OPS[k]), within_days=w)
        for n, (k, w) in patterns.items()
    ]
    return out


@router.post("/preview", response_model=PreviewOut)
def preview(body: PreviewIn, caller: ReadCaller, session: SessionDep, now: NowDep) -> PreviewOut:
    """Count and sample the customers a rule matches now, without saving anything."""
    n, ids = service.preview(session, caller.merchant_id, body.rule, now, sample=body.sample)
    people = SegmentRepository(session).customers(caller.merchant_id, ids)
    return PreviewOut(count=n, sample=[CustomerOut.of(c) for c in people])


@router.get("/{segment_id:int}", response_model=SegmentOut, responses=NOT_FOUND)
def get_segment(segment_id: Id, caller: ReadCaller, session: SessionDep) -> SegmentOut:
    return SegmentOut.of(service.get(session, caller.merchant_id, segment_id))


@router.put("/{segment_id:int}", response_model=SegmentOut, responses={**NOT_FOUND, **CONFLICT})
def put_segment(
    segment_id: Id, body: SegmentIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> SegmentOut:
    made = service.update(
        session, caller.merchant_id, segment_id, name=body.name, rule=body.rule, now=now
    )
    return SegmentOut.of(made)


@router.delete(
    "/{segment_id:int}",
    status_code=204,
    responses={**NOT_FOUND, **CONFLICT},
    response_class=Response,
)
def delete_segment(segment_id: Id, caller: WriteCaller, session: SessionDep) -> Response:
    service.delete(session, caller.merchant_id, segment_id)
    return Response(status_code=204)


@router.get("/{segment_id:int}/customers", response_model=Page[CustomerOut], responses=NOT_FOUND)
def segment_customers(
    segment_id: Id,
    caller: ReadCaller,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Page[CustomerOut]:
    """The segment's members now, by internal order of arrival (cursor pagination)."""
    rows = service.members(
        session, caller.merchant_id, segment_id, after_id=decode_cursor(cursor), limit=limit
    )
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return Page[CustomerOut](items=[CustomerOut.of(c) for c in rows], next_cursor=nxt)
