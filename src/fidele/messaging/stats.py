"""Stats of a flow or a broadcast, from the send ledger (``message_sends``, keyed by its source
columns ``flow_id``/``step``/``broadcast_id``/``variant``), the opens and clicks, the attributed
conversions and the orders.

Two kinds of conversion are reported, on purpose:

- **attributed** (``conversions``, ``revenue``): orders credited to a message by last touch (a
  click within the click window, else an open within the open window; see ``conversions``).
  Useful per message, but it credits orders that would have happened anyway.
- **incremental** (``holdout``, ``ab``): for every ledger row that was decided to go
  (``treated``) or held back (``held_out``), whether the customer placed an order within the
  click window (5 days by default) after the row was decided, and the revenue of those orders.
  Both groups are measured the same way and were split at random (a hash of the customer), so
  the difference of the treated and held-out groups is what the messages earned, with its 95%
  interval (``measure.compare``). A/B variants are compared the same way.

Rows skipped as ineligible (no consent, suppressed, complaint open...) belong to neither group:
``messaging.send`` checks eligibility before the holdout, so both groups hold eligible
customers only. Rows skipped over the frequency caps stay in ``treated`` (they were assigned
to be messaged; dropping them would bias the comparison)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fidele.messaging import conversions, measure
from fidele.messaging.measure_repository import StatsRepository

SENT = ("sent",)
# Decided to go (or gone): the treated group of the holdout comparison.
TREATED = ("queued", "sending", "sent", "failed", "unknown")
CAP_REASONS = ("cap", "cap_next_step")
UNSUBSCRIBE_SOURCES = ("unsubscribe_link", "preferences_page", "one_click", "unsubscribe")


@dataclass(frozen=True)
class Row:
    id: int
    customer_id: int
    status: str
    reason: str | None
    step: str | None
    variant: str | None
    topic: str
    channel: str
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    bounced_at: datetime | None
    complained_at: datetime | None

    @property
    def treated(self) -> bool:
        return self.status in TREATED or (self.status == "skipped" and self.reason in CAP_REASONS)

    @property
    def held_out(self) -> bool:
        return self.status == "held_out"


@dataclass
class Facts:
    """What happened after each ledger row (by row id)."""

    opened: set[int]
    clicked: set[int]
    unsubscribed: set[int]
    attributed: dict[int, list[int]]  # send id -> net totals of the orders credited to it
    orders: dict[int, list[tuple[datetime, int]]]  # customer id -> (placed_at, net total)
    window: timedelta


def _ratio(n: int, d: int) -> float | None:
    return None if d == 0 else n / d


def metrics(rows: Sequence[Row], facts: Facts) -> dict[str, Any]:
    """Counts and rates of one group of ledger rows."""
    ids = {r.id for r in rows}
    sent = sum(r.status in SENT for r in rows)
    delivered = sum(r.delivered_at is not None for r in rows)
    opened = len(ids & (facts.opened | facts.clicked))  # a click proves an open
    clicked = len(ids & facts.clicked)
    credited = [(i, t) for i in ids for t in facts.attributed.get(i, ())]
    converted_sends = {i for i, _ in credited}
    skipped = Counter(r.reason or "unknown" for r in rows if r.status == "skipped")
    return {
        "decided": len(rows),
        "queued": sum(r.status in ("queued", "sending") for r in rows),
        "sent": sent,
        "delivered": delivered,
        "bounced": sum(r.bounced_at is not None for r in rows),
        "complained": sum(r.complained_at is not None for r in rows),
        "failed": sum(r.status in ("failed", "unknown") for r in rows),
        "skipped": dict(sorted(skipped.items())),
        "held_out": sum(r.held_out for r in rows),
        "opened": opened,
        "clicked": clicked,
        "unsubscribed": len(ids & facts.unsubscribed),
        "conversions": len(credited),
        "converted": len(converted_sends),
        "revenue": sum(t for _, t in credited),
        "open_rate": _ratio(opened, sent),
        "click_rate": _ratio(clicked, sent),
        "unsubscribe_rate": _ratio(len(ids & facts.unsubscribed), sent),
        "conversion_rate": _ratio(len(converted_sends), sent),
    }


def outcome_group(rows: Iterable[Row], facts: Facts) -> measure.Group:
    """Customers of these rows, converted when they ordered within the window after the row
    was decided (revenue: those orders' net totals)."""
    n, revenues = 0, []
    for r in rows:
        n += 1
        end = r.created_at + facts.window
        window = [t for at, t in facts.orders.get(r.customer_id, ()) if r.created_at <= at < end]
        if window:
            revenues.append(sum(window))
    return measure.Group.of(n, revenues)


def holdout(rows: Sequence[Row], facts: Facts) -> dict[str, Any] | None:
    """Treated against held out, or None when nothing was held out."""
    held = [r for r in rows if r.held_out]
    if not held:
        return None
    treated = outcome_group((r for r in rows if r.treated), facts)
    control = outcome_group(held, facts)
    return {
        "treated": treated.as_dict(),
        "held_out": control.as_dict(),
        **measure.compare(treated, control).as_dict(),
    }


def ab(rows: Sequence[Row], facts: Facts, chosen: str | None = None) -> dict[str, Any] | None:
    """Variants against each other (treated rows only), or None without variants."""
    by_variant: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.variant is not None and r.treated:
            by_variant[r.variant].append(r)
    if len(by_variant) < 2:
        return None
    groups = {v: outcome_group(rs, facts) for v, rs in sorted(by_variant.items())}
    leader = max(groups, key=lambda v: (groups[v].rate or 0.0, v))
    comparisons = []
    for name, group in groups.items():
        if name == leader:
            continue
        effect = measure.compare(groups[leader], group)
        comparisons.append(
            {
                "variant": leader,
                "against": name,
                "conversion_difference": effect.rate_difference,
                "conversion_difference_ci95": effect.rate_interval.as_list()
                if effect.rate_interval
                else None,
                "revenue_per_customer_difference": effect.revenue_difference,
                "revenue_per_customer_difference_ci95": effect.revenue_interval.as_list()
                if effect.revenue_interval
                else None,
                "significant": effect.significant,
            }
        )
    return {
        "variants": {name: g.as_dict() for name, g in groups.items()},
        "leader": leader,
        "comparisons": comparisons,
        "significant_winner": measure.winner(groups),
        "winner": chosen,
    }


def collect(session: Session, merchant_id: int, **where: int) -> tuple[list[Row], Facts]:
    """The ledger rows of a source (``flow_id=`` or ``broadcast_id=``) and what followed them."""
    repo = StatsRepository(session)
    rows = [Row(*r) for r in repo.rows(merchant_id, **where)]
    click_window, _ = conversions.windows(session, merchant_id)
    ids = [r.id for r in rows]
    touched = repo.interactions(merchant_id, **where)
    facts = Facts(
        opened={i for i, kind in touched if kind == "open"},
        clicked={i for i, kind in touched if kind == "click"},
        unsubscribed=_unsubscribed(repo, merchant_id, rows, **where),
        attributed=defaultdict(list),
        orders=defaultdict(list),
        window=click_window or timedelta(days=conversions.CLICK_DAYS),
    )
    for send_id, total in repo.attributed(merchant_id, **where):
        facts.attributed[send_id].append(total)
    if ids:
        since = min(r.created_at for r in rows)
        for customer_id, placed_at, total in repo.orders_after(merchant_id, since, **where):
            facts.orders[customer_id].append((placed_at, total))
    return rows, facts


def _unsubscribed(
    repo: StatsRepository, merchant_id: int, rows: Sequence[Row], **where: int
) -> set[int]:
    """Rows whose message was the last of its topic the customer received before withdrawing
    their consent to that topic through an unsubscribe link or the preferences page."""
    withdrawn = repo.withdrawals(merchant_id, UNSUBSCRIBE_SOURCES, **where)
    if not withdrawn:
        return set()
    latest = repo.last_sent_before(merchant_id, withdrawn)
    ours = {r.id for r in rows}
    return {send_id for send_id in latest if send_id in ours}


def _grouped(
    rows: Sequence[Row], facts: Facts, key: Callable[[Row], str | None]
) -> dict[str | None, list[Row]]:
    out: dict[str | None, list[Row]] = defaultdict(list)
    for r in rows:
        out[key(r)].append(r)
    return out


def _variants(rows: Sequence[Row], facts: Facts) -> list[dict[str, Any]]:
    groups = _grouped(rows, facts, lambda r: r.variant)
    if set(groups) == {None}:
        return []
    return [
        {"variant": name, **metrics(rs, facts)}
        for name, rs in sorted(groups.items(), key=lambda kv: str(kv[0]))
    ]


def broadcast_stats(
    session: Session, merchant_id: int, broadcast_id: int, *, winner: str | None = None
) -> dict[str, Any]:
    rows, facts = collect(session, merchant_id, broadcast_id=broadcast_id)
    return {
        "broadcast_id": broadcast_id,
        "attribution_days": _days(session, merchant_id),
        "totals": metrics(rows, facts),
        "variants": _variants(rows, facts),
        "holdout": holdout(rows, facts),
        "ab": ab(rows, facts, winner),
    }


def flow_stats(session: Session, merchant_id: int, flow_id: int) -> dict[str, Any]:
    """Stats of a flow over all its versions: totals, per step (with its variants, holdout and
    A/B comparison) and the flow's holdout comparison per customer (a customer is held out
    when every message the flow decided for them was held out)."""
    rows, facts = collect(session, merchant_id, flow_id=flow_id)
    steps = []
    for step, rs in sorted(
        _grouped(rows, facts, lambda r: r.step).items(), key=lambda kv: str(kv[0])
    ):
        steps.append(
            {
                "step": step,
                **metrics(rs, facts),
                "variants": _variants(rs, facts),
                "holdout": holdout(rs, facts),
                "ab": ab(rs, facts),
            }
        )
    return {
        "flow_id": flow_id,
        "attribution_days": _days(session, merchant_id),
        "totals": metrics(rows, facts),
        "steps": steps,
        "holdout": holdout(_per_customer(rows), facts),
    }


def _per_customer(rows: Sequence[Row]) -> list[Row]:
    """One row per customer for a flow-level comparison: the first decided row, treated when
    any of the customer's rows was, held out when all were."""
    by_customer: dict[int, list[Row]] = defaultdict(list)
    for r in rows:
        by_customer[r.customer_id].append(r)
    out = []
    for rs in by_customer.values():
        first = min(rs, key=lambda r: (r.created_at, r.id))
        if any(r.treated for r in rs):
            out.append(_with_status(first, "sent"))
        elif all(r.held_out for r in rs):
            out.append(_with_status(first, "held_out"))
    return out


def _with_status(row: Row, status: str) -> Row:
    return Row(**{**row.__dict__, "status": status, "reason": None})


def _days(session: Session, merchant_id: int) -> dict[str, float]:
    click, open_ = conversions.windows(session, merchant_id)
    return {"click": click / timedelta(days=1), "open": open_ / timedelta(days=1)}


def journeys_lift(
    session: Session, merchant_id: int, flows: Sequence[tuple[int, str]], since: datetime
) -> dict[str, Any]:
    """What the journeys ``flows`` (``(id, name)``) brought since ``since``: for each flow, its
    customers decided since then against its holdout (as ``flow_stats``'s flow-level
    comparison), and the incremental revenue = increment per customer x treated customers,
    with its 95% interval scaled alike. The total adds the flows' increments; its interval
    adds their variances (flows hold out independently)."""
    out = []
    total, half_sq, any_interval = 0.0, 0.0, False
    for flow_id, name in flows:
        rows, facts = collect(session, merchant_id, flow_id=flow_id)
        recent = [r for r in rows if r.created_at >= since]
        compared = holdout(_per_customer(recent), facts)
        line: dict[str, Any] = {"flow_id": flow_id, "flow": name, "holdout": compared}
        if compared is not None and compared["incremental_revenue_per_customer"] is not None:
            n = compared["treated"]["customers"]
            line["incremental_revenue"] = compared["incremental_revenue_per_customer"] * n
            ci = compared["incremental_revenue_per_customer_ci95"]
            line["incremental_revenue_ci95"] = [ci[0] * n, ci[1] * n] if ci else None
            total += line["incremental_revenue"]
            if ci:
                any_interval = True
                half_sq += ((ci[1] - ci[0]) * n / 2) ** 2
        out.append(line)
    measured = [f for f in out if "incremental_revenue" in f]
    half = half_sq**0.5
    return {
        "since": since,
        "flows": out,
        "measured_flows": len(measured),
        "incremental_revenue": total if measured else None,
        "incremental_revenue_ci95": [total - half, total + half] if any_interval else None,
    }
