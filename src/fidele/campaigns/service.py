"""Flows: save a definition (a new version each time), activate, pause, list; enrollments and
each customer's journeys with what happened and why."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.campaigns import domain, engine
from fidele.campaigns.domain import FlowDefinition, FlowDefinitionError
from fidele.campaigns.models import Enrollment, Flow, FlowVersion
from fidele.campaigns.repository import FlowRepository
from fidele.campaigns.schemas import EnrollmentOut, FlowOut, HistoryOut
from fidele.errors import InvalidInput, NotFound
from fidele.tenancy.service import Caller


class InvalidFlow(InvalidInput):
    """A definition that does not validate: 422 with each error's path and reason."""

    code = "invalid_flow"

    def __init__(self, error: FlowDefinitionError, *, prefix: str = "definition.") -> None:
        fields = [{**f, "field": f"{prefix}{f['field']}"} for f in error.fields()]
        super().__init__(f"the flow does not validate: {error}", fields=fields)


def parse(data: Any) -> FlowDefinition:
    try:
        return domain.parse(data)
    except FlowDefinitionError as exc:
        raise InvalidFlow(exc) from exc


def save(
    session: Session,
    caller: Caller,
    definition: FlowDefinition,
    now: datetime,
    *,
    template: str | None = None,
) -> Flow:
    """Store ``definition`` as the next version of the merchant's flow of that name (created
    if new, as a draft). New entries use the new version at once; running enrollments finish
    on the version they started on."""
    repo = FlowRepository(session)
    flow = repo.by_name(caller.merchant_id, definition.name, lock=True)
    trigger = definition.trigger
    if flow is None:
        flow = Flow(
            merchant_id=caller.merchant_id,
            programme_id=caller.programme_id,
            name=definition.name,
            status="draft",
            active_version=1,
            latest_version=1,
            trigger_kind=trigger.kind,
            trigger_event=(trigger.events or [None])[0],
            template=template,
            created_at=now,
            updated_at=now,
        )
        session.add(flow)
        session.flush()
    else:
        flow.latest_version += 1
        flow.active_version = flow.latest_version
        flow.trigger_kind, flow.trigger_event = trigger.kind, (trigger.events or [None])[0]
        flow.updated_at = now
    session.add(
        FlowVersion(
            flow_id=flow.id,
            merchant_id=caller.merchant_id,
            version=flow.latest_version,
            definition=definition.model_dump(mode="json", exclude_defaults=True),
            created_at=now,
        )
    )
    session.flush()
    return flow


def get(session: Session, caller: Caller, flow_id: int) -> Flow:
    flow = FlowRepository(session).by_id(caller.merchant_id, flow_id)
    if flow is None:
        raise NotFound(f"flow {flow_id} not found")
    return flow


def set_status(session: Session, caller: Caller, flow_id: int, status: str, now: datetime) -> Flow:
    """Activate (new customers enter) or pause (nobody enters; running enrollments go on)."""
    flow = get(session, caller, flow_id)
    flow.status, flow.updated_at = status, now
    return flow


def listing(session: Session, caller: Caller) -> Sequence[Flow]:
    return FlowRepository(session).listing(caller.merchant_id)


def out(session: Session, flows: Sequence[Flow], *, with_definition: bool = False) -> list[FlowOut]:
    repo = FlowRepository(session)
    counts = repo.counts([f.id for f in flows])
    result = []
    for flow in flows:
        row = repo.version(flow.id, flow.active_version)
        assert row is not None
        definition = engine.definition_of(row.definition)
        result.append(
            FlowOut(
                id=flow.id,
                name=flow.name,
                status=flow.status,
                active_version=flow.active_version,
                latest_version=flow.latest_version,
                trigger=describe_trigger(definition),
                template=flow.template,
                description=definition.description,
                enrollments=counts.get(flow.id, {}),
                definition=row.definition if with_definition else None,
                created_at=flow.created_at,
                updated_at=flow.updated_at,
            )
        )
    return result


def describe_trigger(definition: FlowDefinition) -> str:
    t = definition.trigger
    if t.event:
        return "event " + " or ".join(t.events) + (" (first order)" if t.first_order else "")
    if t.date:
        return f"date {t.date} at {t.at}"
    assert t.prediction is not None
    return f"overdue >= {t.prediction.overdue_ratio} x own cadence"


def enrollments(
    session: Session,
    caller: Caller,
    flow_id: int,
    *,
    after_id: int,
    limit: int,
    status: str | None,
) -> list[EnrollmentOut]:
    get(session, caller, flow_id)
    rows = FlowRepository(session).enrollments_page(
        caller.merchant_id, flow_id, after_id=after_id, limit=limit, status=status
    )
    externals = _external_ids(session, [r.customer_id for r in rows])
    return [_enrollment_out(r, externals.get(r.customer_id)) for r in rows]


def journeys(session: Session, caller: Caller, external_id: str) -> list[EnrollmentOut]:
    """Every flow the customer entered, the step they are at and each step's outcome."""
    from fidele.customers import service as customers

    customer = customers.get(session, caller, external_id)
    repo = FlowRepository(session)
    rows = repo.of_customer(caller.merchant_id, customer.id)
    flows = repo.flows_by_id({r.flow_id for r in rows})
    history: dict[int, list[HistoryOut]] = {}
    for h in repo.history([r.id for r in rows]):
        history.setdefault(h.enrollment_id, []).append(
            HistoryOut(
                at=h.at,
                step=h.step,
                kind=h.kind,
                outcome=h.outcome,
                reason=h.reason,
                detail=h.detail,
            )
        )
    result = []
    for r in rows:
        item = _enrollment_out(r, external_id)
        item.flow = flows[r.flow_id].name
        item.history = history.get(r.id, [])
        result.append(item)
    return result


def _enrollment_out(r: Enrollment, external_id: str | None) -> EnrollmentOut:
    return EnrollmentOut(
        id=r.id,
        flow_id=r.flow_id,
        version=r.version,
        customer_id=external_id,
        status=r.status,
        step=r.step,
        due_at=r.due_at,
        waiting_for=r.waiting_for,
        entered_at=r.entered_at,
        ended_at=r.ended_at,
        exit_reason=r.exit_reason,
    )


def _external_ids(session: Session, ids: list[int]) -> dict[int, str]:
    return FlowRepository(session).external_ids(ids)
