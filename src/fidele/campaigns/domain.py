"""Flows (journeys) as pure values: the definition document, its validation, the step graph and
the timing of waits and date triggers. No I/O: the service feeds customers' facts in.

A definition::

    name: abandoned_cart
    trigger: {event: cart.abandoned}          # or {date: birthday, at: "09:00"}
                                              # or {prediction: {overdue_ratio: 1.0}}
    goals: [order.placed]                     # ends the enrollment at once, whatever the step
    reentry: {days: 7}                        # "never" (default), "always" or {days: N}
    steps:
      - wait: {hours: 1}
      - send: {template: cart_1}
      - id: check
        condition: {rule: {...}}              # a segment rule on the customer, now
        yes: reward
        no: exit
      - condition: {order: reviewed}          # or a fact of the trigger's own order
        yes: exit
      - id: reward
        reward: {coupon: {kind: percent_off, value: 1000, days: 14}}

Steps run in order; ``yes``/``no`` (condition), ``on_event``/``on_timeout`` (wait for an event)
and ``next`` jump to a step id or to ``exit``."""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fidele.events.domain import EVENT_TYPE_PATTERN
from fidele.kit.documents import DocumentError, validate, validate_yaml

EXIT = "exit"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
STEP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$"
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DATE_KINDS = ("birthday", "first_order_anniversary")
FIXED_DATE = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
MAX_WAIT_DAYS = 3660
EventType = Annotated[str, Field(pattern=EVENT_TYPE_PATTERN, max_length=100)]
StepRef = Annotated[str, Field(pattern=STEP_ID_PATTERN)]


