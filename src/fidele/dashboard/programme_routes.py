"""The programme pages: ``/loyalty`` (earning scale, simulation, tiers, rewards, budgets,
liability, coalition settlement), ``/promotions`` (coupons, batches, automatic promotions,
gift cards, next-order coupons, referral) and ``/settings/shop`` (webhooks, connectors,
locale, currency, timezone). Thin, as :mod:`routes`: parse the form, call the domain's
service through :func:`web.run`, record the change, render."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import ValidationError

from fidele.dashboard import domain as dash
from fidele.dashboard import programme as views
from fidele.dashboard import web
from fidele.dashboard.web import Ctx, Redirect
from fidele.deps import OneHopRoute
from fidele.errors import InvalidInput, NotFound
from fidele.ingest.connectors import signing
from fidele.loyalty import config, members, rewards
from fidele.loyalty.schemas import RewardIn
from fidele.promotions import coupons, giftcards
from fidele.promotions.config import PromotionConfig
from fidele.promotions.schemas import BatchIn, CouponIn, PromotionIn
from fidele.tenancy import service as tenancy
from fidele.webhooks import service as webhooks

router = APIRouter(include_in_schema=False, route_class=OneHopRoute)


def _invalid(exc: ValidationError) -> InvalidInput:
    """A schema's first complaint, naming its field as the API's 422 does."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "form"
    return InvalidInput(str(first["msg"]).removeprefix("Value error, "), field=where)


def _days(form: dict[str, str], ctx: Ctx) -> Any:
    days = views.whole(form, "days", optional=True)
    if days is None:
        return None
    if not 1 <= days <= 3650:
        raise InvalidInput("valid for 1 to 3650 days", field="days")
    return ctx.now + timedelta(days=days)


# --- loyalty --------------------------------------------------------------------------------


@router.get("/loyalty")
async def loyalty_page(request: Request) -> Response:
    query = {k: v[:100] for k, v in request.query_params.items() if k.startswith("sim_")}

    def work(ctx: Ctx) -> Any:
        try:
            return "loyalty.html", views.loyalty_page(ctx, query)
        except (InvalidInput, NotFound) as exc:  # a simulation typed wrong: the error by it
            fields = exc.extra.get("fields") or [{"field": "sim_customer"}]
            errors = {fields[0]["field"]: str(exc.detail)}
            return "loyalty.html", views.loyalty_page(ctx, {}, errors=errors, sim_query=query)

    return await web.run(request, work)


@router.post("/loyalty/scale")
async def save_scale(request: Request) -> Response:
    """``PUT /v1/loyalty/rules`` from the form: the same validation (``config.parse``), each
    error shown next to its field, and nothing saved unless all of it validates."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> Any:
        current = members.scale_at(ctx.session, ctx.programme.id, ctx.now)
        try:
            scale = config.parse(views.scale_from_form(current, form))
        except config.ScaleError as exc:
            errors = views.scale_errors(exc, form)
            data = views.loyalty_page(ctx, {}, form=form, errors=errors)
            return web.render(request, "loyalty.html", data, fmt=ctx.fmt, ctx=ctx, status=422)
        members.set_scale(ctx.session, ctx.programme.id, scale, ctx.now)
        before, after = current.settings.model_dump(), scale.settings.model_dump()
        changed = {k: [before[k], v] for k, v in after.items() if before[k] != v}
        ctx.record(
            "loyalty.scale_changed",
            {
                "settings": changed,
                "tiers": [t.name for t in scale.tiers.levels],
                "rules": [r.id for r in scale.rules],
            },
        )
        raise Redirect("/loyalty", ("ok", ctx.fmt.t("Earning scale saved.")))

    return await web.run(request, work, write=True, scope="admin", form=form, back="/loyalty")


def _reward(form: dict[str, str], ctx: Ctx) -> dict[str, Any]:
    try:
        data = RewardIn(**views.reward_data(form, ctx.programme.currency))
    except ValidationError as exc:
        raise _invalid(exc) from None
    return data.model_dump(exclude={"tiers", "starts_at", "ends_at"})


@router.post("/loyalty/rewards")
async def create_reward(request: Request) -> Response:
    """``POST /v1/rewards`` from the form (admin, as the API)."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        reward = rewards.create_reward(ctx.session, ctx.caller, _reward(form, ctx), ctx.now)
        ctx.record(
            "reward.created",
            {"reward": reward.id, "name": reward.name, "points_cost": reward.points_cost},
        )
        raise Redirect("/loyalty#rewards", ("ok", ctx.fmt.t("Reward created.")))

    return await web.run(request, work, write=True, scope="admin", form=form, back="/loyalty")


