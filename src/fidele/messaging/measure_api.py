"""HTTP endpoints of the measurement side of messaging: open pixel and click redirect (public,
signed tokens), broadcasts and their stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import RedirectResponse

from fidele.campaigns import service as flows
from fidele.deps import (
    ERRORS,
    NowDep,
    OneHopRoute,
    ReadCaller,
    SessionDep,
    SettingsDep,
    WriteCaller,
    writes,
)
from fidele.errors import NotFound
from fidele.kit.pagination import MAX_LIMIT, Cursor, Page, decode_cursor, encode_cursor
from fidele.kit.schemas import Id, UtcDatetime
from fidele.messaging import broadcasts, measurement, stats, tracking
from fidele.messaging.measure_schemas import (
    BroadcastIn,
    BroadcastOut,
    MeasurementIn,
    MeasurementOut,
    WinnerIn,
)

router = APIRouter(responses=ERRORS, route_class=OneHopRoute)

Token = Annotated[str, Path(description="A signed tracking token")]
NO_STORE = {"Cache-Control": "no-store, private", "Pragma": "no-cache"}


@router.get(
    "/v1/t/o/{token}",
    tags=["tracking"],
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}}, 404: {"description": "Unknown token"}},
)
@writes
def open_pixel(token: Token, session: SessionDep, settings: SettingsDep, now: NowDep) -> Response:
    """The open pixel of a sent message (a 1x1 GIF); records the open. No API key: the token
    is signed by the server."""
    mark = tracking.Mark.parse(settings.secret_key, token, "open")
    if mark is None:
        raise NotFound("unknown tracking token")
    tracking.record(session, mark, now)
    return Response(tracking.PIXEL_GIF, media_type="image/gif", headers=NO_STORE)


@router.get(
    "/v1/t/c/{token}",
    tags=["tracking"],
    response_class=RedirectResponse,
    status_code=302,
    responses={
        302: {"description": "To the link of the message"},
        404: {"description": "Unknown token"},
    },
)
@writes
def click_redirect(
    token: Token, session: SessionDep, settings: SettingsDep, now: NowDep
) -> RedirectResponse:
    """A link of a sent message: records the click and redirects to the link's URL, which the
    token carries signed (a token not made by this server is a 404, never a redirect)."""
    mark = tracking.Mark.parse(settings.secret_key, token, "click")
    if mark is None:
        raise NotFound("unknown tracking token")
    tracking.record(session, mark, now)
    return RedirectResponse(mark.url, status_code=302, headers=NO_STORE)


# --- broadcasts -------------------------------------------------------------------------------

BroadcastId = Annotated[Id, Path(description="The broadcast's id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Retrying with the same key returns the first broadcast",
    ),
]
Stats = dict[str, Any]


@router.post(
    "/v1/broadcasts",
    response_model=BroadcastOut,
    status_code=201,
    tags=["broadcasts"],
    responses={200: {"description": "Replayed (same Idempotency-Key)", "model": BroadcastOut}},
)
def create_broadcast(
    body: BroadcastIn,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Schedule a one-off message to a segment (frozen when it starts), through the same
    consent, caps and ledger as journeys; holdout, A/B variants and local time optional."""
    row, created = broadcasts.create(
        session, caller.merchant_id, body, now, idempotency_key=idempotency_key
    )
    if not created:
        response.status_code = 200
    return broadcasts.view(session, row)


