from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from fidele.analytics import service
from fidele.analytics.schemas import EngagementConfig, InsightsOut, ReportOut
from fidele.deps import ERRORS, AdminCaller, NowDep, OneHopRoute, ReadCaller, SessionDep
from fidele.kit.schemas import ExternalId

router = APIRouter(tags=["analytics"], responses=ERRORS, route_class=OneHopRoute)


@router.get("/v1/customers/{external_id}/insights", response_model=InsightsOut, responses={404: {}})
def customer_insights(
    external_id: Annotated[ExternalId, Path(description="The shop's own customer id")],
    caller: ReadCaller,
    session: SessionDep,
) -> InsightsOut:
    """RFM, P(alive), expected purchases, CLV, next expected order and engagement."""
    return InsightsOut.of(service.customer_insight(session, caller, external_id), external_id)


@router.get("/v1/analytics/kpis", response_model=ReportOut)
def kpis(caller: ReadCaller, session: SessionDep, now: NowDep) -> ReportOut:
    """The shop's KPIs overall (with its stage and suggested focus) and per month."""
    return ReportOut.of(service.report(session, caller, "kpis", now))


@router.get("/v1/analytics/cohorts", response_model=ReportOut)
def cohorts(caller: ReadCaller, session: SessionDep, now: NowDep) -> ReportOut:
    """Monthly cohorts: customers, retention and revenue by months since acquisition."""
    return ReportOut.of(service.report(session, caller, "cohorts", now))


@router.get("/v1/analytics/rfm", response_model=ReportOut)
def rfm(caller: ReadCaller, session: SessionDep, now: NowDep) -> ReportOut:
    """RFM segments: customers and revenue per segment."""
    return ReportOut.of(service.report(session, caller, "rfm", now))


@router.get("/v1/analytics/engagement", response_model=EngagementConfig)
def get_engagement(caller: ReadCaller, session: SessionDep) -> EngagementConfig:
    """The engagement scale in force: points per event type, window and statuses."""
    return service.engagement_config(session, caller)


@router.put("/v1/analytics/engagement", response_model=EngagementConfig)
def put_engagement(
    body: EngagementConfig, caller: AdminCaller, session: SessionDep
) -> EngagementConfig:
    """Replace the programme's engagement scale; the next refresh scores with it. An event
    type that only looks like one the API records (``newsletter.subscribed``) is refused,
    naming it."""
    return service.set_engagement(session, caller.programme_id, body)
