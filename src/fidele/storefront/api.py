"""``/storefront/v1/``: the shop's customer, with a token the shop signed (never an API key);
``/storefront/widget.js`` and the demo page; ``/v1/storefront/settings`` for the merchant."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBearer
from sqlalchemy.orm import Session

from fidele.deps import ERRORS, AdminCaller, NowDep, OneHopRoute, ReadCaller, SessionDep, writes
from fidele.errors import NotFound, Unauthorized
from fidele.storefront import demo, domain, pages, service
from fidele.storefront.limits import Limiter
from fidele.storefront.schemas import (
    Activity,
    HistoryLine,
    MeOut,
    ProgramOut,
    RedeemIn,
    RedemptionView,
    ReferralView,
    RewardView,
    SecretOut,
    SettingsIn,
    SettingsOut,
)

WIDGET = Path(__file__).with_name("widget.js")
PREFIX = "/storefront/v1"
SHOPPER_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, forged or expired customer token, or a merchant API key"},
    404: {"description": "The customer is not known to the programme yet"},
    422: ERRORS[422],
    429: {"description": "Too many requests from this customer or address; see Retry-After"},
    503: ERRORS[503],
}
# Declares the customer token in the OpenAPI document (a scheme of its own: the API key's
# "bearer" is refused here). auto_error=False: a missing token gets fidele's 401.
token_scheme = HTTPBearer(
    scheme_name="storefront",
    description="A customer token signed by the shop (see the README, storefront widget)",
    auto_error=False,
)
router = APIRouter(route_class=OneHopRoute)
shop = APIRouter(
    tags=["storefront"],
    responses=SHOPPER_ERRORS,
    route_class=OneHopRoute,
    dependencies=[Depends(token_scheme)],
)
public = APIRouter(tags=["storefront"], responses=SHOPPER_ERRORS, route_class=OneHopRoute)

MerchantQ = Annotated[
    int | None,
    Query(ge=1, le=2**53 - 1, description="The widget's merchant; the token must be for it"),
]
LangQ = Annotated[
    str | None, Query(max_length=20, description="en or fr (default: Accept-Language)")
]
IdemKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200)]


def _limiter(request: Request) -> Limiter:
    state = request.app.state
    if not hasattr(state, "storefront_limiter"):
        state.storefront_limiter = Limiter()
    limiter: Limiter = state.storefront_limiter
    return limiter


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


def _lang(request: Request, lang: str | None) -> str:
    return domain.language(lang or request.headers.get("accept-language"))


def _token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send the customer token as 'Authorization: Bearer <token>'")
    return token.strip()


def _shopper(request: Request, session: Session, merchant: int | None) -> service.Shopper:
    """Counted per address, then checked, then counted per customer (a forged token cannot
    spend a real customer's allowance)."""
    limiter, now = _limiter(request), time.time()
    limiter.hit([("address", _address(request))], now)
    shopper = service.authenticate(
        session,
        _token(request),
        server_secret=request.app.state.settings.secret_key,
        now=request.app.state.clock.now(),
        merchant_id=merchant,
    )
    limiter.hit([("customer", f"{shopper.caller.merchant_id}:{shopper.customer.id}")], now)
    return shopper


@shop.get(f"{PREFIX}/me", response_model=MeOut, summary="The customer's points, tier and expiry")
def get_me(
    request: Request,
    session: SessionDep,
    now: NowDep,
    merchant: MerchantQ = None,
    lang: LangQ = None,
) -> dict[str, Any]:
    shopper = _shopper(request, session, merchant)
    return service.me(session, shopper, now, _lang(request, lang))


@shop.get(
    f"{PREFIX}/rewards",
    response_model=list[RewardView],
    summary="Rewards: those affordable now first, then the others with the points to go",
)
def get_rewards(
    request: Request,
    session: SessionDep,
    now: NowDep,
    merchant: MerchantQ = None,
    lang: LangQ = None,
) -> list[dict[str, Any]]:
    shopper = _shopper(request, session, merchant)
    return service.reward_list(session, shopper, now, _lang(request, lang))


@shop.post(
    f"{PREFIX}/redemptions",
    response_model=RedemptionView,
    status_code=201,
    summary="Redeem a reward: the code to paste at checkout",
    responses={
        200: {"description": "Replay of the same Idempotency-Key"},
        409: {"description": "Not enough points, out of stock, limit reached"},
    },
)
def post_redemption(
    request: Request,
    body: RedeemIn,
    session: SessionDep,
    now: NowDep,
    response: Response,
    key: IdemKey,
    merchant: MerchantQ = None,
    lang: LangQ = None,
) -> dict[str, Any]:
    shopper = _shopper(request, session, merchant)
    out, created = service.redeem(session, shopper, body.reward_id, key, now, _lang(request, lang))
    response.status_code = 201 if created else 200
    return out


@shop.get(f"{PREFIX}/history", response_model=list[HistoryLine], summary="Readable statement")
def get_history(
    request: Request,
    session: SessionDep,
    merchant: MerchantQ = None,
    lang: LangQ = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    shopper = _shopper(request, session, merchant)
    return service.history(session, shopper, _lang(request, lang), limit)


@shop.get(
    f"{PREFIX}/referral",
    response_model=ReferralView,
    summary="Referral link and code, friends joined, rewards earned",
)
@writes  # the customer's referral code is made on first sight
def get_referral(
    request: Request, session: SessionDep, now: NowDep, merchant: MerchantQ = None
) -> dict[str, Any]:
    shopper = _shopper(request, session, merchant)
    return service.referral(session, shopper, now)


@shop.get(f"{PREFIX}/activities", response_model=list[Activity], summary="Ways to earn points")
def get_activities(
    request: Request,
    session: SessionDep,
    now: NowDep,
    merchant: MerchantQ = None,
    lang: LangQ = None,
) -> list[dict[str, Any]]:
    shopper = _shopper(request, session, merchant)
    return service.activities(session, shopper.caller.programme_id, now, _lang(request, lang))


@public.get(
    f"{PREFIX}/program",
    response_model=ProgramOut,
    summary="The programme as anyone may read it (no token)",
    responses={404: {"description": "Unknown merchant"}},
)
def get_program(
    request: Request,
    session: SessionDep,
    now: NowDep,
    merchant: Annotated[int, Query(ge=1, le=2**53 - 1)],
    lang: LangQ = None,
) -> dict[str, Any]:
    _limiter(request).hit([("address", _address(request))], time.time())
    return service.program(session, merchant, now, _lang(request, lang))


router.include_router(shop)
router.include_router(public)
router.include_router(pages.router)  # the dashboard's storefront settings page


# -- the merchant's side (API key)


@router.get(
    "/v1/storefront/settings", response_model=SettingsOut, tags=["storefront"], responses=ERRORS
)
def get_settings(caller: ReadCaller, session: SessionDep) -> dict[str, Any]:
    return service.view_settings(session, caller.merchant_id)


@router.put(
    "/v1/storefront/settings", response_model=SettingsOut, tags=["storefront"], responses=ERRORS
)
def put_settings(
    body: SettingsIn, caller: AdminCaller, session: SessionDep, now: NowDep
) -> dict[str, Any]:
    """The shop's origins (CORS: only they may call the storefront endpoints from a browser)
    and the widget's colours, launcher text and sign-up link."""
    return service.update_settings(session, caller.merchant_id, body, now)


@router.post(
    "/v1/storefront/secret",
    response_model=SecretOut,
    status_code=201,
    tags=["storefront"],
    responses=ERRORS,
)
def post_secret(
    request: Request, caller: AdminCaller, session: SessionDep, now: NowDep
) -> dict[str, Any]:
    """A new storefront secret, shown once: the old one stops verifying tokens at once."""
    secret = service.rotate_secret(
        session, caller.merchant_id, request.app.state.settings.secret_key, now
    )
    return {"merchant_id": caller.merchant_id, "secret": secret}


# -- the widget and the demo shop's page


@router.get("/storefront/widget.js", include_in_schema=False)
async def widget() -> Response:
    return Response(
        WIDGET.read_bytes(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/storefront/demo", include_in_schema=False)
@writes  # the first visit may make the demo merchant's secret
def demo_page(request: Request, session: SessionDep, now: NowDep, lang: str = "en") -> HTMLResponse:
    found = service.demo_page(session, request.app.state.settings.secret_key, now)
    if found is None:
        raise NotFound("no demo shop here: run `fidele demo` first")
    return HTMLResponse(
        demo.page(found, domain.language(lang)), headers={"Content-Security-Policy": demo.CSP}
    )
