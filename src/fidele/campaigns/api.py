from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field

from fidele.campaigns import library, service, templates
from fidele.campaigns.schemas import EnrollmentOut, FlowIn, FlowOut, InstallOut, TemplateOut
from fidele.deps import ERRORS, AdminCaller, NowDep, OneHopRoute, ReadCaller, SessionDep
from fidele.kit.pagination import MAX_LIMIT, Cursor, Page, decode_cursor, encode_cursor
from fidele.kit.schemas import ExternalId, Id, StrictJsonModel

router = APIRouter(tags=["flows"], responses=ERRORS, route_class=OneHopRoute)
FlowId = Annotated[Id, Path(description="The flow's id")]
TemplateName = Annotated[
    str, Path(description="A ready-made journey", json_schema_extra={"enum": list(library.BY_NAME)})
]


class InstallIn(StrictJsonModel):
    activate: bool = False
    incentive: Literal["coupon", "free_shipping", "points"] | None = Field(
        None, description="win_back only: the incentive of its second step"
    )


@router.post("/v1/flows", response_model=FlowOut, status_code=201, responses={422: {}})
def save_flow(body: FlowIn, caller: AdminCaller, session: SessionDep, now: NowDep) -> FlowOut:
    """Save a flow definition: a new flow (a draft) or the next version of the flow of that
    name. A definition that does not validate is refused (422, each error's path and reason)
    and the active version stays."""
    flow = service.save(session, caller, service.parse(body.definition), now)
    return service.out(session, [flow], with_definition=True)[0]


@router.get("/v1/flows", response_model=Page[FlowOut])
def list_flows(caller: ReadCaller, session: SessionDep) -> Page[FlowOut]:
    flows = service.listing(session, caller)
    return Page[FlowOut](items=service.out(session, flows), next_cursor=None)


@router.get("/v1/flows/templates", response_model=list[TemplateOut])
def list_templates(caller: ReadCaller, session: SessionDep) -> list[TemplateOut]:
    """The ready-made journeys, and whether each is installed."""
    return templates.listing(session, caller)


@router.post("/v1/flows/templates/{name}/install", response_model=InstallOut, responses={404: {}})
def install_template(
    name: TemplateName,
    caller: AdminCaller,
    session: SessionDep,
    now: NowDep,
    body: InstallIn | None = None,
) -> InstallOut:
    """Install a ready-made journey and its FR/EN messages (off unless ``activate``); again
    keeps what the merchant edited."""
    body = body or InstallIn()
    flow, names = templates.install(
        session, caller, name, now, activate=body.activate, incentive=body.incentive
    )
    return InstallOut(flow=service.out(session, [flow])[0], templates=names)


@router.get("/v1/flows/{flow_id}", response_model=FlowOut, responses={404: {}})
def get_flow(flow_id: FlowId, caller: ReadCaller, session: SessionDep) -> FlowOut:
    flow = service.get(session, caller, flow_id)
    return service.out(session, [flow], with_definition=True)[0]


@router.post("/v1/flows/{flow_id}/activate", response_model=FlowOut, responses={404: {}})
def activate_flow(
    flow_id: FlowId, caller: AdminCaller, session: SessionDep, now: NowDep
) -> FlowOut:
    flow = service.set_status(session, caller, flow_id, "active", now)
    return service.out(session, [flow])[0]


@router.post("/v1/flows/{flow_id}/pause", response_model=FlowOut, responses={404: {}})
def pause_flow(flow_id: FlowId, caller: AdminCaller, session: SessionDep, now: NowDep) -> FlowOut:
    """Nobody new enters; customers already in it go on to the end of their version."""
    flow = service.set_status(session, caller, flow_id, "paused", now)
    return service.out(session, [flow])[0]


@router.get(
    "/v1/flows/{flow_id}/enrollments", response_model=Page[EnrollmentOut], responses={404: {}}
)
def list_enrollments(
    flow_id: FlowId,
    caller: ReadCaller,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    status: Literal["active", "completed", "exited", "failed"] | None = None,
) -> Page[EnrollmentOut]:
    rows = service.enrollments(
        session, caller, flow_id, after_id=decode_cursor(cursor), limit=limit, status=status
    )
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return Page[EnrollmentOut](items=rows, next_cursor=nxt)


@router.get(
    "/v1/customers/{external_id}/journeys",
    response_model=list[EnrollmentOut],
    responses={404: {}},
    tags=["customers"],
)
def customer_journeys(
    external_id: Annotated[ExternalId, Path(description="The shop's own customer id")],
    caller: ReadCaller,
    session: SessionDep,
) -> list[EnrollmentOut]:
    """Which flows the customer is or was in, the step they are at, and what happened at
    each step and why (sent, skipped and why, deferred until, exited on a goal)."""
    return service.journeys(session, caller, external_id)