@router.get("/v1/broadcasts", response_model=Page[BroadcastOut], tags=["broadcasts"])
def list_broadcasts(
    caller: ReadCaller,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Page[BroadcastOut]:
    rows = broadcasts.listing(
        session, caller.merchant_id, after_id=decode_cursor(cursor), limit=limit
    )
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    items = [BroadcastOut.model_validate(broadcasts.view(session, r)) for r in rows]
    return Page[BroadcastOut](items=items, next_cursor=nxt)


@router.get(
    "/v1/broadcasts/{broadcast_id}",
    response_model=BroadcastOut,
    tags=["broadcasts"],
    responses={404: {}},
)
def get_broadcast(
    broadcast_id: BroadcastId, caller: ReadCaller, session: SessionDep
) -> dict[str, Any]:
    """The broadcast and its progress (recipients frozen, decided, pending, per outcome)."""
    return broadcasts.view(session, broadcasts.get(session, caller.merchant_id, broadcast_id))


@router.post(
    "/v1/broadcasts/{broadcast_id}/cancel",
    response_model=BroadcastOut,
    tags=["broadcasts"],
    responses={404: {}, 409: {"description": "Already started"}},
)
def cancel_broadcast(
    broadcast_id: BroadcastId, caller: WriteCaller, session: SessionDep, now: NowDep
) -> dict[str, Any]:
    """Cancel a broadcast that has not started yet."""
    row = broadcasts.cancel(session, caller.merchant_id, broadcast_id, now)
    return broadcasts.view(session, row)


@router.post(
    "/v1/broadcasts/{broadcast_id}/winner",
    response_model=BroadcastOut,
    tags=["broadcasts"],
    responses={404: {}, 409: {"description": "No variants, or another winner chosen"}},
)
def choose_winner(
    broadcast_id: BroadcastId,
    body: WinnerIn,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
) -> dict[str, Any]:
    """Pick the A/B winner: the recipients waiting for it (outside ``test_share``) get it."""
    row = broadcasts.choose_winner(session, caller.merchant_id, broadcast_id, body.variant, now)
    return broadcasts.view(session, row)


@router.get(
    "/v1/broadcasts/{broadcast_id}/stats",
    response_model=Stats,
    tags=["broadcasts"],
    responses={404: {}},
)
def broadcast_stats(broadcast_id: BroadcastId, caller: ReadCaller, session: SessionDep) -> Stats:
    """Sent, delivered, bounced, opened, clicked, unsubscribed, attributed conversions and
    revenue (totals and per variant); against the holdout, the incremental conversion rate
    and revenue per customer with 95% intervals; the A/B comparison."""
    return jsonable_encoder(broadcasts.broadcast_stats(session, caller.merchant_id, broadcast_id))


@router.get(
    "/v1/flows/{flow_id}/stats",
    response_model=Stats,
    tags=["flows"],
    responses={404: {}},
)
def flow_stats(
    flow_id: Annotated[Id, Path(description="The flow's id")],
    caller: ReadCaller,
    session: SessionDep,
) -> Stats:
    """The flow's messages over all its versions: totals and per step (per variant too) sent,
    delivered, bounced, opened, clicked, unsubscribed, attributed conversions and revenue;
    against the flow's holdout (per step and per customer), the incremental conversion rate
    and revenue per customer with 95% intervals; the A/B comparison of each step."""
    flows.get(session, caller, flow_id)  # 404 for another merchant's or an unknown flow
    return jsonable_encoder(stats.flow_stats(session, caller.merchant_id, flow_id))


# --- measurement settings and the programme's holdout -------------------------------------


@router.get("/v1/messages/measurement", response_model=MeasurementOut, tags=["messages"])
def get_measurement(caller: ReadCaller, session: SessionDep) -> dict[str, Any]:
    return measurement.get(session, caller.merchant_id)


@router.put("/v1/messages/measurement", response_model=MeasurementOut, tags=["messages"])
def put_measurement(
    body: MeasurementIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> dict[str, Any]:
    """The programme's global holdout (customers who get no marketing message at all) and the
    attribution windows."""
    return measurement.put(session, caller.merchant_id, **body.model_dump(), now=now)


@router.get("/v1/messages/holdout/stats", response_model=Stats, tags=["messages"])
def programme_holdout_stats(
    caller: ReadCaller,
    session: SessionDep,
    since: Annotated[UtcDatetime, Query(description="Start of the period")],
    days: Annotated[int, Query(ge=1, le=3660, description="Length of the period")] = 30,
) -> Stats:
    """Everyone against the programme's global holdout over ``days`` from ``since``:
    conversion rate and revenue per customer, the increments and their 95% intervals."""
    try:
        until = since + timedelta(days=days)
    except OverflowError:  # a period reaching past year 9999
        until = datetime.max.replace(tzinfo=UTC)
    out = measurement.programme_stats(session, caller.merchant_id, since=since, until=until)
    return jsonable_encoder(out)