@router.post("/loyalty/rewards/{reward_id:int}")
async def edit_reward(request: Request, reward_id: int) -> Response:
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        data = _reward(form, ctx)
        reward = rewards.update_reward(ctx.session, ctx.caller, reward_id, data)
        ctx.record(
            "reward.changed",
            {"reward": reward.id, **{k: data[k] for k in ("name", "points_cost", "stock")}},
        )
        raise Redirect("/loyalty#rewards", ("ok", ctx.fmt.t("Reward saved.")))

    return await web.run(request, work, write=True, scope="admin", form=form, back="/loyalty")


# --- promotions -----------------------------------------------------------------------------


@router.get("/promotions")
async def promotions_page(request: Request, batch: str = "") -> Response:
    def work(ctx: Ctx) -> Any:
        return "promotions.html", views.promotions_page(ctx, new_batch=batch[:40])

    return await web.run(request, work)


def _offer(form: dict[str, str], ctx: Ctx) -> dict[str, Any]:
    kind = form.get("kind", "")
    value = views.offer_value(kind, form.get("value", ""), ctx.programme.currency)
    conditions = {}
    if form.get("min_subtotal", "").strip():
        conditions["min_subtotal"] = views.minor(
            form["min_subtotal"], ctx.programme.currency, "min_subtotal"
        )
    return {
        "kind": kind,
        "value": value,
        "name": form.get("name", "").strip()[:200] or None,
        "ends_at": _days(form, ctx),
        "conditions": conditions,
    }


@router.post("/promotions/coupons")
async def create_coupon(request: Request) -> Response:
    """``POST /v1/coupons`` from the form."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        try:
            data = CouponIn(
                **_offer(form, ctx),
                code=form.get("code", "").strip() or None,
                usage_limit=views.whole(form, "usage_limit", optional=True),
                per_customer_limit=views.whole(form, "per_customer_limit", optional=True),
            )
        except ValidationError as exc:
            raise _invalid(exc) from None
        coupon = coupons.create(ctx.session, ctx.caller, data, ctx.now)
        ctx.record("coupon.created", {"coupon": coupon.id, "code": coupon.display_code})
        text = f"{ctx.fmt.t('Coupon created:')} {coupon.display_code}"
        raise Redirect("/promotions#coupons", ("ok", text))

    return await web.run(
        request, work, write=True, scope="write", form=form, back="/promotions#coupons"
    )


@router.post("/promotions/batches")
async def create_batch(request: Request) -> Response:
    """``POST /v1/coupons/batches`` from the form; the page then offers the CSV."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        try:
            data = BatchIn(
                **_offer(form, ctx),
                count=views.whole(form, "count"),
                usage_limit=views.whole(form, "usage_limit", optional=True) or 1,
            )
        except ValidationError as exc:
            raise _invalid(exc) from None
        made = coupons.create_batch(ctx.session, ctx.caller, data, ctx.now)
        batch = made[0].batch or ""
        ctx.record("coupon.batch_created", {"batch": batch, "count": len(made)})
        text = ctx.fmt.t("{count} codes generated.", count=len(made))
        raise Redirect(f"/promotions?batch={batch}#batches", ("ok", text))

    return await web.run(
        request, work, write=True, scope="write", form=form, back="/promotions#batches"
    )


