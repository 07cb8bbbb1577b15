from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Response

from fidele.customers import service as customers
from fidele.deps import (
    ERRORS,
    AdminCaller,
    NowDep,
    OneHopRoute,
    ReadCaller,
    SessionDep,
    WriteCaller,
)
from fidele.errors import InvalidInput
from fidele.kit.pagination import MAX_LIMIT, Cursor, Page, decode_cursor, encode_cursor
from fidele.kit.schemas import ExternalId, Id, UtcDatetime
from fidele.loyalty import config, members, reports, rewards, service
from fidele.loyalty.models import Redemption
from fidele.loyalty.repository import LoyaltyRepository
from fidele.loyalty.schemas import (
    AdjustmentIn,
    AdjustmentOut,
    LoyaltyOut,
    RedemptionIn,
    RedemptionOut,
    RewardIn,
    RewardOut,
    SimulateIn,
    SimulateOut,
    StatementLine,
    window,
)
from fidele.webhooks.api import router as webhooks_router

router = APIRouter(tags=["loyalty"], responses=ERRORS, route_class=OneHopRoute)
router.include_router(webhooks_router)
CustomerPath = Annotated[ExternalId, Path(description="The shop's own customer id")]
IdemKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200)]


@router.get("/v1/customers/{external_id}/loyalty", response_model=LoyaltyOut, responses={404: {}})
def get_loyalty(
    external_id: CustomerPath, caller: ReadCaller, session: SessionDep, now: NowDep
) -> dict[str, Any]:
    return service.summary(session, customers.get(session, caller, external_id), now)


@router.get(
    "/v1/customers/{external_id}/ledger", response_model=Page[StatementLine], responses={404: {}}
)
def get_ledger(
    external_id: CustomerPath,
    caller: ReadCaller,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Page[StatementLine]:
    customer = customers.get(session, caller, external_id)
    rows = service.statement(session, customer, after_id=decode_cursor(cursor), limit=limit)
    nxt = encode_cursor(rows[-1]["id"]) if len(rows) == limit else None
    return Page[StatementLine](items=[StatementLine(**r) for r in rows], next_cursor=nxt)


def _redemption_out(session: SessionDep, row: Redemption) -> RedemptionOut:
    voucher = LoyaltyRepository(session).voucher_of(row.id)
    return RedemptionOut(
        id=row.id,
        reward_id=row.reward_id,
        points=row.points,
        status=row.status,
        code=rewards.pretty(voucher.code) if voucher else None,
        voucher_status=voucher.status if voucher else None,
        created_at=row.created_at,
        cancelled_at=row.cancelled_at,
    )


@router.post(
    "/v1/customers/{external_id}/redemptions",
    response_model=RedemptionOut,
    status_code=201,
    responses={
        200: {"description": "Replay"},
        404: {"description": "Unknown reward"},
        409: {"description": "Not enough points, out of stock, limit reached"},
    },
)
def redeem(
    external_id: CustomerPath,
    body: RedemptionIn,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
    response: Response,
    key: IdemKey,
) -> RedemptionOut:
    customer = customers.get(session, caller, external_id)
    row, created = rewards.redeem(session, caller, customer, body.reward_id, key, now)
    response.status_code = 201 if created else 200
    return _redemption_out(session, row)


@router.post(
    "/v1/redemptions/{redemption_id}/cancel",
    response_model=RedemptionOut,
    responses={404: {}, 409: {"description": "The code was already used"}},
)
def cancel_redemption(
    redemption_id: Id, caller: WriteCaller, session: SessionDep, now: NowDep
) -> RedemptionOut:
    row = rewards.cancel(session, caller, redemption_id, now)
    session.refresh(row)
    return _redemption_out(session, row)


@router.post(
    "/v1/customers/{external_id}/points/adjustments",
    response_model=AdjustmentOut,
    status_code=201,
    responses={404: {}, 409: {"description": "Not enough points"}},
)
def adjust(
    external_id: CustomerPath,
    body: AdjustmentIn,
    caller: AdminCaller,
    session: SessionDep,
    now: NowDep,
    key: IdemKey,
) -> AdjustmentOut:
    customer = customers.get(session, caller, external_id)
    event = rewards.adjust(session, caller, customer, body.points, body.reason, key, now)
    return AdjustmentOut(
        id=event.id,
        points=event.payload["points"],
        reason=event.payload["reason"],
        available=service.available_points(session, customer, now),
    )


@router.post("/v1/rewards", response_model=RewardOut, status_code=201)
def create_reward(body: RewardIn, caller: AdminCaller, session: SessionDep, now: NowDep) -> Any:
    return rewards.create_reward(session, caller, body.model_dump(), now)


@router.get("/v1/rewards", response_model=list[RewardOut])
def list_rewards(caller: ReadCaller, session: SessionDep, now: NowDep) -> Any:
    return rewards.visible_rewards(session, caller, now)


@router.get("/v1/loyalty/rules")
def get_rules(caller: ReadCaller, session: SessionDep, now: NowDep) -> dict[str, Any]:
    return members.scale_at(session, caller.programme_id, now).model_dump(mode="json")


@router.put("/v1/loyalty/rules", responses={422: {"description": "The scale does not validate"}})
def put_rules(
    caller: AdminCaller, session: SessionDep, now: NowDep, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    try:
        scale = config.parse(body)
    except config.ScaleError as exc:
        raise InvalidInput(
            str(exc), fields=[{"field": loc, "message": msg} for _, loc, msg in exc.errors]
        ) from exc
    members.set_scale(session, caller.programme_id, scale, now)
    return scale.model_dump(mode="json")


@router.post("/v1/loyalty/simulate", response_model=SimulateOut, responses={404: {}})
def simulate(
    body: SimulateIn, caller: ReadCaller, session: SessionDep, now: NowDep
) -> dict[str, Any]:
    if body.event is not None:
        return service.simulate_event(session, caller, body.event.type, now)
    assert body.order is not None
    o = body.order
    customer = customers.get(session, caller, o.customer_id) if o.customer_id else None
    facts = service._facts(
        o.lines, o.shipping, o.discounts, o.tax, o.currency.upper(), o.channel, o.placed_at or now
    )
    return service.simulate(session, caller, customer, facts, now)


@router.get("/v1/programme/settlement")
def get_settlement(
    caller: AdminCaller,
    session: SessionDep,
    now: NowDep,
    start: Annotated[UtcDatetime | None, Query(alias="from")] = None,
    end: Annotated[UtcDatetime | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    start, end = window(start, end, now)
    return reports.settlement(session, caller.programme_id, start, end)


@router.get("/v1/programme/liability")
def get_liability(caller: AdminCaller, session: SessionDep, now: NowDep) -> dict[str, Any]:
    return reports.liability(session, caller.programme_id, now)
