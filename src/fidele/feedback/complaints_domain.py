"""Pure rules of complaints: categories, status transitions, SLA due times on the merchant's
business hours and timezone, breach flags, the recovery budget, and the retention of
complainants. No I/O: times are passed in, aware UTC."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CATEGORIES = (
    "late_delivery",
    "damaged",
    "wrong_item",
    "missing_item",
    "refund",
    "quality",
    "service",
    "other",
)
STATUSES = ("open", "in_progress", "resolved", "rejected")
OPEN_STATUSES = frozenset({"open", "in_progress"})
# open -> in progress -> resolved / rejected; an open complaint may be rejected at once (spam,
# a duplicate), but is resolved only after someone took it in hand.
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "rejected"}),
    "in_progress": frozenset({"resolved", "rejected"}),
    "resolved": frozenset(),
    "rejected": frozenset(),
}
GESTURE_KINDS = ("points", "coupon", "store_credit")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HOURS = {d: "09:00-18:00" for d in WEEKDAYS[:5]}
# Business hours: 4 to first response, then two to three business days (9 h a day) to resolve.
DEFAULT_SLA: dict[str, dict[str, float]] = {
    "late_delivery": {"first_response_hours": 4, "resolution_hours": 18},
    "damaged": {"first_response_hours": 4, "resolution_hours": 18},
    "wrong_item": {"first_response_hours": 4, "resolution_hours": 18},
    "missing_item": {"first_response_hours": 4, "resolution_hours": 18},
    "refund": {"first_response_hours": 4, "resolution_hours": 27},
    "quality": {"first_response_hours": 8, "resolution_hours": 27},
    "service": {"first_response_hours": 4, "resolution_hours": 18},
    "other": {"first_response_hours": 8, "resolution_hours": 27},
}
DEFAULT_BUDGET_MINOR = 10_000  # a month's service recovery: 100.00 in the merchant's currency
DEFAULT_LATE_RULE: dict[str, Any] = {"min_days_late": 3, "kind": "coupon", "value": 500}
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class RuleError(ValueError):
    """A rule the merchant set does not hold; ``field`` names where."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RuleError(f"unknown IANA timezone {name!r}", "timezone") from exc


def parse_span(text: str, field: str) -> tuple[time, time] | None:
    """``"09:00-18:00"`` as (start, end); ``"24:00"`` ends at midnight; None if closed."""
    match = _SPAN.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise RuleError("business hours are 'HH:MM-HH:MM'", field)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if (h2, m2) > (24, 0) or (h1, m1) >= (h2, m2):
        raise RuleError("the day must end after it starts (at 24:00 at the latest)", field)
    end = time.max if h2 == 24 else time(h2, m2)
    return time(h1, m1), end


def business_hours(doc: Mapping[str, str] | None) -> dict[int, tuple[time, time]]:
    """Weekday (0 = Monday) -> opening span, from ``{"mon": "09:00-18:00", ...}`` (a day not
    given is closed). At least one day must be open, else no due time would ever come."""
    doc = DEFAULT_HOURS if doc is None else doc
    out: dict[int, tuple[time, time]] = {}
    for day, span in doc.items():
        if day not in WEEKDAYS:
            raise RuleError(f"unknown day {day!r}: use {', '.join(WEEKDAYS)}", "business_hours")
        parsed = parse_span(span, f"business_hours.{day}")
        if parsed is not None:
            out[WEEKDAYS.index(day)] = parsed
    if not out:
        raise RuleError("at least one day must have business hours", "business_hours")
    return out


def _window(day: date, span: tuple[time, time], tz: ZoneInfo) -> tuple[datetime, datetime]:
    """One day's opening in UTC: the wall-clock times in the zone on that date, so a day after a
    DST change opens at the same local hour and a different UTC one."""
    start = datetime.combine(day, span[0], tzinfo=tz).astimezone(UTC)
    if span[1] == time.max:
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    else:
        end = datetime.combine(day, span[1], tzinfo=tz).astimezone(UTC)
    return start, end


def add_business_time(
    start: datetime, hours: float, tz: ZoneInfo, opening: Mapping[int, tuple[time, time]]
) -> datetime:
    """The moment ``hours`` of business time have passed since ``start`` (aware), counting only
    the opening hours of each local day. A complaint made at night or on a weekend starts
    counting when the shop opens."""
    left = timedelta(hours=hours)
    day = start.astimezone(tz).date()
    for _ in range(800):  # at least one open day a week: two years always suffice
        span = opening.get(day.weekday())
        if span is not None:
            w_start, w_end = _window(day, span, tz)
            cur = max(start, w_start)
            if cur < w_end:
                if cur + left <= w_end:
                    return cur + left
                left -= w_end - cur
        day += timedelta(days=1)
    raise RuleError("no business hours to count on", "business_hours")


