"""The segments, journeys, messages and newsletters pages. Thin, as ``routes``: parse the
form, call :mod:`relationship` through :func:`web.run` (authentication, CSRF, role, one
transaction), render. The roles are the API's: saving a segment, a message or a newsletter
needs ``write`` (marketer), switching or installing a journey ``admin`` (as ``/v1/flows``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fidele.campaigns import service as flows
from fidele.campaigns import templates as journeys_library
from fidele.dashboard import relationship as rel
from fidele.dashboard import web
from fidele.dashboard.web import Ctx, Redirect
from fidele.deps import OneHopRoute
from fidele.errors import FideleError
from fidele.messaging import broadcasts

router = APIRouter(include_in_schema=False, route_class=OneHopRoute)


def _query(request: Request) -> dict[str, str]:
    return {k: v[:500] for k, v in request.query_params.items()}


# --- segments -------------------------------------------------------------------------------


@router.get("/segments")
async def segments_page(request: Request) -> Response:
    form = _query(request)
    return await web.run(request, lambda ctx: ("segments.html", rel.segments_page(ctx, form)))


@router.get("/segments/count")
async def segment_count(request: Request) -> Response:
    """The builder's live count (htmx swaps this fragment in as the criteria change)."""
    form = _query(request)
    return await web.run(request, lambda ctx: ("_segment_count.html", rel.live_count(ctx, form)))


@router.post("/segments")
async def create_segment(request: Request) -> Response:
    form = await web.read_form(request)

    def work(ctx: Ctx) -> Any:
        try:
            made = rel.save_segment(ctx, form, None)
        except FideleError as exc:
            return "segments.html", {**rel.segments_page(ctx, form), "error": _error(exc)}
        ctx.record("segment.created", {"segment": made.id, "name": made.name, "rule": made.rule})
        raise Redirect(f"/segments/{made.id}", ("ok", ctx.fmt.t("Segment saved.")))

    return await web.run(request, work, write=True, scope="write", form=form, back="/segments")


@router.get("/segments/{segment_id:int}")
async def segment_page(request: Request, segment_id: int, after: int = 0) -> Response:
    form = {k: v for k, v in _query(request).items() if k != "after"}

    def work(ctx: Ctx) -> Any:
        return "segment.html", rel.segment_page(ctx, segment_id, max(after, 0), form)

    return await web.run(request, work)


@router.post("/segments/{segment_id:int}")
async def update_segment(request: Request, segment_id: int) -> Response:
    form = await web.read_form(request)
    back = f"/segments/{segment_id}"

    def work(ctx: Ctx) -> Any:
        try:
            made = rel.save_segment(ctx, form, segment_id)
        except FideleError as exc:
            page = rel.segment_page(ctx, segment_id, 0, form)
            return "segment.html", {**page, "error": _error(exc)}
        ctx.record("segment.updated", {"segment": made.id, "name": made.name, "rule": made.rule})
        raise Redirect(back, ("ok", ctx.fmt.t("Segment saved.")))

    return await web.run(request, work, write=True, scope="write", form=form, back=back)


def _error(exc: FideleError) -> str:
    return rel.named(exc)


# --- journeys -------------------------------------------------------------------------------


@router.get("/journeys")
async def journeys_page(request: Request) -> Response:
    return await web.run(request, lambda ctx: ("journeys.html", rel.journeys_page(ctx)))


@router.get("/journeys/{flow_id:int}")
async def journey_page(request: Request, flow_id: int) -> Response:
    return await web.run(request, lambda ctx: ("journey.html", rel.journey_page(ctx, flow_id)))


