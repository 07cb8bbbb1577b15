"""``/feedback/complaints``: the complaints queue with its SLA timers, and one complaint (notes,
status, assignment, a gesture on resolution). Thin: parse the form, call the complaints
service through :func:`web.run`, record the change, render."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from fidele.dashboard import web
from fidele.dashboard.repository import UserRepository
from fidele.dashboard.web import Ctx, Redirect
from fidele.deps import OneHopRoute
from fidele.errors import InvalidInput
from fidele.feedback import complaints_domain as domain
from fidele.feedback import complaints_service as service
from fidele.feedback.complaints_api import outs
from fidele.feedback.complaints_repository import ComplaintRepository, GestureRepository
from fidele.feedback.complaints_schemas import ComplaintPatch

router = APIRouter(include_in_schema=False, route_class=OneHopRoute)
QUEUE = "/feedback/complaints"


def timer(due: datetime, done_at: datetime | None, now: datetime) -> tuple[str, str]:
    """``("2 h 10 min left" | "late by 1 h" | "met" | "missed", css class)`` of an SLA."""
    if done_at is not None:
        return ("met", "ok") if done_at <= due else ("missed", "late")
    minutes = int((due - now).total_seconds() // 60)
    late = minutes < 0
    h, m = divmod(abs(minutes), 60)
    d, h = divmod(h, 24)
    span = f"{d} d {h} h" if d else (f"{h} h {m:02d} min" if h else f"{m} min")
    if late:
        return f"late by {span}", "late"
    return f"{span} left", "soon" if minutes < 120 else "ok"


def _queue(ctx: Ctx, status: str | None) -> tuple[str, dict[str, Any]]:
    repo = ComplaintRepository(ctx.session)
    rows = repo.listing(ctx.merchant.id, status=status, after_id=0, limit=500)
    if status is None:
        rows = [r for r in rows if r.status in domain.OPEN_STATUSES]
    items = outs(ctx.session, rows, ctx.now)
    cfg = service.config(ctx.session, ctx.merchant.id, ctx.programme.id)
    spent = GestureRepository(ctx.session).spent(ctx.merchant.id, domain.month_of(ctx.now, cfg.tz))
    return "complaints.html", {
        "items": [
            {
                "c": c,
                "first": timer(c.first_response_due, c.first_response_at, ctx.now),
                "resolution": timer(c.resolution_due, c.closed_at, ctx.now),
            }
            for c in items
        ],
        "status": status,
        "statuses": domain.STATUSES,
        "overdue": len(repo.overdue(ctx.merchant.id, ctx.now)),
        "budget": cfg.budget,
        "budget_left": domain.budget_left(cfg.budget, spent),
    }


@router.get(QUEUE)
async def queue_page(request: Request, status: str | None = None) -> Response:
    chosen = status if status in domain.STATUSES else None
    return await web.run(request, lambda ctx: _queue(ctx, chosen))


def _detail(ctx: Ctx, complaint_id: int) -> tuple[str, dict[str, Any]]:
    row = service.get(ctx.session, ctx.caller, complaint_id)
    c = outs(ctx.session, [row], ctx.now, notes=True)[0]
    users = UserRepository(ctx.session).for_merchant(ctx.merchant.id)
    return "complaint.html", {
        "c": c,
        "customer_db_id": row.customer_id,
        "first": timer(c.first_response_due, c.first_response_at, ctx.now),
        "resolution": timer(c.resolution_due, c.closed_at, ctx.now),
        "next_statuses": sorted(domain.TRANSITIONS[row.status]),
        "users": users,
        "gesture_kinds": domain.GESTURE_KINDS,
    }


@router.get(QUEUE + "/{complaint_id:int}")
async def complaint_page(request: Request, complaint_id: int) -> Response:
    return await web.run(request, lambda ctx: _detail(ctx, complaint_id))


def _patch(form: dict[str, str]) -> ComplaintPatch:
    data: dict[str, Any] = {}
    if form.get("status"):
        data["status"] = form["status"]
    if form.get("assignee_id"):
        data["assignee_id"] = form["assignee_id"]
    if form.get("resolution", "").strip():
        data["resolution"] = form["resolution"].strip()
    if form.get("gesture_kind") and form.get("gesture_value"):
        data["gesture"] = {"kind": form["gesture_kind"], "value": form["gesture_value"]}
    try:
        return ComplaintPatch.model_validate(_ints(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(first["msg"], field=field) from None


def _ints(data: dict[str, Any]) -> dict[str, Any]:
    """Form fields are text: the numbers the model wants as integers."""
    for holder, key in ((data, "assignee_id"), (data.get("gesture") or {}, "value")):
        if key in holder and str(holder[key]).strip().lstrip("-").isdigit():
            holder[key] = int(holder[key])
    return data


@router.post(QUEUE + "/{complaint_id:int}")
async def change_complaint(request: Request, complaint_id: int) -> Response:
    form = await web.read_form(request)
    back = f"{QUEUE}/{complaint_id}"

    def work(ctx: Ctx) -> None:
        patch = _patch(form)
        service.update(ctx.session, ctx.caller, complaint_id, patch, ctx.now)
        ctx.record(
            "complaint.changed",
            {"id": complaint_id, **patch.model_dump(mode="json", exclude_none=True)},
        )
        raise Redirect(back, ("ok", ctx.fmt.t("Complaint updated.")))

    return await web.run(request, work, write=True, scope="write", form=form, back=back)


@router.post(QUEUE + "/{complaint_id:int}/notes")
async def add_note(request: Request, complaint_id: int) -> Response:
    form = await web.read_form(request)
    back = f"{QUEUE}/{complaint_id}"

    def work(ctx: Ctx) -> None:
        body = form.get("body", "").strip()[:10_000]
        if not body:
            raise InvalidInput("write a note", field="body")
        service.add_note(ctx.session, ctx.caller, complaint_id, body, ctx.user.email, ctx.now)
        ctx.record("complaint.note_added", {"id": complaint_id})
        raise Redirect(back, ("ok", ctx.fmt.t("Note added.")))

    return await web.run(request, work, write=True, scope="write", form=form, back=back)