@router.get("/promotions/batches/{batch}.csv")
async def batch_csv(request: Request, batch: str) -> Response:
    def work(ctx: Ctx) -> Response:
        return PlainTextResponse(
            views.batch_csv(ctx, batch[:40]),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="coupons-{batch[:40]}.csv"'},
        )

    return await web.run(request, work)


@router.post("/promotions/coupons/{coupon_id:int}/disable")
async def disable_coupon(request: Request, coupon_id: int) -> Response:
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        coupon = coupons.disable(ctx.session, ctx.caller, coupon_id)
        ctx.record("coupon.disabled", {"coupon": coupon.id, "code": coupon.display_code})
        raise Redirect("/promotions#coupons", ("ok", ctx.fmt.t("Coupon disabled.")))

    return await web.run(
        request, work, write=True, scope="write", form=form, back="/promotions#coupons"
    )


@router.post("/promotions/automatic")
async def create_promotion(request: Request) -> Response:
    """``POST /v1/promotions`` from the form: a discount applied with no code."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        rule = form.get("rule") or None
        try:
            data = PromotionIn(
                **_offer(form, ctx),
                rule=rule,
                buy=views.whole(form, "buy", optional=True) or 0,
                get=views.whole(form, "get", optional=True) or 0,
                product_id=form.get("product_id", "").strip() or None,
            )
        except ValidationError as exc:
            raise _invalid(exc) from None
        made = coupons.create_promotion(ctx.session, ctx.caller, data, ctx.now)
        ctx.record("promotion.created", {"promotion": made.id, "kind": made.kind})
        raise Redirect("/promotions#automatic", ("ok", ctx.fmt.t("Promotion created.")))

    return await web.run(
        request, work, write=True, scope="write", form=form, back="/promotions#automatic"
    )


@router.post("/promotions/gift-cards")
async def issue_gift_card(request: Request) -> Response:
    """``POST /v1/gift-cards`` from the form; the code is shown on this answer only."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> Any:
        currency = ctx.programme.currency
        amount = views.minor(form.get("amount", ""), currency, "amount")
        if amount <= 0:
            raise InvalidInput("the amount must be positive", field="amount")
        email = form.get("recipient_email", "").strip() or None
        made = giftcards.issue(
            ctx.session,
            programme_id=ctx.programme.id,
            merchant_id=ctx.merchant.id,
            amount=amount,
            currency=currency,
            now=ctx.now,
            recipient_email=email,
            source_ref=f"dashboard:{form.get('form_id') or dash.new_token()}",
        )
        ctx.record("gift_card.issued", {"gift_card": made.card.id, "amount": amount})
        return "promotions.html", views.promotions_page(ctx, new_card=made)

    return await web.run(
        request, work, write=True, scope="write", form=form, back="/promotions#gift-cards"
    )


@router.post("/promotions/gift-cards/lookup")
async def look_up_gift_card(request: Request) -> Response:
    """``GET /v1/gift-cards/{code}``: a read (any role), under the same lookup limit; a POST
    because failed lookups are counted."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> Any:
        code = form.get("code", "").strip()[:60]
        card = giftcards.lookup(ctx.session, views.lookup_caller(ctx), code, ctx.now)
        return "promotions.html", views.promotions_page(ctx, found_card=card)

    return await web.run(
        request, work, write=True, scope="read", form=form, back="/promotions#gift-cards"
    )


@router.post("/promotions/settings")
async def save_promotion_settings(request: Request) -> Response:
    """``PUT /v1/promotions/settings`` (admin): next-order schedule and referral."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        current = coupons.config(ctx.session, ctx.merchant.id)
        try:
            data = PromotionConfig.model_validate(views.next_order_from_form(current, form))
        except ValidationError as exc:
            raise _invalid(exc) from None
        coupons.set_config(ctx.session, ctx.caller, data, ctx.now)
        ctx.record(
            "promotions.settings_changed",
            {"next_order": data.next_order.model_dump(), "referral": data.referral.model_dump()},
        )
        raise Redirect("/promotions#next-order", ("ok", ctx.fmt.t("Settings saved.")))

    return await web.run(request, work, write=True, scope="admin", form=form, back="/promotions")