@router.post("/journeys/{flow_id:int}/status")
async def switch_journey(request: Request, flow_id: int) -> Response:
    """On (``POST /v1/flows/{id}/activate``) or off (``/pause``)."""
    form = await web.read_form(request)
    back = form.get("back") if form.get("back") in ("/journeys", f"/journeys/{flow_id}") else None
    back = back or "/journeys"

    def work(ctx: Ctx) -> None:
        status = "active" if form.get("status") == "active" else "paused"
        flow = flows.set_status(ctx.session, ctx.caller, flow_id, status, ctx.now)
        ctx.record(
            "journey.activated" if status == "active" else "journey.paused",
            {"flow": flow.id, "name": flow.name},
        )
        text = "Journey switched on." if status == "active" else "Journey switched off."
        raise Redirect(back, ("ok", ctx.fmt.t(text)))

    return await web.run(request, work, write=True, scope="admin", form=form, back=back)


@router.post("/journeys/library/{name}")
async def install_journey(request: Request, name: str) -> Response:
    """``POST /v1/flows/templates/{name}/install`` (off until switched on)."""
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        flow, names = journeys_library.install(ctx.session, ctx.caller, name[:100], ctx.now)
        ctx.record("journey.installed", {"flow": flow.id, "name": name, "templates": names})
        raise Redirect("/journeys", ("ok", ctx.fmt.t("Journey installed: switch it on.")))

    return await web.run(request, work, write=True, scope="admin", form=form, back="/journeys")


# --- messages -------------------------------------------------------------------------------


@router.get("/journeys/messages")
async def messages_page(request: Request) -> Response:
    return await web.run(
        request, lambda ctx: ("messages.html", {"templates": rel.templates_of(ctx)})
    )


@router.get("/journeys/messages/{template_id:int}")
async def message_page(request: Request, template_id: int, customer: str = "") -> Response:
    def work(ctx: Ctx) -> Any:
        return "message.html", rel.message_page(ctx, template_id, customer.strip()[:255])

    return await web.run(request, work)


@router.post("/journeys/messages/{template_id:int}")
async def save_message(request: Request, template_id: int) -> Response:
    form = await web.read_form(request)
    back = f"/journeys/messages/{template_id}"

    def work(ctx: Ctx) -> Any:
        try:
            row = rel.save_message(ctx, template_id, form)
        except FideleError as exc:
            page = rel.message_page(ctx, template_id, "", form)
            return "message.html", {**page, "error": rel.named(exc)}
        ctx.record(
            "message.updated", {"template": row.id, "name": row.name, "version": row.version}
        )
        raise Redirect(back, ("ok", ctx.fmt.t("Message saved.")))

    return await web.run(request, work, write=True, scope="write", form=form, back=back)


# --- newsletters ----------------------------------------------------------------------------


@router.get("/newsletters")
async def newsletters_page(request: Request) -> Response:
    return await web.run(request, lambda ctx: ("newsletters.html", rel.newsletters_page(ctx)))


@router.post("/newsletters")
async def create_newsletter(request: Request) -> Response:
    form = await web.read_form(request)

    def work(ctx: Ctx) -> None:
        row = rel.create_newsletter(ctx, form)
        ctx.record(
            "newsletter.scheduled",
            {"broadcast": row.id, "segment": row.segment_id, "template": row.template_id},
        )
        raise Redirect(f"/newsletters/{row.id}", ("ok", ctx.fmt.t("Newsletter scheduled.")))

    return await web.run(request, work, write=True, scope="write", form=form, back="/newsletters")


@router.get("/newsletters/{broadcast_id:int}")
async def newsletter_page(request: Request, broadcast_id: int) -> Response:
    def work(ctx: Ctx) -> Any:
        return "newsletter.html", rel.newsletter_page(ctx, broadcast_id)

    return await web.run(request, work)


@router.post("/newsletters/{broadcast_id:int}/cancel")
async def cancel_newsletter(request: Request, broadcast_id: int) -> Response:
    form = await web.read_form(request)
    back = f"/newsletters/{broadcast_id}"

    def work(ctx: Ctx) -> None:
        broadcasts.cancel(ctx.session, ctx.merchant.id, broadcast_id, ctx.now)
        ctx.record("newsletter.cancelled", {"broadcast": broadcast_id})
        raise Redirect(back, ("ok", ctx.fmt.t("Newsletter cancelled.")))

    return await web.run(request, work, write=True, scope="write", form=form, back=back)