class FlowDefinitionError(DocumentError):
    """A flow definition that does not validate (each error: line, path, reason)."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duration(_Doc):
    days: int = Field(0, ge=0, le=MAX_WAIT_DAYS)
    hours: int = Field(0, ge=0, le=MAX_WAIT_DAYS * 24)
    minutes: int = Field(0, ge=0, le=MAX_WAIT_DAYS * 24 * 60)

    def delta(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes)


class Wait(Duration):
    """Wait a duration (``days``/``hours``/``minutes``), or a fraction of the customer's own
    purchase gap (``gap``: 0.25 = a quarter of their expected days between orders), then, if
    ``until`` is given, to the next such local time (on one of ``weekdays`` if given). With
    ``event``, the wait ends early when that event happens (``on_event``), else after the
    duration (``timeout``, ``on_timeout``)."""

    gap: float | None = Field(None, gt=0, le=20)
    until: str | None = Field(None, pattern=TIME_PATTERN)
    weekdays: list[Literal[WEEKDAYS]] | None = Field(None, min_length=1)  # type: ignore[valid-type]
    before_coupon_drop: Duration | None = None
    event: EventType | None = None
    timeout: Duration | None = None
    on_event: StepRef | None = None
    on_timeout: StepRef | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Wait:
        if self.event is None and (self.timeout or self.on_event or self.on_timeout):
            raise ValueError("timeout, on_event and on_timeout need an event to wait for")
        if self.event is not None and self.timeout is None:
            raise ValueError("waiting for an event needs a timeout (e.g. timeout: {days: 3})")
        if self.event is not None and (self.delta() or self.gap):
            raise ValueError("waiting for an event takes its duration as timeout, not days")
        if self.weekdays and not self.until:
            raise ValueError("weekdays needs until (the local time of day to wait for)")
        if self.before_coupon_drop and (self.delta() or self.gap or self.event):
            raise ValueError("before_coupon_drop is a wait of its own")
        if not (self.delta() or self.gap or self.until or self.event or self.before_coupon_drop):
            raise ValueError(
                "a wait needs days/hours/minutes, gap, until, event or before_coupon_drop"
            )
        return self


# What a condition can ask about the order the trigger's event named (``order_id``), and
# the reason its history (and exit) shows for yes / no.
ORDER_CONDITIONS: dict[str, tuple[str, str]] = {
    "reviewed": ("already_reviewed", "not_reviewed"),  # a review of that very order
}


class Condition(_Doc):
    """A segment ``rule`` on the customer now, or ``order``: a fact of the enrollment's own
    order (the one its trigger event named), e.g. ``reviewed``."""

    rule: dict[str, Any] | None = None
    order: str | None = None

    @field_validator("order")
    @classmethod
    def _order(cls, v: str | None) -> str | None:
        if v is not None and v not in ORDER_CONDITIONS:
            raise ValueError(f"unknown order condition {v!r}: one of {', '.join(ORDER_CONDITIONS)}")
        return v

    @model_validator(mode="after")
    def _one(self) -> Condition:
        if (self.rule is None) == (self.order is None):
            raise ValueError("a condition is exactly one of rule, order")
        return self

    def reason(self, yes: bool) -> str | None:
        """What the history says of the outcome (order conditions)."""
        if self.order is None:
            return None
        return ORDER_CONDITIONS[self.order][0 if yes else 1]


class Send(_Doc):
    template: str = Field(min_length=1, max_length=100)
    topic: str | None = Field(None, min_length=1, max_length=50)
    channel: str | None = Field(None, min_length=1, max_length=20)
    context: dict[str, Any] = Field(default_factory=dict)


class CouponReward(_Doc):
    kind: Literal["amount_off", "percent_off", "free_shipping"] = "percent_off"
    value: int = Field(0, ge=0, le=10**12)
    days: int = Field(30, ge=1, le=3660)
    min_subtotal: int | None = Field(None, ge=0, le=10**12)

    @model_validator(mode="after")
    def _value(self) -> CouponReward:
        if self.kind == "percent_off" and not 0 < self.value <= 10_000:
            raise ValueError("a percent_off value is in basis points, 1 to 10000")
        if self.kind == "amount_off" and self.value <= 0:
            raise ValueError("an amount_off value is in minor units, above 0")
        return self


class NextOrderCoupon(_Doc):
    """The customer's next-order coupon from promotions (for the trigger's order); one is
    issued with this ladder (``[[days, bp], ...]``) when promotions issued none."""

    schedule: list[tuple[int, int]] = Field(default=[(14, 1500), (30, 1000), (60, 500)])

    @field_validator("schedule")
    @classmethod
    def _ladder(cls, v: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if not v or any(d < 1 or not 0 < bp <= 10_000 for d, bp in v):
            raise ValueError("each rung is [days >= 1, basis points 1..10000]")
        return sorted(v)


class Reward(_Doc):
    coupon: CouponReward | None = None
    next_order_coupon: NextOrderCoupon | None = None
    points: int | None = Field(None, ge=1, le=10**9)
    reason: str = Field("flow reward", max_length=200)

    @model_validator(mode="after")
    def _one(self) -> Reward:
        given = [k for k in ("coupon", "next_order_coupon", "points") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("a reward is exactly one of coupon, next_order_coupon, points")
        return self


class ConsentChange(_Doc):
    topic: str = Field(min_length=1, max_length=50)
    channel: str = Field("email", min_length=1, max_length=20)
    granted: bool


class Update(_Doc):
    attributes: dict[str, Any] | None = None
    tag: str | None = Field(None, min_length=1, max_length=100)
    consent: ConsentChange | None = None

    @model_validator(mode="after")
    def _some(self) -> Update:
        if not (self.attributes or self.tag or self.consent):
            raise ValueError("an update sets attributes, adds a tag or changes a consent")
        return self


class Exit(_Doc):
    reason: str = Field("exit step", max_length=200)


class Step(_Doc):
    id: StepRef | None = None
    wait: Wait | None = None
    condition: Condition | None = None
    send: Send | None = None
    reward: Reward | None = None
    update: Update | None = None
    exit: Exit | None = None
    yes: StepRef | None = None
    no: StepRef | None = None
    next: StepRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_exit(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("exit") in (True, None) and "exit" in data:
            return {**data, "exit": {}}
        if data == "exit":
            return {"exit": {}}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a step is exactly one of {', '.join(KINDS)} (got {kinds or 'none'})")
        if (self.yes or self.no) and self.condition is None:
            raise ValueError("yes/no belong to a condition step")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)


KINDS = ("wait", "condition", "send", "reward", "update", "exit")


class Prediction(_Doc):
    """Days since the last order over the customer's expected gap reaches ``overdue_ratio``;
    past ``at_most`` the customer is taken as gone (not enrolled when a flow is switched on
    over years of history)."""

    overdue_ratio: float = Field(ge=0.1, le=20)
    at_most: float = Field(3.0, ge=0.1, le=100)

    @model_validator(mode="after")
    def _order(self) -> Prediction:
        if self.at_most <= self.overdue_ratio:
            raise ValueError("at_most must be above overdue_ratio")
        return self


class Trigger(_Doc):
    """What enrolls a customer: an event (with payload filters ``where`` and, for
    ``order.placed``, ``first_order``), a yearly date in the customer's timezone, or a
    prediction (days since the last order >= ``overdue_ratio`` x the customer's own gap).
    ``rule`` (a segment rule) must hold at entry and again before every send."""

    event: EventType | list[EventType] | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    first_order: bool = False
    date: str | None = None
    at: str = Field("09:00", pattern=TIME_PATTERN)
    prediction: Prediction | None = None
    rule: dict[str, Any] | None = None

    @field_validator("date")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        if v is not None and v not in DATE_KINDS and not FIXED_DATE.match(v):
            raise ValueError("a date is birthday, first_order_anniversary or MM-DD (12-31)")
        return v

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        given = [k for k in ("event", "date", "prediction") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a trigger is exactly one of event, date, prediction")
        if self.event == []:
            raise ValueError("event needs at least one event type")
        if self.first_order and self.events != ["order.placed"]:
            raise ValueError("first_order applies to the order.placed event")
        if self.where and self.event is None:
            raise ValueError("where filters an event's payload")
        return self

    @property
    def kind(self) -> str:
        return "event" if self.event else "date" if self.date else "prediction"

    @property
    def events(self) -> list[str]:
        if self.event is None:
            return []
        return [self.event] if isinstance(self.event, str) else list(self.event)


class Reentry(_Doc):
    days: int = Field(ge=1, le=3660)


class FlowDefinition(_Doc):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field("", max_length=2000)
    topic: str = Field("lifecycle", min_length=1, max_length=50)
    channel: str = Field("email", min_length=1, max_length=20)
    trigger: Trigger
    goals: list[EventType] = Field(default_factory=list)
    reentry: Literal["never", "always"] | Reentry = "never"
    # percent of customers whose messages are held out (recorded, not sent), the same
    # customers for the whole flow, to measure what the flow brings
    holdout: int = Field(0, ge=0, le=50)
    steps: list[Step] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _graph(self) -> FlowDefinition:
        ids = self.step_ids()
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"step id {dup!r} is used twice")
        if EXIT in ids:
            raise ValueError("'exit' is reserved for jumps: name the step otherwise")
        for i, step in enumerate(self.steps):
            for ref in _refs(step):
                if ref != EXIT and ref not in ids:
                    raise ValueError(f"step {ids[i]!r} jumps to unknown step {ref!r}")
        return self

    def step_ids(self) -> list[str]:
        return [s.id or f"s{i + 1}" for i, s in enumerate(self.steps)]

    def step(self, step_id: str) -> Step | None:
        ids = self.step_ids()
        return self.steps[ids.index(step_id)] if step_id in ids else None

    def first(self) -> str:
        return self.step_ids()[0]

    def after(self, step_id: str) -> str:
        """The step that follows ``step_id`` in order (``exit`` after the last one)."""
        ids = self.step_ids()
        i = ids.index(step_id)
        return ids[i + 1] if i + 1 < len(ids) else EXIT


def _refs(step: Step) -> list[str]:
    refs = [step.yes, step.no, step.next]
    if step.wait is not None:
        refs += [step.wait.on_event, step.wait.on_timeout]
    return [r for r in refs if r is not None]


def parse(data: Any) -> FlowDefinition:
    """A definition from parsed JSON/YAML; raises :class:`FlowDefinitionError`."""
    definition = validate(FlowDefinition, data, FlowDefinitionError)
    _check_rules(definition)
    return definition


def parse_yaml(text: str) -> FlowDefinition:
    definition = validate_yaml(FlowDefinition, text, FlowDefinitionError)
    _check_rules(definition)
    return definition


def _check_rules(definition: FlowDefinition) -> None:
    """Segment rules (trigger.rule, condition steps) validated by the segments domain, each
    error located by its path in the flow."""
    from fidele.segments.domain import RuleError, parse_rule

    found: list[tuple[str, Any]] = []
    if definition.trigger.rule is not None:
        found.append(("trigger.rule", definition.trigger.rule))
    errors: list[tuple[int | None, str, str]] = []
    for i, step in enumerate(definition.steps):
        if step.condition is None:
            continue
        if step.condition.rule is not None:
            found.append((f"steps.{i}.condition.rule", step.condition.rule))
        elif definition.trigger.kind != "event":
            errors.append(
                (
                    None,
                    f"steps.{i}.condition.order",
                    "an order condition needs an event trigger (the order its event names)",
                )
            )
    for path, rule in found:
        try:
            parse_rule(rule, path=path)
        except RuleError as exc:
            errors.append((None, exc.field, exc.reason))
    if errors:
        raise FlowDefinitionError(errors)


# --- transitions -------------------------------------------------------------------------


def next_after(definition: FlowDefinition, step_id: str, branch: str | None = None) -> str:
    """Where an enrollment goes once ``step_id`` is done. ``branch`` is ``yes``/``no`` for a
    condition, ``event``/``timeout`` for a wait on an event."""
    step = definition.step(step_id)
    assert step is not None
    target: str | None = None
    if branch == "yes":
        target = step.yes
    elif branch == "no":
        target = step.no
    elif branch == "event" and step.wait is not None:
        target = step.wait.on_event
    elif branch == "timeout" and step.wait is not None:
        target = step.wait.on_timeout
    target = target or step.next
    if step.kind == "exit":
        return EXIT
    return target or definition.after(step_id)


def held_out(flow_id: int, customer_id: int, percent: int) -> bool:
    """Whether the customer is in the flow's holdout group (stable across enrollments)."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"holdout:{flow_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def reentry_allowed(
    policy: Literal["never", "always"] | Reentry, last_entered: datetime | None, now: datetime
) -> bool:
    if last_entered is None or policy == "always":
        return True
    if policy == "never":
        return False
    return now - last_entered >= timedelta(days=policy.days)