def sla_for(overrides: Mapping[str, Any] | None, category: str) -> dict[str, float]:
    merged = dict(DEFAULT_SLA[category])
    merged.update((overrides or {}).get(category) or {})
    return merged


def breached(due: datetime | None, done_at: datetime | None, now: datetime) -> bool:
    """Late: done after the due time, or not done and the due time has passed."""
    if due is None:
        return False
    return (done_at or now) > due


def month_of(at: datetime, tz: ZoneInfo) -> str:
    """The budget month of a moment, in the merchant's zone (``"2026-06"``)."""
    return at.astimezone(tz).strftime("%Y-%m")


def budget_left(budget: int, spent: int) -> int:
    return max(budget - spent, 0)


# A late delivery learnt this long after it happened (an import of past orders, a shop synced
# late) counts in the KPIs and is logged, but earns no automatic apology: the gesture is for
# a customer still waiting for an answer, not for last year's parcel.
APOLOGY_WINDOW = timedelta(days=30)


def apology_too_late(delivered: datetime, now: datetime) -> bool:
    return delivered < now - APOLOGY_WINDOW


def days_late(promised: datetime, delivered: datetime, tz: ZoneInfo) -> int:
    """Calendar days between the promised and the actual delivery date, in the merchant's zone
    (0 or less: on time)."""
    return (delivered.astimezone(tz).date() - promised.astimezone(tz).date()).days


def resolution_bucket(hours: float) -> str:
    if hours <= 24:
        return "<=1d"
    if hours <= 72:
        return "1-3d"
    if hours <= 168:
        return "3-7d"
    return ">7d"


# -- retention of complainants ------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    customer_id: int
    resolved_at: datetime
    gesture: str  # "none" or one of GESTURE_KINDS
    hours: float  # from opening to resolution


def _repeat(orders: Sequence[datetime], anchor: datetime, days: int) -> bool:
    """An order placed in (anchor, anchor + days]."""
    i = bisect.bisect_right(orders, anchor)
    return i < len(orders) and orders[i] <= anchor + timedelta(days=days)


def _rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def retention(
    complaints: Iterable[Resolved],
    orders: Mapping[int, Sequence[datetime]],
    as_of: datetime,
    windows: Sequence[int] = (90, 180),
    complained: Iterable[int] = (),
) -> dict[str, Any]:
    """Repeat rate ``days`` after resolution of complainants (each customer's LAST resolved
    complaint), overall, by gesture and by resolution time, against customers without any
    complaint, whose anchor is their first order. Only anchors whose whole window has passed by
    ``as_of`` count (``n``), so a recent resolution does not look like a lost customer.

    ``orders`` maps every customer with an order to their order times, sorted;
    ``complained`` names customers with any complaint (open, rejected), kept out of the
    baseline as well."""
    last: dict[int, Resolved] = {}
    for c in complaints:
        if c.customer_id not in last or c.resolved_at > last[c.customer_id].resolved_at:
            last[c.customer_id] = c
    excluded = set(complained) | set(last)
    out: dict[str, Any] = {}
    for days in windows:
        groups: dict[str, list[int]] = {}

        def count(key: str, hit: bool, _groups: dict[str, list[int]] = groups) -> None:
            n_hit = _groups.setdefault(key, [0, 0])
            n_hit[0] += 1
            n_hit[1] += int(hit)

        for c in last.values():
            if c.resolved_at + timedelta(days=days) > as_of:
                continue
            hit = _repeat(orders.get(c.customer_id, ()), c.resolved_at, days)
            count("complainants", hit)
            count(f"gesture:{c.gesture}", hit)
            count(f"resolution:{resolution_bucket(c.hours)}", hit)
        for customer_id, times in orders.items():
            if customer_id in excluded or not times or times[0] + timedelta(days=days) > as_of:
                continue
            count("without_complaint", _repeat(times, times[0], days))
        out[f"{days}d"] = _shape(groups)
    return out


def _shape(groups: Mapping[str, list[int]]) -> dict[str, Any]:
    def cell(key: str) -> dict[str, Any]:
        n, hits = groups.get(key, [0, 0])
        return {"n": n, "repeated": hits, "rate": _rate(hits, n)}

    by_gesture = {k.split(":", 1)[1]: cell(k) for k in sorted(groups) if k.startswith("gesture:")}
    by_time = {k.split(":", 1)[1]: cell(k) for k in sorted(groups) if k.startswith("resolution:")}
    return {
        "complainants": cell("complainants"),
        "without_complaint": cell("without_complaint"),
        "by_gesture": by_gesture,
        "by_resolution_time": by_time,
    }