# --- shop settings --------------------------------------------------------------------------


@router.get("/settings/shop")
async def shop_page(request: Request) -> Response:
    return await web.run(request, lambda ctx: ("settings_shop.html", views.shop_page(ctx)))


@router.post("/settings/shop/regional")
async def save_regional(request: Request) -> Response:
    form = await web.read_form(request)

    def work(ctx: Ctx) -> Response:
        if not views.is_owner(ctx):  # the settings are the programme's, shared in a coalition
            return web.refused(request, ctx.fmt, ctx, "Only the programme's owner can change this.")
        values = {k: form.get(k, "").strip()[:64] for k in ("locale", "currency", "timezone")}
        values["currency"] = values["currency"].upper()
        tenancy.set_regional(ctx.session, ctx.programme.id, **values)
        ctx.record("shop.regional_changed", values)
        raise Redirect("/settings/shop", ("ok", ctx.fmt.t("Settings saved.")))

    return await web.run(
        request, work, write=True, scope="admin", form=form, back="/settings/shop#regional"
    )


@router.post("/settings/shop/webhooks")
async def create_webhook(request: Request) -> Response:
    """``POST /v1/webhooks/endpoints`` from the form (admin, as the API)."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        topics = [t for t in views.TOPICS if form.get(f"topic_{t}")]
        row = webhooks.create(
            ctx.session,
            merchant_id=ctx.merchant.id,
            url=form.get("url", "").strip()[:2000],
            topics=topics,
            now=ctx.now,
            allow_private=request.app.state.settings.private_webhooks_allowed,
        )
        ctx.record("webhook.created", {"endpoint": row.id, "url": row.url, "topics": topics})
        raise Redirect("/settings/shop#webhooks", ("ok", ctx.fmt.t("Webhook endpoint added.")))

    return await web.run(
        request, work, write=True, scope="admin", form=form, back="/settings/shop#webhooks"
    )


@router.post("/settings/shop/webhooks/{endpoint_id:int}/disable")
async def disable_webhook(request: Request, endpoint_id: int) -> Response:
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        webhooks.deactivate(ctx.session, merchant_id=ctx.merchant.id, endpoint_id=endpoint_id)
        ctx.record("webhook.disabled", {"endpoint": endpoint_id})
        raise Redirect("/settings/shop#webhooks", ("ok", ctx.fmt.t("Done.")))

    return await web.run(
        request, work, write=True, scope="admin", form=form, back="/settings/shop#webhooks"
    )


@router.post("/settings/shop/connectors/{platform}")
async def set_connector_secret(request: Request, platform: str) -> Response:
    """The platform's signing secret (``fidele merchant connector-secret``), stored
    encrypted; it is never shown again."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        signing.set_platform_secret(
            ctx.session,
            ctx.merchant,
            platform,
            form.get("secret", "")[:400],
            server_secret=request.app.state.settings.secret_key,
            now=ctx.now,
        )
        ctx.record("connector.secret_set", {"platform": platform})
        raise Redirect("/settings/shop#connectors", ("ok", ctx.fmt.t("Secret saved.")))

    return await web.run(
        request, work, write=True, scope="admin", form=form, back="/settings/shop#connectors"
    )


@router.post("/settings/shop/webhook-secret")
async def rotate_webhook_secret(request: Request) -> Response:
    """A new fidele webhook secret, shown on this answer only (only its salt is stored)."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> Any:
        secret = tenancy.rotate_webhook_secret(ctx.merchant, request.app.state.settings.secret_key)
        ctx.record("webhook.secret_rotated")
        return "settings_shop.html", views.shop_page(ctx, new_secret=secret)

    return await web.run(
        request, work, write=True, scope="admin", form=form, back="/settings/shop#connectors"
    )
