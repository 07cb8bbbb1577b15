"""Walking customers through flows: enroll, advance due enrollments step by step, exit on goals.

Every step taken is written to the enrollment's history with its outcome and why. Sends go
through ``messaging.send`` with the key ``flow:{enrollment}:{step}``: an enrollment advanced
again after a crash sends nothing twice."""

from __future__ import annotations

import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session, sessionmaker

from fidele.campaigns import domain
from fidele.campaigns.domain import EXIT, FlowDefinition, Step
from fidele.campaigns.models import Enrollment, EnrollmentStep, Flow, FlowVersion
from fidele.campaigns.repository import FlowRepository
from fidele.customers.models import Customer
from fidele.db.session import transaction
from fidele.kit.repository import insert_or_twin

log = logging.getLogger("fidele.flows")
MAX_STEPS_PER_PASS = 50  # a loop of instant steps (a condition jumping back) stops here
MAX_ATTEMPTS = 5
BATCH = 500
# session.info key: the history rows of the batch being advanced, written in one statement
_HISTORY = "fidele.flows.history"

_cache: OrderedDict[str, FlowDefinition] = OrderedDict()


def definition_of(raw: dict[str, Any]) -> FlowDefinition:
    """A stored (already validated) definition, parsed once per process."""
    key = json.dumps(raw, sort_keys=True, default=str)
    found = _cache.get(key)
    if found is None:
        found = FlowDefinition.model_validate(raw)
        _cache[key] = found
        if len(_cache) > 512:
            _cache.popitem(last=False)
    return found


def version_definition(session: Session, flow_id: int, version: int) -> FlowDefinition:
    row = FlowRepository(session).version(flow_id, version)
    assert row is not None, f"flow {flow_id} has no version {version}"
    return definition_of(row.definition)


# --- entering ----------------------------------------------------------------------------


def enroll(
    session: Session,
    flow: Flow,
    definition: FlowDefinition,
    customer_id: int,
    *,
    occurrence: str,
    now: datetime,
    context: dict[str, Any] | None = None,
    why: str,
) -> Enrollment | None:
    """Enter ``customer_id`` into ``flow`` (its active version) once per ``occurrence``,
    unless the re-entry policy or the trigger's rule refuses; None when not entered."""
    repo = FlowRepository(session)
    if repo.has_active(flow.id, customer_id):
        return None
    if not domain.reentry_allowed(definition.reentry, repo.last_entered(flow.id, customer_id), now):
        return None
    rule = definition.trigger.rule
    if rule is not None and not _matches(session, flow.merchant_id, customer_id, rule, now):
        return None
    enrollment = Enrollment(
        merchant_id=flow.merchant_id,
        flow_id=flow.id,
        version=flow.active_version,
        customer_id=customer_id,
        occurrence=occurrence,
        status="active",
        step=definition.first(),
        due_at=now,
        entered_at=now,
        updated_at=now,
        attempts=0,
        context=dict(context or {}),
    )
    if not insert_or_twin(session, enrollment):
        return None  # this occurrence entered already (a concurrent twin)
    _log(session, enrollment, now, "trigger", "entered", why)
    _enter(session, enrollment, definition, definition.first(), now)
    return enrollment


def _enter(
    session: Session, enr: Enrollment, definition: FlowDefinition, step_id: str, now: datetime
) -> None:
    """Move ``enr`` to ``step_id``: a wait starts (due when it ends), any other step is due
    now; ``exit`` completes the enrollment."""
    enr.updated_at = now
    if step_id == EXIT:
        _finish(session, enr, now, "completed", "end of flow", log_it=True)
        return
    enr.step = step_id
    step = definition.step(step_id)
    assert step is not None
    if step.wait is None:
        enr.due_at, enr.waiting_for = now, None
        return
    facts = _facts(session, enr, now)
    enr.due_at = domain.wait_until(step.wait, now, facts)
    enr.waiting_for = step.wait.event
    enr.context = {k: v for k, v in enr.context.items() if k != "event_seen"}
    what = f"for {step.wait.event}" if step.wait.event else "until"
    _log(session, enr, now, "wait", "waiting", f"{what} {enr.due_at.isoformat()}")


def _finish(
    session: Session, enr: Enrollment, now: datetime, status: str, reason: str, *, log_it: bool
) -> None:
    enr.status, enr.exit_reason, enr.ended_at = status, reason[:200], now
    enr.due_at, enr.waiting_for, enr.updated_at = None, None, now
    if log_it:
        _log(session, enr, now, EXIT, status, reason)


