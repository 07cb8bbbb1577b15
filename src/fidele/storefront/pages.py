"""The dashboard's storefront settings page (``/settings/storefront``): shop origins, the
widget's colours, launcher text and sign-up link, and the secret (made and shown once)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from fidele.dashboard import web
from fidele.dashboard.web import Ctx, Redirect
from fidele.deps import OneHopRoute
from fidele.errors import InvalidInput
from fidele.storefront import service
from fidele.storefront.schemas import Look, SettingsIn

router = APIRouter(include_in_schema=False, route_class=OneHopRoute)
PAGE = "/settings/storefront"
LOOK_FIELDS = ("primary", "text", "launcher_en", "launcher_fr", "signup_url")


def _page(ctx: Ctx, **extra: Any) -> tuple[str, dict[str, Any]]:
    current = service.view_settings(ctx.session, ctx.merchant.id)
    values = {"sf": current, "merchant_id": ctx.merchant.id, "base_url": str(ctx.request.base_url)}
    return "storefront_settings.html", {**values, **extra}


@router.get(PAGE)
async def storefront_settings(request: Request) -> Response:
    return await web.run(request, _page)


def _parse(form: dict[str, str]) -> SettingsIn:
    origins = [o for o in form.get("origins", "").split() if o]
    look = {f: form[f].strip() for f in LOOK_FIELDS if form.get(f, "").strip()}
    try:
        return SettingsIn(origins=origins, look=Look(**look))
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "origins"
        raise InvalidInput(f"{name}: {err['msg']}", field=name) from exc


@router.post(PAGE)
async def save_storefront_settings(request: Request) -> Response:
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        data = _parse(ctx.form)
        service.update_settings(ctx.session, ctx.merchant.id, data, ctx.now)
        ctx.record("storefront.settings_changed", {"origins": data.origins})
        raise Redirect(PAGE, ("ok", ctx.fmt.t("Done.")))

    return await web.run(request, work, write=True, scope="admin", form=form, back=PAGE)


@router.post(f"{PAGE}/secret")
async def new_secret(request: Request) -> Response:
    """A new secret, shown on this answer only."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> Any:
        secret = service.rotate_secret(
            ctx.session, ctx.merchant.id, request.app.state.settings.secret_key, ctx.now
        )
        ctx.record("storefront.secret_rotated")
        return _page(ctx, new_secret=secret)

    return await web.run(request, work, write=True, scope="admin", form=form, back=PAGE)
