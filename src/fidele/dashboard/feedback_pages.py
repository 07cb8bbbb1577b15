"""Page 7, Feedback: the NPS and its trend, CSAT, the latest answers; complaints have their
own page (``/feedback/complaints``). Also the Feedback section of a customer's page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fidele.customers.models import Customer
from fidele.dashboard import charts, web
from fidele.dashboard.web import Ctx
from fidele.deps import OneHopRoute
from fidele.feedback import service as feedback
from fidele.feedback.complaints_api import outs
from fidele.feedback.complaints_repository import ComplaintRepository

router = APIRouter(include_in_schema=False, route_class=OneHopRoute)
LATEST = 20
CUSTOMER_LATEST = 50  # per list on a customer's page


def _survey_results(ctx: Ctx, code: str) -> dict[str, Any] | None:
    found = next(
        (s for s in feedback.surveys(ctx.session, ctx.merchant.id) if s.code == code), None
    )
    if found is None:
        return None
    return feedback.results(ctx.session, ctx.merchant.id, found.id)


def _nps_chart(ctx: Ctx, trend: list[dict[str, Any]]) -> Any:
    """The NPS by month, drawn from -100 (the chart's baseline) so a negative score shows."""
    if not trend:
        return None
    labels = [ctx.fmt.month(f"{p['month']}-01") for p in trend]
    values = [None if p["nps"] is None else p["nps"] + 100 for p in trend]
    return charts.line_chart(
        labels, values, title=ctx.fmt.t("NPS by month"), fmt=lambda v: f"{v - 100:+.0f}"
    )


def feedback_view(ctx: Ctx) -> dict[str, Any]:
    nps = _survey_results(ctx, "nps")
    csat = _survey_results(ctx, "csat")
    return {
        "nps": nps,
        "nps_chart": _nps_chart(ctx, nps["trend"]) if nps else None,
        "csat": csat,
        "csat_chart": charts.bar_chart(
            list(csat["csat"]["distribution"]),
            list(csat["csat"]["distribution"].values()),
            title=ctx.fmt.t("CSAT answers by score"),
        )
        if csat and csat["answers"]
        else None,
        "latest": feedback.latest_answers(ctx.session, ctx.merchant.id, LATEST),
    }


@router.get("/feedback")
async def feedback_page(request: Request) -> Response:
    return await web.run(request, lambda ctx: ("feedback.html", feedback_view(ctx)))


def customer_feedback(ctx: Ctx, customer: Customer) -> dict[str, Any]:
    """A customer's survey answers (the survey's title in the page's language), reviews and
    complaints with their SLA breach flag, the latest first; only the signed-in merchant's."""
    merchant_id = ctx.merchant.id
    mine = feedback.customer_feedback(ctx.session, merchant_id, customer.id, CUSTOMER_LATEST)
    lang = ctx.fmt.language
    for a in mine["answers"]:
        a["name"] = a["title"].get(lang) or a["title"].get("en") or a["survey"]
    rows = ComplaintRepository(ctx.session).latest_of_customer(
        merchant_id, customer.id, CUSTOMER_LATEST
    )
    complaints = [
        {"c": c, "breached": c.first_response_breached or c.resolution_breached}
        for c in outs(ctx.session, rows, ctx.now)
    ]
    return {"feedback": {**mine, "complaints": complaints}}