def exit_enrollment(session: Session, enr: Enrollment, now: datetime, reason: str) -> None:
    """End ``enr`` at once, whatever its step (a goal reached, a flow's customer erased)."""
    _finish(session, enr, now, "exited", reason, log_it=True)


def event_happened(session: Session, enr: Enrollment, event_id: int, now: datetime) -> None:
    """The event ``enr`` waits for happened: the wait ends now (on its ``on_event`` branch)."""
    enr.context = {**enr.context, "event_seen": event_id}
    enr.waiting_for, enr.due_at, enr.updated_at = None, now, now


def _log(
    session: Session,
    enr: Enrollment,
    now: datetime,
    kind: str,
    outcome: str,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    row = {
        "merchant_id": enr.merchant_id,
        "enrollment_id": enr.id,
        "customer_id": enr.customer_id,
        "at": now,
        "step": enr.step,
        "kind": kind,
        "outcome": outcome,
        "reason": None if reason is None else reason[:200],
        "detail": detail or {},
    }
    buffered = session.info.get(_HISTORY)
    if buffered is not None:
        buffered.append(row)
    else:
        session.add(EnrollmentStep(**row))


# --- advancing ---------------------------------------------------------------------------


def advance_due(factory: sessionmaker[Session], now: datetime, *, batch: int = BATCH) -> int:
    """Advance every enrollment due by ``now``, a batch per transaction, until none is left
    (safe in several processes at once: claims are disjoint). Returns how many were
    advanced."""
    total = 0
    while True:
        with transaction(factory) as session:
            claimed = FlowRepository(session).claim_due(now, batch)
            advance_batch(session, claimed, now)
        total += len(claimed)
        if len(claimed) < batch:
            return total


def advance_batch(session: Session, claimed: Sequence[Enrollment], now: datetime) -> None:
    """Advance claimed enrollments in one savepoint; if one fails, again one savepoint each,
    so the failure is retried later alone and the others go on. The sends of the
    enrollments due on a send step are decided first, together (``messaging.send_many``: a
    handful of statements for the batch instead of ~14 per message), then every enrollment
    runs its steps in order, the already decided send taking its outcome. The batch's
    enrollment rows and history rows are written together at its end (a statement each)."""
    definitions: dict[tuple[int, int], FlowDefinition] = {}
    try:
        with session.begin_nested():
            session.info[_HISTORY] = history = []
            try:
                decided = _decide_sends(session, claimed, now, definitions)
                for enr in claimed:
                    _run(session, enr, now, definitions, decided)
            finally:
                session.info.pop(_HISTORY, None)
            repo = FlowRepository(session)
            repo.write_enrollments([e for e in claimed if inspect(e).modified])
            repo.add_history(history)
    except Exception:
        log.warning("batch of %d enrollments failed, again one by one", len(claimed), exc_info=True)
        for enr in claimed:  # back to their stored state (the savepoint rolled back)
            session.expire(enr)
        for enr in claimed:
            advance(session, enr, now, definitions)


Decided = dict[tuple[int, str], Any]  # (enrollment id, step) -> messaging.SendOutcome


def _decide_sends(
    session: Session,
    claimed: Sequence[Enrollment],
    now: datetime,
    definitions: dict[tuple[int, int], FlowDefinition],
) -> Decided:
    """The outcomes of the send steps the claimed enrollments are due on, decided in one
    ``send_many``. Only for customers with one due enrollment in the batch: their send is the
    first thing their enrollment does, and nothing another enrollment of the batch does can
    change its decision, so the result is what advancing them one by one gives. The others
    (and sends whose trigger no longer holds) are left to the step-by-step path."""
    from fidele.messaging import service as messaging

    due = [e for e in claimed if e.status == "active" and e.due_at is not None and e.due_at <= now]
    per_customer = Counter(e.customer_id for e in due)
    keys: list[tuple[int, str]] = []
    requests: list[Any] = []
    for enr in due:
        if per_customer[enr.customer_id] > 1:
            continue
        definition = _definition(session, enr, definitions)
        step = definition.step(enr.step)
        if step is None or step.kind != "send":
            continue
        if _trigger_broken(session, enr, definition, now) is not None:
            continue
        keys.append((enr.id, enr.step))
        requests.append(_send_request(enr, definition, step))
    if not requests:
        return {}
    return dict(zip(keys, messaging.send_many(session, requests, now), strict=True))


def _definition(
    session: Session, enr: Enrollment, definitions: dict[tuple[int, int], FlowDefinition]
) -> FlowDefinition:
    key = (enr.flow_id, enr.version)
    if key not in definitions:
        definitions[key] = version_definition(session, *key)
    return definitions[key]


def advance(
    session: Session,
    enr: Enrollment,
    now: datetime,
    definitions: dict[tuple[int, int], FlowDefinition] | None = None,
) -> None:
    """Run ``enr``'s due steps until it waits, defers or ends; a failure is retried later
    (its work rolled back), and after MAX_ATTEMPTS the enrollment fails."""
    try:
        with session.begin_nested():
            _run(session, enr, now, {} if definitions is None else definitions, {})
    except Exception as exc:  # a step's failure must not stop the other enrollments
        log.exception("enrollment %s failed at step %s", enr.id, enr.step)
        session.refresh(enr)
        enr.attempts += 1
        reason = f"{type(exc).__name__}: {exc}"[:200]
        if enr.attempts >= MAX_ATTEMPTS:
            _finish(session, enr, now, "failed", reason, log_it=True)
        else:
            enr.due_at = now + timedelta(minutes=5 * 2**enr.attempts)
            _log(session, enr, now, "error", "retry", reason)


def _run(
    session: Session,
    enr: Enrollment,
    now: datetime,
    definitions: dict[tuple[int, int], FlowDefinition],
    decided: Decided,
) -> None:
    definition = _definition(session, enr, definitions)
    for _ in range(MAX_STEPS_PER_PASS):
        if enr.status != "active" or enr.due_at is None or enr.due_at > now:
            return
        step = definition.step(enr.step)
        if step is None:  # cannot happen with a validated definition
            _finish(session, enr, now, "failed", f"unknown step {enr.step}", log_it=True)
            return
        target = _execute(session, enr, definition, step, now, decided)
        if target is None:  # stays on this step (deferred) or ended
            return
        _enter(session, enr, definition, target, now)
    enr.due_at = now + timedelta(minutes=1)  # a loop of instant steps: go on later
    _log(session, enr, now, "loop", "paused", f"{MAX_STEPS_PER_PASS} steps in one pass")


def _execute(
    session: Session,
    enr: Enrollment,
    definition: FlowDefinition,
    step: Step,
    now: datetime,
    decided: Decided,
) -> str | None:
    """Run one due step; the next step id, or None if the enrollment stays or ended."""
    kind = step.kind
    if kind == "wait":
        branch = None
        if step.wait is not None and step.wait.event is not None:
            branch = "event" if "event_seen" in enr.context else "timeout"
            _log(session, enr, now, "wait", "event" if branch == "event" else "timeout")
        return domain.next_after(definition, enr.step, branch)
    if kind == "exit":
        assert step.exit is not None
        _finish(session, enr, now, "exited", step.exit.reason, log_it=True)
        return None
    if kind == "condition":
        condition = step.condition
        assert condition is not None
        if condition.order is not None:
            yes = _order_fact(session, enr, condition.order)
        else:
            assert condition.rule is not None
            yes = _matches(session, enr.merchant_id, enr.customer_id, condition.rule, now)
        branch = "yes" if yes else "no"
        why = condition.reason(yes)
        _log(session, enr, now, "condition", branch, why)
        target = domain.next_after(definition, enr.step, branch)
        if target == EXIT and (step.yes == EXIT or step.no == EXIT):
            reason = why or f"condition {enr.step}: {branch}"
            _finish(session, enr, now, "exited", reason, log_it=False)
            return None
        return target
    if kind == "send":
        return _send(session, enr, definition, step, now, decided.pop((enr.id, enr.step), None))
    if kind == "reward":
        from fidele.campaigns import actions

        actions.reward(session, enr, definition, step, now, _log)
        return domain.next_after(definition, enr.step)
    if kind == "update":
        from fidele.campaigns import actions

        actions.update(session, enr, definition, step, now, _log)
        return domain.next_after(definition, enr.step)
    raise AssertionError(kind)


def _send_request(enr: Enrollment, definition: FlowDefinition, step: Step) -> Any:
    """The message a send step asks messaging for (``messaging.SendRequest``)."""
    from fidele.messaging import service as messaging

    assert step.send is not None
    return messaging.SendRequest(
        merchant_id=enr.merchant_id,
        customer_id=enr.customer_id,
        template=step.send.template,
        topic=step.send.topic or definition.topic,
        key=f"flow:{enr.id}:{enr.step}",
        channel=step.send.channel or definition.channel,
        context={**_send_context(enr, definition), **step.send.context},
        source={
            "flow_id": enr.flow_id,
            "flow_version": enr.version,
            "step": enr.step,
            "enrollment_id": enr.id,
            "flow": definition.name,
        },
        hold_out=domain.held_out(enr.flow_id, enr.customer_id, definition.holdout),
    )


def _send(
    session: Session,
    enr: Enrollment,
    definition: FlowDefinition,
    step: Step,
    now: datetime,
    outcome: Any = None,
) -> str | None:
    """Run a send step; ``outcome``: the send already decided with the batch's (its trigger
    checked then), else it is checked and decided now."""
    from fidele.messaging import service as messaging

    assert step.send is not None
    if outcome is None:
        why_not = _trigger_broken(session, enr, definition, now)
        if why_not is not None:
            _finish(session, enr, now, "exited", why_not, log_it=True)
            return None
        r = _send_request(enr, definition, step)
        outcome = messaging.send(
            session,
            merchant_id=r.merchant_id,
            customer_id=r.customer_id,
            template=r.template,
            topic=r.topic,
            key=r.key,
            now=now,
            channel=r.channel,
            context=r.context,
            source=r.source,
            hold_out=r.hold_out,
        )
    detail = {"template": step.send.template, "send_id": outcome.send_id}
    if outcome.status == "deferred":
        assert outcome.retry_at is not None
        enr.due_at, enr.updated_at = outcome.retry_at, now
        reason = f"{outcome.reason or 'deferred'} until {outcome.retry_at.isoformat()}"
        _log(session, enr, now, "send", "deferred", reason, detail)
        return None
    status = "sent" if outcome.status in ("queued", "duplicate") else outcome.status
    _log(session, enr, now, "send", status, outcome.reason, detail)
    return domain.next_after(definition, enr.step)


def _send_context(enr: Enrollment, definition: FlowDefinition) -> dict[str, Any]:
    keep = (
        "coupon_code",
        "coupon_value",
        "coupon_kind",
        "coupon_ends_at",
        "coupon_drops_at",
        "points",
        "order_id",
        "survey_occasion",
    )
    return {"flow": definition.name, **{k: enr.context[k] for k in keep if k in enr.context}}


def _trigger_broken(
    session: Session, enr: Enrollment, definition: FlowDefinition, now: datetime
) -> str | None:
    """Why the trigger no longer holds (re-checked before every send), or None."""
    trigger = definition.trigger
    if trigger.rule is not None and not _matches(
        session, enr.merchant_id, enr.customer_id, trigger.rule, now
    ):
        return "trigger condition no longer holds"
    if trigger.prediction is not None:
        last = FlowRepository(session).last_order_at(enr.customer_id)
        entered_last = enr.context.get("last_order_at")
        if last is not None and entered_last is not None and last.isoformat() > entered_last:
            return "ordered since entering"
    return None


def _matches(
    session: Session, merchant_id: int, customer_id: int, rule: dict[str, Any], now: datetime
) -> bool:
    from fidele.segments import service as segments

    return segments.customer_matches(
        session, merchant_id=merchant_id, customer_id=customer_id, rule=rule, now=now
    )


def _order_fact(session: Session, enr: Enrollment, fact: str) -> bool:
    """An order condition on the enrollment's own order (the one its trigger event named);
    false without one."""
    order_id = enr.context.get("order_id")
    if not isinstance(order_id, int):
        return False
    if fact == "reviewed":
        from fidele.feedback import service as feedback

        return feedback.order_reviewed(session, order_id)
    raise AssertionError(fact)  # the definition was validated


def _facts(session: Session, enr: Enrollment, now: datetime) -> domain.Facts:
    customer = session.get(Customer, enr.customer_id)
    drops = enr.context.get("coupon_drops_at")
    return domain.Facts(
        tz=domain.zone(customer.timezone if customer else None),
        gap_days=enr.context.get("gap_days"),
        coupon_drops_at=datetime.fromisoformat(drops) if drops else None,
    )


def flow_version_row(session: Session, flow: Flow) -> FlowVersion | None:
    return FlowRepository(session).version(flow.id, flow.active_version)
