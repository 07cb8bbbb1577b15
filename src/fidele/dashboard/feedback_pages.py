"""Page 7, Feedback: the NPS and its trend, CSAT, the latest answers; complaints have their
own page (``/feedback/complaints``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fidele.dashboard import charts, web
from fidele.dashboard.web import Ctx
from fidele.deps import OneHopRoute
from fidele.feedback import service as feedback

router = APIRouter(include_in_schema=False, route_class=OneHopRoute)
LATEST = 20


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
