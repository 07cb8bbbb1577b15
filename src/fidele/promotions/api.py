"""HTTP endpoints of promotions: coupons, automatic promotions, gift cards, wallet, referral and
the checkout evaluate/confirm/cancel API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.convertors import StringConvertor, register_url_convertor

from fidele.customers import service as customers
from fidele.deps import (
    ERRORS,
    AdminCaller,
    NowDep,
    OneHopRoute,
    ReadCaller,
    SessionDep,
    WriteCaller,
    writes,
)
from fidele.errors import NotFound
from fidele.kit.pagination import MAX_LIMIT, Cursor, Page, decode_cursor, encode_cursor
from fidele.kit.schemas import Currency, ExternalId, Id
from fidele.orders import service as orders
from fidele.promotions import coupons, giftcards, referrals, rewards, service, wallet
from fidele.promotions.config import PromotionConfig
from fidele.promotions.loyalty_port import LoyaltyPort, default_loyalty
from fidele.promotions.models import Coupon
from fidele.promotions.schemas import (
    BatchIn,
    BatchOut,
    CheckoutIn,
    CheckoutOut,
    ConfirmIn,
    CouponIn,
    CouponOut,
    GiftCardIn,
    GiftCardOut,
    InvitationIn,
    PromotionIn,
    ReferralOut,
    WalletOut,
)

router = APIRouter(responses=ERRORS, route_class=OneHopRoute)


async def get_loyalty(request: Request) -> LoyaltyPort:
    """The loyalty port (tests and integrations may put another on ``app.state.loyalty``)."""
    return getattr(request.app.state, "loyalty", default_loyalty)


LoyaltyDep = Annotated[LoyaltyPort, Depends(get_loyalty)]


class _SessionConvertor(StringConvertor):
    """A checkout session id (32 hex digits) in a route: GET /v1/checkout/evaluate is then no
    session lookup but a 405 (only POST is there), as the schema says."""

    regex = "[0-9a-f]{32}"


register_url_convertor("session", _SessionConvertor())
SessionId = Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="as evaluate returned it")]


def _out(c: Coupon) -> CouponOut:
    return CouponOut.of(c)


@router.post("/v1/coupons", response_model=CouponOut, status_code=201, tags=["coupons"])
def create_coupon(
    body: CouponIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> CouponOut:
    return _out(coupons.create(session, caller, body, now))


@router.post("/v1/coupons/batches", response_model=BatchOut, status_code=201, tags=["coupons"])
def create_batch(body: BatchIn, caller: WriteCaller, session: SessionDep, now: NowDep) -> BatchOut:
    made = coupons.create_batch(session, caller, body, now)
    return BatchOut(
        batch=made[0].batch or "", count=len(made), codes=[c.display_code or "" for c in made]
    )


@router.get("/v1/coupons", response_model=Page[CouponOut], tags=["coupons"])
def list_coupons(
    caller: ReadCaller,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Page[CouponOut]:
    rows = coupons.listing(session, caller, after_id=decode_cursor(cursor), limit=limit)
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return Page[CouponOut](items=[_out(c) for c in rows], next_cursor=nxt)


@router.get(
    "/v1/coupons/next-order/{order_id}",
    response_model=CouponOut,
    tags=["coupons"],
    responses={404: {}},
)
def next_order_coupon(order_id: ExternalId, caller: ReadCaller, session: SessionDep) -> CouponOut:
    order = orders.get(session, caller, order_id)
    coupon = rewards.next_order_coupon(session, caller.merchant_id, order.id)
    if coupon is None:
        raise NotFound(f"order {order_id!r} has no next-order coupon")
    return _out(coupon)


@router.get(
    "/v1/coupons/{coupon_id:int}", response_model=CouponOut, tags=["coupons"], responses={404: {}}
)
def get_coupon(coupon_id: Id, caller: ReadCaller, session: SessionDep) -> CouponOut:
    return _out(coupons.get(session, caller, coupon_id))


@router.post(
    "/v1/coupons/{coupon_id:int}/disable",
    response_model=CouponOut,
    tags=["coupons"],
    responses={404: {}},
)
def disable_coupon(coupon_id: Id, caller: WriteCaller, session: SessionDep) -> CouponOut:
    return _out(coupons.disable(session, caller, coupon_id))


@router.post("/v1/promotions", response_model=CouponOut, status_code=201, tags=["coupons"])
def create_promotion(
    body: PromotionIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> CouponOut:
    return _out(coupons.create_promotion(session, caller, body, now))


@router.get("/v1/promotions/settings", response_model=PromotionConfig, tags=["coupons"])
def get_settings(caller: ReadCaller, session: SessionDep) -> PromotionConfig:
    return coupons.config(session, caller.merchant_id)


@router.put("/v1/promotions/settings", response_model=PromotionConfig, tags=["coupons"])
def put_settings(
    body: PromotionConfig,
    caller: AdminCaller,
    session: SessionDep,
    now: NowDep,
    loyalty: LoyaltyDep,
) -> PromotionConfig:
    return coupons.set_config(session, caller, body, now, loyalty=loyalty)


@router.post("/v1/gift-cards", response_model=GiftCardOut, status_code=201, tags=["gift cards"])
def create_gift_card(
    body: GiftCardIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> GiftCardOut:
    made = giftcards.issue(
        session,
        programme_id=caller.programme_id,
        merchant_id=caller.merchant_id,
        amount=body.amount,
        currency=body.currency,
        now=now,
        recipient_email=body.recipient_email,
        message=body.message,
    )
    return giftcards.view(session, made.card, now, code=made.code)


@router.get(
    "/v1/gift-cards/{code}",
    response_model=GiftCardOut,
    tags=["gift cards"],
    responses={404: {}, 429: {"description": "Too many failed code lookups this minute"}},
)
def get_gift_card(code: str, caller: ReadCaller, session: SessionDep, now: NowDep) -> GiftCardOut:
    return giftcards.lookup(session, caller, code, now)


@router.get(
    "/v1/wallets/{customer_id}", response_model=WalletOut, tags=["wallet"], responses={404: {}}
)
@writes  # the wallet's accounts are made on first sight
def get_wallet(
    customer_id: ExternalId,
    caller: ReadCaller,
    session: SessionDep,
    now: NowDep,
    currency: Currency = "EUR",
) -> WalletOut:
    customer = customers.get(session, caller, customer_id)
    return WalletOut(
        customer_id=customer_id,
        currency=currency,
        balance=wallet.balance(session, customer, currency, now),
    )


@router.post(
    "/v1/checkout/evaluate",
    response_model=CheckoutOut,
    status_code=201,
    tags=["checkout"],
    responses={
        409: {"description": "More points, wallet or card money than available"},
        429: {"description": "Too many failed code lookups"},
    },
)
def evaluate(
    body: CheckoutIn, caller: WriteCaller, session: SessionDep, now: NowDep, loyalty: LoyaltyDep
) -> CheckoutOut:
    return service.view(service.evaluate(session, caller, body, now, loyalty=loyalty))


@router.get(
    "/v1/checkout/{session_id:session}",
    response_model=CheckoutOut,
    tags=["checkout"],
    responses={404: {}},
)
def get_session(session_id: SessionId, caller: ReadCaller, session: SessionDep) -> CheckoutOut:
    return service.view(service.get(session, caller, session_id))


@router.post(
    "/v1/checkout/{session_id}/confirm",
    response_model=CheckoutOut,
    tags=["checkout"],
    responses={404: {}, 409: {"description": "Closed, confirmed elsewhere, or a code ran out"}},
)
def confirm(
    session_id: SessionId,
    body: ConfirmIn,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
    loyalty: LoyaltyDep,
) -> CheckoutOut:
    return service.view(
        service.confirm(session, caller, session_id, body.order_id, now, loyalty=loyalty)
    )


@router.post(
    "/v1/checkout/{session_id}/cancel",
    response_model=CheckoutOut,
    tags=["checkout"],
    responses={404: {}, 409: {}},
)
def cancel(
    session_id: SessionId, caller: WriteCaller, session: SessionDep, now: NowDep
) -> CheckoutOut:
    return service.view(service.cancel(session, caller, session_id, now))


@router.get(
    "/v1/referrals/customers/{customer_id}",
    response_model=ReferralOut,
    tags=["referral"],
    responses={404: {}},
)
@writes  # the customer's referral code is made on first sight
def referral(
    customer_id: ExternalId, caller: ReadCaller, session: SessionDep, now: NowDep
) -> ReferralOut:
    return referrals.view(session, caller, customer_id, now)


@router.get("/v1/referrals/stats", tags=["referral"])
def referral_stats(caller: ReadCaller, session: SessionDep) -> dict[str, int]:
    return referrals.programme_stats(session, caller)


@router.post(
    "/v1/referrals/invitations",
    status_code=201,
    tags=["referral"],
    responses={200: {"description": "Already recorded"}, 404: {}},
)
def invite(
    body: InvitationIn, caller: WriteCaller, session: SessionDep, now: NowDep, response: Response
) -> dict[str, bool]:
    created = referrals.invite(session, caller, body, now)
    response.status_code = 201 if created else 200
    return {"recorded": True, "created": created}