def payload_matches(where: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Each key of ``where`` (dotted for nested values) equals the payload's value, or is in
    it when ``where`` gives a list."""
    for key, expected in where.items():
        value: Any = payload
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(expected, list):
            if value not in expected:
                return False
        elif value != expected:
            return False
    return True


# --- timing ------------------------------------------------------------------------------


def zone(name: str | None) -> ZoneInfo:
    """The customer's timezone, UTC when unknown or invalid."""
    if name:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(name)
    return ZoneInfo("UTC")


def hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def next_local_time(
    after: datetime, at: str, tz: ZoneInfo, weekdays: list[str] | None = None
) -> datetime:
    """The first instant >= ``after`` that is ``at`` o'clock in ``tz`` (on one of
    ``weekdays``), in UTC. A local time skipped by a DST change falls on the hour after."""
    local = after.astimezone(tz)
    allowed = {WEEKDAYS.index(d) for d in weekdays} if weekdays else set(range(7))
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        candidate = datetime.combine(day, hhmm(at), tzinfo=tz).astimezone(UTC)
        if candidate >= after:
            return candidate
    raise AssertionError("unreachable: a week holds every weekday")


@dataclass(frozen=True)
class Facts:
    """What the timing of a wait needs to know of the customer."""

    tz: ZoneInfo
    gap_days: float | None = None
    coupon_drops_at: datetime | None = None


def wait_until(wait: Wait, now: datetime, facts: Facts) -> datetime:
    """When a wait that starts at ``now`` ends (for a wait on an event: its timeout)."""
    if wait.event is not None:
        assert wait.timeout is not None
        return now + wait.timeout.delta()
    if wait.before_coupon_drop is not None:
        if facts.coupon_drops_at is None:
            return now
        return max(now, facts.coupon_drops_at - wait.before_coupon_drop.delta())
    due = now + wait.delta()
    if wait.gap is not None:
        due += timedelta(days=wait.gap * (facts.gap_days or DEFAULT_GAP_DAYS))
    if wait.until is not None:
        due = next_local_time(due, wait.until, facts.tz, wait.weekdays)
    return due


DEFAULT_GAP_DAYS = 90.0


def overdue_ratio(last_order: datetime, gap_days: float, now: datetime) -> float:
    """Days since the last order over the customer's expected gap (as analytics computes
    ``overdue_ratio``, but as of ``now``)."""
    return (now - last_order).total_seconds() / 86400 / max(gap_days, 1.0)


def overdue_since(last_order: datetime, gap_days: float, ratio: float) -> datetime:
    """The instant the customer becomes ``ratio`` overdue."""
    return last_order + timedelta(days=ratio * max(gap_days, 1.0))


def yearly_occurrence(month: int, day: int, year: int) -> date:
    """``month``/``day`` in ``year``; 29 February is the 28th in other years."""
    try:
        return date(year, month, day)
    except ValueError:
        return date(year, month, 28)


def date_occurrence(
    trigger: Trigger, anchor: date | None, now: datetime, tz: ZoneInfo
) -> datetime | None:
    """The instant this year's occurrence of a date trigger falls, in UTC (``anchor`` is the
    birthday or first order date; None for a fixed MM-DD), or None without an anchor. The
    year is the customer's local year at ``now``."""
    assert trigger.date is not None
    if trigger.date in DATE_KINDS:
        if anchor is None:
            return None
        month, day = anchor.month, anchor.day
    else:
        month, day = (int(p) for p in trigger.date.split("-"))
    year = now.astimezone(tz).year
    on = yearly_occurrence(month, day, year)
    if trigger.date == "first_order_anniversary" and anchor is not None and on <= anchor:
        return None  # the first order itself is no anniversary
    return datetime.combine(on, hhmm(trigger.at), tzinfo=tz).astimezone(UTC)


def date_due(
    trigger: Trigger, anchor: date | None, now: datetime, tz: ZoneInfo, window: timedelta
) -> str | None:
    """The occurrence key (``"2026"``) when this year's occurrence fell within ``window``
    before ``now`` (the job's catch-up window), else None."""
    at = date_occurrence(trigger, anchor, now, tz)
    if at is None or not now - window < at <= now:
        return None
    return str(at.astimezone(tz).year)
