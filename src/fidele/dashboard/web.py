"""Request plumbing of the dashboard pages: the signed-in user, CSRF, the language, the
security headers and rendering. Each request runs its database work in one thread-pool hop
and one transaction (as the API's ``OneHopRoute`` does)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fidele import __version__
from fidele.dashboard import domain, i18n, service
from fidele.dashboard.models import DashboardUser
from fidele.db.session import transaction
from fidele.errors import FideleError, NotFound
from fidele.tenancy.models import Merchant, Programme
from fidele.tenancy.repository import MerchantRepository, ProgrammeRepository
from fidele.tenancy.service import Caller

HERE = Path(__file__).parent
STATIC = HERE / "static"
SESSION_COOKIE = "fidele_session"
LANG_COOKIE = "fidele_lang"
LOGIN_CSRF_COOKIE = "fidele_login_csrf"
FLASH_COOKIE = "fidele_flash"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
throttle = domain.LoginThrottle()


@dataclass
class Ctx:
    """One request's signed-in user, their merchant and the formats of their pages."""

    request: Request
    session: Session
    now: datetime
    user: DashboardUser
    merchant: Merchant
    programme: Programme
    caller: Caller
    fmt: i18n.Formats
    csrf: str
    form: dict[str, str] = field(default_factory=dict)

    def can(self, scope: str) -> bool:
        return self.caller.can(scope)

    def record(self, action: str, detail: dict[str, Any] | None = None) -> None:
        page = self.request.headers.get("referer") or self.request.url.path
        service.record(
            self.session, self.user, action=action, page=_path_of(page), now=self.now, detail=detail
        )


class Refused(Exception):
    """The request may not do this (no CSRF token, a role without the scope): a 403 page."""


class Redirect(Exception):
    def __init__(self, url: str, flash: tuple[str, str] | None = None) -> None:
        super().__init__(url)
        self.url, self.flash = url, flash


def _path_of(url: str) -> str:
    """The path (and query) of a URL, so the log says which page a change was made on."""
    if "://" in url:
        url = "/" + url.split("://", 1)[1].partition("/")[2]
    return url[:200]


def secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _secure_cookie(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, **kw: Any) -> None:
    response.set_cookie(
        name, value, httponly=True, samesite="lax", secure=_secure_cookie(request), path="/", **kw
    )


def language_of(request: Request, user: DashboardUser | None = None) -> str:
    choice = (user.language if user else None) or request.cookies.get(LANG_COOKIE)
    return i18n.pick_language(choice, request.headers.get("accept-language"))


def formats_for(language: str, programme: Programme | None) -> i18n.Formats:
    settings = programme.settings if programme else {}
    return i18n.formats(
        language,
        settings.get("locale") if isinstance(settings, dict) else None,
        programme.currency if programme else "EUR",
        settings.get("timezone") if isinstance(settings, dict) else None,
    )


def render(
    request: Request,
    template: str,
    data: dict[str, Any],
    *,
    fmt: i18n.Formats,
    ctx: Ctx | None = None,
    status: int = 200,
    csrf: str | None = None,
) -> HTMLResponse:
    flash = request.cookies.get(FLASH_COOKIE)
    message = None
    if flash:
        try:
            message = json.loads(unquote(flash))
        except ValueError:
            message = None
    html = env.get_template(template).render(
        **data,
        t=fmt.t,
        fmt=fmt,
        ctx=ctx,
        user=ctx.user if ctx else None,
        csrf=ctx.csrf if ctx else csrf,
        path=request.url.path,
        flash=message if isinstance(message, dict) else None,
        version=__version__,
        languages=i18n.LANGUAGES,
    )
    response = HTMLResponse(html, status_code=status)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return secure(response)


def redirect(request: Request, url: str, flash: tuple[str, str] | None = None) -> Response:
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        value = json.dumps({"kind": flash[0], "text": flash[1]}, separators=(",", ":"))
        set_cookie(request, response, FLASH_COOKIE, quote(value, safe=""), max_age=60)
    return secure(response)


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body as single values (the dashboard's forms upload no files)."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _load(session: Session, request: Request, now: datetime) -> tuple[DashboardUser, Any] | None:
    secret = request.app.state.settings.secret_key
    data = domain.decode_session(secret, request.cookies.get(SESSION_COOKIE), time.time())
    if data is None:
        return None
    user = service.get_user(session, data.user_id)
    if user is None or user.disabled_at is not None:
        return None
    if data.fingerprint != domain.fingerprint(user.password_hash):
        return None  # the password changed since this session began
    return user, data


Work = Callable[[Ctx], Any]


async def run(
    request: Request,
    work: Work,
    *,
    write: bool = False,
    scope: str | None = None,
    form: dict[str, str] | None = None,
    back: str | None = None,
) -> Response:
    """Authenticate, check CSRF (``write``) and the role (``scope``), run ``work`` in one
    transaction and turn its result into a response: ``(template, data)`` renders a page,
    a ``Response`` is returned as is, :class:`Redirect` redirects (303) with a flash. A
    refusal of a service (``FideleError``) rolls the transaction back and redirects to
    ``back`` with its message."""
    state = request.app.state
    factory = state.sessionmaker if write else getattr(state, "read_sessionmaker", None)
    factory = factory or state.sessionmaker
    now = state.clock.now()
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")

    def hop() -> Response:
        try:
            return attempt()
        except NotFound as exc:
            if back is not None:
                return redirect(request, back, ("error", str(exc.detail)))
            fmt = formats_for(language_of(request), None)
            return render(
                request, "error.html", {"message": fmt.t("Page not found.")}, fmt=fmt, status=404
            )
        except FideleError as exc:
            if back is None:
                raise
            named = exc.extra.get("fields") or []
            field = named[0].get("field") if named else exc.extra.get("field")
            text = f"{field}: {exc.detail}" if field else str(exc.detail)
            return redirect(request, back, ("error", text))

    def attempt() -> Response:
        with transaction(factory) as session:
            loaded = _load(session, request, now)
            if loaded is None:
                return redirect(request, f"/login?next={quote(wanted, safe='')}")
            user, data = loaded
            merchant = MerchantRepository(session).get(user.merchant_id)
            assert merchant is not None
            programme = ProgrammeRepository(session).get(merchant.programme_id)
            assert programme is not None
            fmt = formats_for(language_of(request, user), programme)
            caller = service.caller_of(user, programme.id)
            ctx = Ctx(request, session, now, user, merchant, programme, caller, fmt, data.csrf)
            ctx.form = form or {}
            if write and not domain.tokens_match(data.csrf, ctx.form.get("csrf_token")):
                return refused(request, fmt, ctx, "Your session form expired: please try again.")
            if scope is not None and not ctx.can(scope):
                return refused(request, fmt, ctx, "Your role cannot make changes.")
            try:
                result = work(ctx)
            except Redirect as go:
                session.flush()
                return redirect(request, go.url, go.flash)
            if isinstance(result, Response):
                return secure(result)
            template, values = result
            return render(request, template, values, fmt=fmt, ctx=ctx)

    return await run_in_threadpool(hop)


def refused(request: Request, fmt: i18n.Formats, ctx: Ctx | None, reason: str) -> Response:
    return render(request, "error.html", {"message": fmt.t(reason)}, fmt=fmt, ctx=ctx, status=403)
