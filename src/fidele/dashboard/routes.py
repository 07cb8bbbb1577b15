"""The dashboard's pages. Thin: parse the form, call :mod:`views` or a domain service through
:func:`web.run` (authentication, CSRF, role, one transaction), render."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from fidele.customers import service as customers
from fidele.dashboard import (
    domain,
    feedback_pages,
    i18n,
    relationship,
    relationship_routes,
    service,
    views,
    web,
)
from fidele.dashboard.web import Ctx, Redirect
from fidele.db.session import transaction
from fidele.deps import OneHopRoute
from fidele.errors import InvalidInput
from fidele.kit.money import unit
from fidele.loyalty import rewards
from fidele.promotions import coupons
from fidele.promotions.schemas import CouponIn
from fidele.tenancy import service as tenancy

router = APIRouter(include_in_schema=False, route_class=OneHopRoute)


def _safe_next(url: str | None) -> str:
    """Only a path of this site (no ``//host``): the login's ``next`` is not an open redirect."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url


# --- signing in and out -----------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str = "/", error: str | None = None) -> Response:
    fmt = web.formats_for(web.language_of(request), None)
    token = request.cookies.get(web.LOGIN_CSRF_COOKIE) or domain.new_token()
    response = web.render(
        request,
        "login.html",
        {"next": _safe_next(next), "error": error},
        fmt=fmt,
        csrf=token,
        status=401 if error else 200,
    )
    web.set_cookie(request, response, web.LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await web.read_form(request)
    fmt = web.formats_for(web.language_of(request), None)
    target = _safe_next(form.get("next"))
    if not domain.tokens_match(request.cookies.get(web.LOGIN_CSRF_COOKIE), form.get("csrf_token")):
        return web.refused(request, fmt, None, "Your session form expired: please try again.")
    email = form.get("email", "").strip().lower()
    client = request.client.host if request.client else "-"
    keys = [f"email:{email}", f"ip:{client}"]
    wait = web.throttle.retry_after(keys)
    if wait:
        message = fmt.t("Too many failed sign-ins: try again in {seconds} seconds.", seconds=wait)
        response = login_page(request, target, message)
        response.status_code = 429
        response.headers["Retry-After"] = str(wait)
        return response

    def check() -> tuple[int, str, str | None] | None:
        with transaction(request.app.state.sessionmaker) as session:
            user = service.authenticate(session, email, form.get("password", ""))
            if user is None:
                return None
            return user.id, user.password_hash, user.language

    found = await run_in_threadpool(check)
    if found is None:
        web.throttle.failed(keys)
        return login_page(request, target, fmt.t("Wrong email or password."))
    web.throttle.succeeded(keys)
    user_id, password_hash, language = found
    secret = request.app.state.settings.secret_key
    cookie = domain.encode_session(secret, user_id, domain.fingerprint(password_hash), time.time())
    response = web.redirect(request, target)
    web.set_cookie(request, response, web.SESSION_COOKIE, cookie, max_age=domain.SESSION_SECONDS)
    response.delete_cookie(web.LOGIN_CSRF_COOKIE, path="/")
    if language:
        web.set_cookie(request, response, web.LANG_COOKIE, language, max_age=365 * 86400)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await web.read_form(request)

    def work(ctx: Ctx) -> Response:
        response = web.redirect(request, "/login")
        response.delete_cookie(web.SESSION_COOKIE, path="/")
        return response

    return await web.run(request, work, write=True, form=form)


@router.post("/language")
async def language(request: Request) -> Response:
    """Switch the interface's language: remembered in a cookie, and on the user's account
    when signed in (then it follows them to any browser)."""
    form = await web.read_form(request)
    chosen = form.get("language", "")
    back = _safe_next(form.get("next"))
    if chosen not in i18n.LANGUAGES:
        chosen = "en"
    if request.cookies.get(web.SESSION_COOKIE):

        def work(ctx: Ctx) -> Response:
            service.set_language(ctx.user, chosen)
            ctx.record("language.changed", {"language": chosen})
            return web.redirect(request, back)

        response = await web.run(request, work, write=True, form=form)
    else:
        fmt = web.formats_for(web.language_of(request), None)
        token = request.cookies.get(web.LOGIN_CSRF_COOKIE)
        if not domain.tokens_match(token, form.get("csrf_token")):
            return web.refused(request, fmt, None, "Your session form expired: please try again.")
        response = web.redirect(request, back)
    if response.status_code == 303:
        web.set_cookie(request, response, web.LANG_COOKIE, chosen, max_age=365 * 86400)
    return response


# --- pages ----------------------------------------------------------------------------------


async def overview(request: Request) -> Response:
    """``/`` for a browser (``app.index`` answers API clients with JSON)."""

    def work(ctx: Ctx) -> Any:
        return "overview.html", {
            **views.overview(ctx),
            "journeys": relationship.journeys_brought(ctx),
        }

    return await web.run(request, work)


@router.get("/customers")
async def customer_list(
    request: Request, q: str = "", after: int = 0, segment: str = ""
) -> Response:
    def work(ctx: Ctx) -> Any:
        return "customers.html", views.customer_list(ctx, q[:200], max(after, 0), segment[:50])

    return await web.run(request, work)


@router.get("/customers/{customer_id:int}")
async def customer_page(request: Request, customer_id: int) -> Response:
    def work(ctx: Ctx) -> Any:
        customer = views.customer_of(ctx, customer_id)
        sections = relationship.customer_sections(ctx, customer)
        opinions = feedback_pages.customer_feedback(ctx, customer)
        return "customer.html", {**views.customer_360(ctx, customer), **sections, **opinions}

    return await web.run(request, work)


def _int(form: dict[str, str], name: str) -> int:
    try:
        return int(form.get(name, "").strip())
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number", field=name) from None


@router.post("/customers/{customer_id:int}/points")
async def adjust_points(request: Request, customer_id: int) -> Response:
    """``POST /v1/customers/{id}/points/adjustments`` from a form (admin, as the API)."""
    form = await web.read_form(request)
    back = f"/customers/{customer_id}"

    def work(ctx: Ctx) -> None:
        customer = views.customer_of(ctx, customer_id)
        points = _int(form, "points")
        reason = form.get("reason", "").strip()[:200]
        if not reason:
            raise InvalidInput("say why the points change", field="reason")
        # the form's one-time token is the idempotency key: a resubmitted form adjusts once
        key = f"dashboard:{form.get('form_id') or domain.new_token()}"
        rewards.adjust(ctx.session, ctx.caller, customer, points, reason, key, ctx.now)
        ctx.record("points.adjusted", {"customer": customer.id, "points": points, "reason": reason})
        raise Redirect(back, ("ok", ctx.fmt.t("Points adjusted.")))

    return await web.run(request, work, write=True, scope="admin", form=form, back=back)


@router.post("/customers/{customer_id:int}/coupons")
async def issue_coupon(request: Request, customer_id: int) -> Response:
    """A single-use coupon for this customer, validated as ``POST /v1/coupons`` validates."""
    form = await web.read_form(request)
    back = f"/customers/{customer_id}"

    def work(ctx: Ctx) -> None:
        customer = views.customer_of(ctx, customer_id)
        kind = form.get("kind", "percent_off")
        value = _int(form, "value")
        days = _int(form, "days")
        if not 1 <= days <= 3650:
            raise InvalidInput("valid for 1 to 3650 days", field="days")
        try:
            data = CouponIn(
                kind=kind,
                value=value * 100
                if kind == "percent_off"
                else value * unit(ctx.programme.currency),
                ends_at=ctx.now + timedelta(days=days),
                name=form.get("name") or None,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInput(str(first["msg"]), field="value") from None
        fields = {f: getattr(data, f) for f in coupons._OFFER_FIELDS}
        coupon = coupons.issue_personal(
            ctx.session,
            programme_id=ctx.programme.id,
            merchant_id=ctx.merchant.id,
            customer_id=customer.id,
            source_ref=f"dashboard:{form.get('form_id') or domain.new_token()}",
            now=ctx.now,
            ends_at=data.ends_at,
            **fields,
        )
        ctx.record(
            "coupon.issued",
            {"customer": customer.id, "coupon": coupon.id, "kind": kind, "value": data.value},
        )
        text = f"{ctx.fmt.t('Coupon issued:')} {coupon.display_code}"
        raise Redirect(back, ("ok", text))

    return await web.run(request, work, write=True, scope="write", form=form, back=back)


@router.post("/customers/{customer_id:int}/erase")
async def erase_customer(request: Request, customer_id: int) -> Response:
    """GDPR erasure (``DELETE /v1/customers/{id}``), after typing ERASE."""
    form = await web.read_form(request)
    back = f"/customers/{customer_id}"

    def work(ctx: Ctx) -> None:
        customer = views.customer_of(ctx, customer_id)
        if form.get("confirm", "").strip().upper() != "ERASE":
            raise InvalidInput(ctx.fmt.t("Type ERASE to confirm the erasure."), field="confirm")
        customers.erase(ctx.session, ctx.caller, customer.external_id, ctx.now)
        ctx.record("customer.erased", {"customer": customer.id})
        raise Redirect("/customers", ("ok", ctx.fmt.t("Customer erased.")))

    return await web.run(request, work, write=True, scope="write", form=form, back=back)


@router.get("/analytics")
async def analytics_page(request: Request) -> Response:
    return await web.run(request, lambda ctx: ("analytics.html", views.analytics_page(ctx)))


@router.get("/analytics/kpis.csv")
async def kpis_csv(request: Request) -> Response:
    def work(ctx: Ctx) -> Response:
        return PlainTextResponse(
            views.kpis_csv(ctx),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="kpis.csv"'},
        )

    return await web.run(request, work)


@router.get("/activity")
async def activity_page(request: Request, before: int | None = None) -> Response:
    def work(ctx: Ctx) -> Any:
        rows = service.activity(ctx.session, ctx.merchant.id, before_id=before, limit=views.PAGE)
        older = rows[-1].id if len(rows) == views.PAGE else None
        return "activity.html", {"rows": rows, "older": older}

    return await web.run(request, work)


# --- settings -------------------------------------------------------------------------------


def _settings(ctx: Ctx, **extra: Any) -> tuple[str, dict[str, Any]]:
    keys = tenancy.list_api_keys(ctx.session, ctx.merchant.id) if ctx.can("admin") else []
    users = service.users_of(ctx.session, ctx.merchant.id)
    return "settings.html", {"keys": keys, "users": users, "roles": list(domain.ROLES), **extra}


@router.get("/settings")
async def settings_page(request: Request) -> Response:
    return await web.run(request, _settings)


@router.post("/settings/api-keys")
async def create_api_key(request: Request) -> Response:
    """A new key, shown on this answer only (stored as a hash)."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> Any:
        scopes = [s for s in ("read", "write", "admin") if form.get(f"scope_{s}")] or ["read"]
        row, key = tenancy.create_api_key(
            ctx.session,
            merchant_id=ctx.merchant.id,
            scopes=scopes,
            now=ctx.now,
            name=(form.get("name") or "").strip()[:200] or None,
        )
        ctx.record("api_key.created", {"prefix": row.prefix, "scopes": row.scopes})
        return _settings(ctx, new_key=key)

    return await web.run(request, work, write=True, scope="admin", form=form, back="/settings")


@router.post("/settings/api-keys/{prefix}/revoke")
async def revoke_api_key(request: Request, prefix: str) -> Response:
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        mine = {k.prefix for k in tenancy.list_api_keys(ctx.session, ctx.merchant.id)}
        if prefix not in mine:  # another merchant's key is as good as unknown
            raise InvalidInput(f"API key {prefix} not found", field="prefix")
        tenancy.revoke_api_key(ctx.session, prefix=prefix, now=ctx.now)
        ctx.record("api_key.revoked", {"prefix": prefix})
        raise Redirect("/settings", ("ok", ctx.fmt.t("Done.")))

    return await web.run(request, work, write=True, scope="admin", form=form, back="/settings")


@router.post("/settings/users")
async def add_user(request: Request) -> Response:
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        user = service.create_user(
            ctx.session,
            merchant_id=ctx.merchant.id,
            email=form.get("email", ""),
            password=form.get("password", ""),
            role=form.get("role", ""),
            now=ctx.now,
        )
        ctx.record("user.created", {"user": user.id, "email": user.email, "role": user.role})
        raise Redirect("/settings", ("ok", ctx.fmt.t("Done.")))

    return await web.run(request, work, write=True, scope="admin", form=form, back="/settings")


@router.post("/settings/users/{user_id:int}")
async def change_user(request: Request, user_id: int) -> Response:
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        if "role" in form:
            user = service.set_role(
                ctx.session, ctx.merchant.id, user_id, form["role"], by=ctx.user
            )
            ctx.record("user.role_changed", {"user": user.id, "role": user.role})
        if "enabled" in form:
            enabled = form["enabled"] == "1"
            user = service.set_enabled(
                ctx.session, ctx.merchant.id, user_id, enabled, by=ctx.user, now=ctx.now
            )
            ctx.record("user.enabled" if enabled else "user.disabled", {"user": user.id})
        raise Redirect("/settings", ("ok", ctx.fmt.t("Done.")))

    return await web.run(request, work, write=True, scope="admin", form=form, back="/settings")


@router.post("/settings/password")
async def change_password(request: Request) -> Response:
    """Any role may change their own password; the new session replaces the others."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> Response:
        service.change_password(
            ctx.session,
            ctx.user,
            current=form.get("current", ""),
            new=form.get("new", ""),
            now=ctx.now,
        )
        ctx.record("password.changed")
        ctx.session.flush()
        secret = request.app.state.settings.secret_key
        fp = domain.fingerprint(ctx.user.password_hash)
        response = web.redirect(request, "/settings", ("ok", ctx.fmt.t("Password changed.")))
        cookie = domain.encode_session(secret, ctx.user.id, fp, time.time())
        web.set_cookie(
            request, response, web.SESSION_COOKIE, cookie, max_age=domain.SESSION_SECONDS
        )
        return response

    return await web.run(request, work, write=True, form=form, back="/settings")


# The programme pages (loyalty, promotions, shop settings) live in their own module.
from fidele.dashboard import programme_routes  # noqa: E402

router.include_router(programme_routes.router)
router.include_router(relationship_routes.router)  # segments, journeys, messages, newsletters
