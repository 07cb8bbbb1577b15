"""Installing the ready-made journeys: their messages through ``messaging.ensure_template``
(never overwriting a template the merchant edited) and their flow as a draft."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fidele.campaigns import domain, library, service
from fidele.campaigns.models import Flow
from fidele.campaigns.repository import FlowRepository
from fidele.campaigns.schemas import TemplateOut
from fidele.errors import InvalidInput, NotFound
from fidele.tenancy.service import Caller


def listing(session: Session | None = None, caller: Caller | None = None) -> list[TemplateOut]:
    installed: set[str] = set()
    if session is not None and caller is not None:
        installed = {f.template for f in service.listing(session, caller) if f.template}
    out = []
    for j in library.JOURNEYS:
        definition = domain.FlowDefinition.model_validate(j.definition)
        out.append(
            TemplateOut(
                name=j.name,
                title=j.title,
                description=definition.description,
                trigger=service.describe_trigger(definition),
                steps=len(definition.steps),
                installed=None if session is None else j.name in installed,
            )
        )
    return out


def install(
    session: Session,
    caller: Caller,
    name: str,
    now: datetime,
    *,
    activate: bool = False,
    incentive: str | None = None,
) -> tuple[Flow, list[str]]:
    """Install the journey ``name`` (once: installing again keeps the merchant's edits) and
    its message templates; activate it if asked. Returns the flow and the template names."""
    from fidele.messaging import service as messaging

    journey = library.BY_NAME.get(name)
    if journey is None:
        raise NotFound(f"no ready-made journey {name!r} (see GET /v1/flows/templates)")
    if incentive is not None and incentive not in library.INCENTIVES:
        raise InvalidInput(
            f"incentive is one of {', '.join(library.INCENTIVES)}", field="incentive"
        )
    for template, message in journey.messages.items():
        messaging.ensure_template(
            session,
            merchant_id=caller.merchant_id,
            name=template,
            topic=journey.topic,
            variants=message.variants(),
            now=now,
        )
    flow = FlowRepository(session).by_name(caller.merchant_id, name)
    if flow is None:
        definition = service.parse(library.definition_with(journey, incentive))
        flow = service.save(session, caller, definition, now, template=name)
    if activate and flow.status != "active":
        flow.status, flow.updated_at = "active", now
    return flow, list(journey.messages)


def install_all(
    session: Session, caller: Caller, now: datetime, *, activate: bool = False
) -> list[tuple[Flow, list[str]]]:
    return [install(session, caller, j.name, now, activate=activate) for j in library.JOURNEYS]
