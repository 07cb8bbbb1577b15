"""Random shops and random rules for the segment tests, and a plain-Python evaluation of a
rule on the shop's data (the reference the SQL compiler is checked against).

The reference is written from the documented semantics (``fidele.segments.domain``), not
from the compiler: it reads the Python dicts the rows were made from."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.analytics.models import CustomerInsight
from fidele.analytics.rfm import DEFAULT_SEGMENTS
from fidele.campaigns.models import Flow
from fidele.customers.models import Customer
from fidele.events.models import Event
from fidele.feedback.complaints_models import Complaint
from fidele.feedback.models import Review, Survey, SurveyAnswer
from fidele.ledger.models import Account
from fidele.loyalty.models import CustomerLink, Lot, Member
from fidele.messaging.measure_models import MessageInteraction
from fidele.messaging.models import Consent, MessageSend
from fidele.orders.models import Order, OrderLine
from fidele.segments import service as segments

DAY = 86_400
RFM = [s.name for s in DEFAULT_SEGMENTS]
TIERS = ["Bronze", "Silver", "Gold"]  # the default scale's
_seq = itertools.count(1)

seconds_ago = st.one_of(
    st.integers(0, 400).map(lambda d: d * DAY),  # exactly on day boundaries
    st.integers(0, 400 * DAY),
)
line = st.fixed_dictionaries(
    {
        "category": st.sampled_from([None, "shoes", "bags", "hats"]),
        "product": st.sampled_from(["p1", "p2", "p3"]),
    }
)
order = st.fixed_dictionaries(
    {
        "ago": seconds_ago,
        "total": st.integers(0, 20_000),
        "refund_pct": st.sampled_from([0, 0, 50, 100]),
        "status": st.sampled_from(["placed", "placed", "delivered", "cancelled"]),
        "lines": st.lists(line, min_size=1, max_size=2),
    }
)
# one message of a journey: (flow index: 0 "welcome" by name, 1 "Win back" installed from the
# ready-made "winback"), ledger status, bounced, sent ago, opened/clicked (sent ones only), when
message = st.tuples(
    st.integers(0, 1),
    st.sampled_from(["sent", "sent", "skipped", "failed"]),
    st.booleans(),
    seconds_ago,
    st.sampled_from([None, "open", "click", "both"]),
    seconds_ago,
)
FLOW_KEYS = {"welcome": 0, "winback": 1}
# one survey answer: the survey's kind, a raw score (None: none given; a csat's is 1 + raw % 5,
# a form's none), and two instants: the first answer (the older) and the last change
answer = st.tuples(
    st.sampled_from(["nps", "nps", "csat", "form"]),
    st.one_of(st.none(), st.integers(0, 10)),
    seconds_ago,
    st.one_of(st.sampled_from([0, DAY]), seconds_ago),  # ties on the last change
)
complaint = st.tuples(st.sampled_from(["open", "in_progress", "resolved", "rejected"]), seconds_ago)
attr_value = st.one_of(
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.25]),
    st.sampled_from(["a", "ab", "b", ""]),
    st.none(),
)
insights = st.fixed_dictionaries(
    {
        "segment": st.sampled_from([None, *RFM[:4]]),
        "r": st.one_of(st.none(), st.integers(1, 5)),
        "f": st.integers(1, 5),
        "m": st.integers(1, 5),
        "p_alive": st.one_of(st.none(), st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0])),
        "clv": st.one_of(st.none(), st.integers(0, 50_000)),
        "overdue_ratio": st.one_of(st.none(), st.sampled_from([0.5, 1.0, 1.2, 3.0])),
        "engagement_status": st.sampled_from([None, "casual", "engaged", "fan"]),
        "engagement_score": st.integers(0, 60),
    }
)
member = st.fixed_dictionaries(
    {
        "tier_rank": st.integers(0, 4),
        "balance": st.integers(0, 600),
        "lots": st.lists(
            st.tuples(
                st.integers(1, 100),
                st.sampled_from(["available", "pending"]),
                st.one_of(st.none(), st.integers(-5 * DAY, 60 * DAY)),
            ),
            max_size=3,
        ),
    }
)
customer = st.fixed_dictionaries(
    {
        "country": st.sampled_from([None, "FR", "DE", "GB"]),
        "locale": st.sampled_from([None, "fr-FR", "en-GB", "fr-BE"]),
        "created_ago": seconds_ago,
        "birthday_month": st.sampled_from([None, 1, 6, 12]),
        "attributes": st.dictionaries(st.sampled_from(["vip", "n", "tag"]), attr_value),
        "orders": st.lists(order, max_size=7),
        "insights": st.one_of(st.none(), insights),
        "events": st.lists(
            st.tuples(st.sampled_from(["review_posted", "product_viewed"]), seconds_ago),
            max_size=3,
        ),
        "consent": st.sampled_from([None, True, False]),
        "member": st.one_of(st.none(), member),
        "messages": st.lists(message, max_size=3),
        "answers": st.lists(answer, max_size=4),
        "reviews": st.lists(seconds_ago, max_size=3),  # posted on the person's orders: none without
        "complaints": st.lists(complaint, max_size=3),
    }
)
shop = st.lists(customer, min_size=1, max_size=7)

# -- rules -------------------------------------------------------------------------------------

ints = st.integers(-2, 420)
small = st.integers(0, 7)  # counts of orders; above 5 (RECENT_K) the facts cannot answer


def _ordered(values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.tuples(st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte"]), values),
        st.tuples(st.sampled_from(["in", "not_in"]), st.lists(values, min_size=1, max_size=3)),
        st.tuples(st.just("between"), st.lists(values, min_size=2, max_size=2).map(sorted)),
        st.tuples(st.just("exists"), st.booleans()),
    )


def _strings(values: list[str]) -> st.SearchStrategy[tuple[str, Any]]:
    v = st.sampled_from(values)
    return st.one_of(
        st.tuples(st.sampled_from(["eq", "ne"]), v),
        st.tuples(st.sampled_from(["in", "not_in"]), st.lists(v, min_size=1, max_size=3)),
        st.tuples(st.just("exists"), st.booleans()),
    )


def _booleans() -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.tuples(st.sampled_from(["eq", "ne"]), st.booleans()),
        st.tuples(st.just("exists"), st.booleans()),
    )


def _sets(values: list[str]) -> st.SearchStrategy[tuple[str, Any]]:
    v = st.sampled_from(values)
    return st.one_of(
        st.tuples(st.just("contains"), v),
        st.tuples(st.sampled_from(["in", "not_in"]), st.lists(v, min_size=1, max_size=2)),
        st.tuples(st.just("exists"), st.booleans()),
    )


window = st.one_of(st.none(), st.sampled_from([1, 7, 30, 365]))
num_attr = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.25]))
FIELDS: dict[str, tuple[st.SearchStrategy[tuple[str, Any]], bool]] = {
    # name: (op/value strategy, takes within_days)
    "customer.country": (
        st.one_of(_strings(["FR", "DE", "ES"]), st.tuples(st.just("contains"), st.just("R"))),
        False,
    ),
    "customer.locale": (
        st.one_of(_strings(["fr-FR", "en-GB"]), st.tuples(st.just("contains"), st.just("fr"))),
        False,
    ),
    "customer.age_days": (_ordered(ints), False),
    "customer.birthday_month": (_ordered(st.integers(1, 12)), False),
    "customer.attributes.vip": (_booleans(), False),
    "customer.attributes.n": (_ordered(num_attr), False),
    "customer.attributes.tag": (
        st.one_of(_strings(["a", "ab", "b"]), st.tuples(st.just("contains"), st.just("a"))),
        False,
    ),
    "consent.newsletter.email": (_booleans(), False),
    "orders.count": (_ordered(small), True),
    "orders.spent": (_ordered(st.integers(0, 40_000)), True),
    "orders.avg_value": (_ordered(st.integers(0, 20_000)), True),
    "orders.last_days": (_ordered(ints), False),
    "orders.first_days": (_ordered(ints), False),
    "orders.categories": (_sets(["shoes", "bags", "hats"]), True),
    "orders.products": (_sets(["p1", "p2", "p3"]), True),
    "loyalty.member": (_booleans(), False),
    "loyalty.tier": (
        st.one_of(_strings(TIERS), st.tuples(st.just("contains"), st.just("l"))),
        False,
    ),
    "loyalty.available": (_ordered(st.integers(0, 600)), False),
    "loyalty.expiring_30d": (_ordered(st.integers(0, 200)), False),
    "insights.segment": (_strings(RFM[:5]), False),
    "insights.r": (_ordered(st.integers(1, 5)), False),
    "insights.p_alive": (_ordered(st.sampled_from([0, 0.25, 0.5, 1])), False),
    "insights.clv": (_ordered(st.integers(0, 50_000)), False),
    "insights.overdue_ratio": (_ordered(st.sampled_from([0.5, 1, 1.2, 2])), False),
    "insights.engagement_status": (_strings(["casual", "engaged", "fan"]), False),
    "insights.engagement_score": (_ordered(st.integers(0, 60)), False),
    "events.review_posted.count": (_ordered(small), True),
    "messages.welcome.received": (_booleans(), True),
    "messages.winback.received": (_booleans(), True),
    "messages.winback.count": (_ordered(st.integers(0, 3)), True),
    "messages.welcome.opened": (_booleans(), True),
    "messages.winback.clicked": (_booleans(), True),
    "feedback.nps_last": (_ordered(st.integers(0, 10)), False),
    "feedback.nps_group": (
        st.one_of(
            _strings(["promoter", "passive", "detractor"]),
            st.tuples(st.just("contains"), st.just("o")),
        ),
        False,
    ),
    "feedback.csat_last": (_ordered(st.integers(1, 5)), False),
    "feedback.surveys_answered": (_ordered(small), True),
    "feedback.reviews": (_ordered(st.integers(0, 3)), True),
    "feedback.complaints": (_ordered(st.integers(0, 3)), True),
    "feedback.complaints_open": (_ordered(st.integers(0, 3)), False),
}


@st.composite
def condition(draw: st.DrawFn, prefix: str = "") -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(f for f in FIELDS if f.startswith(prefix))))
    ops, counted = FIELDS[name]
    op, value = draw(ops)
    node: dict[str, Any] = {"field": name, "op": op, "value": value}
    if counted:
        within = draw(window)
        if within is not None:
            node["within_days"] = within
    return node


rules = st.recursive(
    condition(),
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda xs: {"all": xs}),
        st.lists(children, max_size=3).map(lambda xs: {"any": xs}),
        children.map(lambda x: {"not": x}),
    ),
    max_leaves=6,
)

# -- rows --------------------------------------------------------------------------------------


def insert(
    session: Session, merchant_id: int, programme_id: int, now: datetime, people: list[dict]
) -> list[int]:
    """Write the shop; returns the customers' ids (in ``people`` order)."""
    ids = []
    flows = _flows(session, merchant_id, programme_id, now)
    surveys = _surveys(session, merchant_id, now)
    for person in people:
        n = next(_seq)
        created = now - timedelta(seconds=person["created_ago"])
        month = person["birthday_month"]
        row = Customer(
            merchant_id=merchant_id,
            programme_id=programme_id,
            external_id=f"hc{n}",
            email=f"hc{n}@example.com",
            email_normalized=f"hc{n}@example.com",
            country=person["country"],
            locale=person["locale"],
            birthday=date(1990, month, 15) if month else None,
            attributes=person["attributes"],
            created_at=created,
            updated_at=created,
        )
        session.add(row)
        session.flush()
        ids.append(row.id)
        _orders(session, row, now, person["orders"], n)
        for kind, ago in person["events"]:
            at = now - timedelta(seconds=ago)
            session.add(
                Event(
                    merchant_id=merchant_id,
                    programme_id=programme_id,
                    customer_id=row.id,
                    type=kind,
                    source="test",
                    occurred_at=at,
                    received_at=at,
                    payload={},
                )
            )
        if person["insights"] is not None:
            i = person["insights"]
            session.add(
                CustomerInsight(
                    customer_id=row.id,
                    merchant_id=merchant_id,
                    segment=i["segment"],
                    r_score=i["r"],
                    f_score=i["f"],
                    m_score=i["m"],
                    p_alive=i["p_alive"],
                    clv=i["clv"],
                    overdue_ratio=i["overdue_ratio"],
                    engagement_status=i["engagement_status"],
                    engagement_score=i["engagement_score"],
                    computed_at=now,
                )
            )
        if person["consent"] is not None:
            session.add(
                Consent(
                    merchant_id=merchant_id,
                    customer_id=row.id,
                    topic="newsletter",
                    channel="email",
                    granted=person["consent"],
                    at=now,
                    source="test",
                )
            )
        if person["member"] is not None:
            _member(session, row, now, person["member"], n)
        _messages(session, row, now, person.get("messages", []), flows, n)
        _feedback(session, row, now, person, surveys, n)
    session.flush()
    return ids


def _orders(session: Session, row: Customer, now: datetime, orders: list[dict], n: int) -> None:
    for k, o in enumerate(orders):
        placed = now - timedelta(seconds=o["ago"])
        refunded = o["total"] * o["refund_pct"] // 100
        order_row = Order(
            merchant_id=row.merchant_id,
            programme_id=row.programme_id,
            customer_id=row.id,
            external_id=f"ho{n}-{k}",
            placed_at=placed,
            currency="EUR",
            subtotal=o["total"],
            discounts=0,
            shipping=0,
            tax=0,
            total=o["total"],
            refunded_total=refunded,
            status=o["status"],
            payload_hash="x",
            created_at=placed,
            updated_at=placed,
        )
        session.add(order_row)
        session.flush()
        for j, ln in enumerate(o["lines"]):
            session.add(
                OrderLine(
                    order_id=order_row.id,
                    line_no=j + 1,
                    product_id=ln["product"],
                    category=ln["category"],
                    quantity=1,
                    unit_price=o["total"],
                )
            )
    # the order facts, as every order write keeps them (the order events' handler, imports)
    segments.refresh_order_facts(session, [row.id])


def _flows(session: Session, merchant_id: int, programme_id: int, now: datetime) -> list[int]:
    """The shop's two journeys (made once per merchant): "welcome", named so, and "Win back",
    installed from the ready-made "winback"."""
    ids = []
    for name, template in (("welcome", None), ("Win back", "winback")):
        found = session.execute(
            select(Flow.id).where(Flow.merchant_id == merchant_id, Flow.name == name)
        ).scalar()
        if found is None:
            flow = Flow(
                merchant_id=merchant_id,
                programme_id=programme_id,
                name=name,
                status="active",
                trigger_kind="event",
                template=template,
                created_at=now,
                updated_at=now,
            )
            session.add(flow)
            session.flush()
            found = flow.id
        ids.append(int(found))
    return ids


def _messages(
    session: Session, row: Customer, now: datetime, messages: list, flow_ids: list[int], n: int
) -> None:
    for k, (flow, status, bounced, ago, touch, touch_ago) in enumerate(messages):
        at = now - timedelta(seconds=ago)
        send = MessageSend(
            merchant_id=row.merchant_id,
            customer_id=row.id,
            key=f"hyp:{n}:{k}",
            topic="newsletter",
            channel="email",
            flow_id=flow_ids[flow],
            status=status,
            created_at=at,
            sent_at=at if status == "sent" else None,
            bounced_at=at if status == "sent" and bounced else None,
        )
        session.add(send)
        session.flush()
        if status != "sent" or touch is None:
            continue
        touched = now - timedelta(seconds=touch_ago)
        for kind in ("open", "click") if touch == "both" else (touch,):
            session.add(
                MessageInteraction(
                    merchant_id=row.merchant_id,
                    customer_id=row.id,
                    send_id=send.id,
                    kind=kind,
                    first_at=touched,
                    last_at=touched,
                )
            )


def _surveys(session: Session, merchant_id: int, now: datetime) -> dict[str, int]:
    """The shop's three surveys (made once per merchant): one of each kind."""
    ids = {}
    for kind in ("nps", "csat", "form"):
        code = f"hyp_{kind}"
        found = session.execute(
            select(Survey.id).where(Survey.merchant_id == merchant_id, Survey.code == code)
        ).scalar()
        if found is None:
            survey = Survey(
                merchant_id=merchant_id,
                code=code,
                kind=kind,
                title={"en": code},
                questions=[],
                created_at=now,
                updated_at=now,
            )
            session.add(survey)
            session.flush()
            found = survey.id
        ids[kind] = int(found)
    return ids


def answer_score(kind: str, raw: int | None) -> int | None:
    if raw is None or kind == "form":
        return None
    return 1 + raw % 5 if kind == "csat" else raw


def answer_times(first: int, last: int) -> tuple[int, int]:
    """(answered ago, updated ago): the first answer is never after the last change."""
    return max(first, last), min(first, last)


def _feedback(
    session: Session, row: Customer, now: datetime, p: dict, surveys: dict[str, int], n: int
) -> None:
    for k, (kind, raw, first, last) in enumerate(p.get("answers", [])):
        answered, updated = answer_times(first, last)
        session.add(
            SurveyAnswer(
                merchant_id=row.merchant_id,
                survey_id=surveys[kind],
                customer_id=row.id,
                occasion=f"hyp:{n}:{k}",
                score=answer_score(kind, raw),
                answered_at=now - timedelta(seconds=answered),
                updated_at=now - timedelta(seconds=updated),
            )
        )
        session.flush()  # ids in list order: the later one wins a tie on updated_at
    orders = (
        session.execute(select(Order.id).where(Order.customer_id == row.id).order_by(Order.id))
        .scalars()
        .all()
    )
    for k, ago in enumerate(p.get("reviews", []) if orders else []):
        at = now - timedelta(seconds=ago)
        session.add(
            Review(
                merchant_id=row.merchant_id,
                customer_id=row.id,
                order_id=orders[k % len(orders)],
                product_id=f"rv{k}",
                rating=1 + k % 5,
                posted_at=at,
                updated_at=at,
            )
        )
    for status, ago in p.get("complaints", []):
        at = now - timedelta(seconds=ago)
        session.add(
            Complaint(
                merchant_id=row.merchant_id,
                programme_id=row.programme_id,
                customer_id=row.id,
                category="other",
                message="m",
                channel="email",
                payload_hash="x",
                status=status,
                opened_at=at,
                first_response_due=at,
                resolution_due=at,
                created_at=at,
                updated_at=at,
            )
        )


def _member(session: Session, row: Customer, now: datetime, m: dict, n: int) -> None:
    account = Account(
        key=f"{row.programme_id}:-:{row.id}:hyp:PTS:{n}",
        programme_id=row.programme_id,
        customer_id=row.id,
        kind="available",
        unit="PTS",
        balance=m["balance"],
        created_at=now,
    )
    session.add(account)
    session.flush()
    mem = Member(
        programme_id=row.programme_id,
        email_normalized=row.email_normalized,
        available_account_id=account.id,
        tier_rank=m["tier_rank"],
        created_at=now,
    )
    session.add(mem)
    session.flush()
    session.add(CustomerLink(customer_id=row.id, member_id=mem.id))
    for k, (remaining, status, expires_in) in enumerate(m["lots"]):
        session.add(
            Lot(
                programme_id=row.programme_id,
                merchant_id=row.merchant_id,
                member_id=mem.id,
                source_key=f"hyp:{n}:{k}",
                reason="test",
                points=remaining,
                remaining=remaining,
                status=status,
                earned_at=now,
                available_at=now,
                expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
            )
        )


# -- the reference evaluation ------------------------------------------------------------------


def evaluate(rule: dict[str, Any], person: dict[str, Any], now: datetime) -> bool:
    if "all" in rule:
        return all(evaluate(r, person, now) for r in rule["all"])
    if "any" in rule:
        return any(evaluate(r, person, now) for r in rule["any"])
    if "not" in rule:
        return not evaluate(rule["not"], person, now)
    return _condition(rule, person, now)


def _days(ago_seconds: int) -> int:
    return timedelta(seconds=ago_seconds) // timedelta(days=1)


def _fact(field: str, within: int | None, p: dict[str, Any], now: datetime) -> Any:
    """The field's value for the person (None: missing)."""
    orders = [o for o in p["orders"] if o["status"] != "cancelled"]
    if within is not None:
        orders = [o for o in orders if o["ago"] <= within * DAY]
    member = p["member"]
    ins = p["insights"] or {}
    simple = {
        "customer.country": p["country"],
        "customer.locale": p["locale"],
        "customer.age_days": _days(p["created_ago"]),
        "customer.birthday_month": p["birthday_month"],
        "consent.newsletter.email": p["consent"] is True,
        "orders.count": len(orders),
        "orders.spent": sum(o["total"] - o["total"] * o["refund_pct"] // 100 for o in orders),
        "orders.last_days": _days(min(o["ago"] for o in orders)) if orders else None,
        "orders.first_days": _days(max(o["ago"] for o in orders)) if orders else None,
        "orders.categories": {ln["category"] for o in orders for ln in o["lines"]} - {None},
        "orders.products": {ln["product"] for o in orders for ln in o["lines"]},
        "loyalty.member": member is not None,
        "loyalty.tier": TIERS[min(member["tier_rank"], 2)] if member else None,
        "loyalty.available": member["balance"] if member else 0,
        "loyalty.expiring_30d": sum(
            r
            for r, status, exp in (member["lots"] if member else [])
            if status == "available" and exp is not None and 0 < exp <= 30 * DAY
        ),
        "insights.segment": ins.get("segment"),
        "insights.r": ins.get("r"),
        "insights.p_alive": ins.get("p_alive"),
        "insights.clv": ins.get("clv"),
        "insights.overdue_ratio": ins.get("overdue_ratio"),
        "insights.engagement_status": ins.get("engagement_status"),
        "insights.engagement_score": ins.get("engagement_score"),
        "events.review_posted.count": sum(
            1
            for kind, ago in p["events"]
            if kind == "review_posted" and (within is None or ago <= within * DAY)
        ),
    }
    if field.startswith("messages."):
        return _message_fact(field, within, p)
    if field.startswith("feedback."):
        return _feedback_fact(field, within, p)
    if field == "orders.avg_value":
        count, spent = simple["orders.count"], simple["orders.spent"]
        return spent // count if count else None
    return simple[field]


def _message_fact(field: str, within: int | None, p: dict[str, Any]) -> Any:
    _, key, what = field.split(".")
    mine = [m for m in p["messages"] if m[0] == FLOW_KEYS[key]]

    def inside(ago: int) -> bool:
        return within is None or ago <= within * DAY

    if what in ("received", "count"):
        got = [m for m in mine if m[1] == "sent" and not m[2] and inside(m[3])]
        return len(got) if what == "count" else bool(got)
    kinds = {"opened": ("open", "click", "both"), "clicked": ("click", "both")}[what]
    return any(m[1] == "sent" and m[4] in kinds and inside(m[5]) for m in mine)


def _feedback_fact(field: str, within: int | None, p: dict[str, Any]) -> Any:
    what = field.split(".", 1)[1]

    def inside(ago: int) -> bool:
        return within is None or ago <= within * DAY

    answers = [
        (kind, answer_score(kind, raw), *answer_times(first, last), k)
        for k, (kind, raw, first, last) in enumerate(p.get("answers", []))
    ]
    if what in ("nps_last", "nps_group", "csat_last"):
        kind = "csat" if what == "csat_last" else "nps"
        scored = [a for a in answers if a[0] == kind and a[1] is not None]
        if not scored:
            return None
        # the answer given last (its last change), the later written on a tie
        score = min(scored, key=lambda a: (a[3], -a[4]))[1]
        if what != "nps_group":
            return score
        return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
    if what == "surveys_answered":
        return sum(1 for a in answers if inside(a[2]))
    if what == "reviews":
        return sum(1 for ago in p.get("reviews", []) if inside(ago)) if p["orders"] else 0
    complaints = p.get("complaints", [])
    if what == "complaints_open":
        return sum(1 for status, _ in complaints if status in ("open", "in_progress"))
    return sum(1 for _, ago in complaints if inside(ago))


def _condition(rule: dict[str, Any], p: dict[str, Any], now: datetime) -> bool:
    field, op, value = rule["field"], rule["op"], rule.get("value", True)
    if field.startswith("customer.attributes."):
        return _attribute(p["attributes"].get(field.rsplit(".", 1)[1]), op, value)
    return _compare(_fact(field, rule.get("within_days"), p, now), op, value)


def _compare(v: Any, op: str, value: Any) -> bool:
    if op == "exists":
        present = (len(v) > 0) if isinstance(v, set) else v is not None
        return present == value
    if op == "ne":
        return not _compare(v, "eq", value)
    if op == "not_in":
        return not _compare(v, "in", value)
    if v is None:
        return False
    if isinstance(v, set):
        return value in v if op == "contains" else bool(v & set(value))
    return {
        "eq": lambda: v == value,
        "lt": lambda: v < value,
        "lte": lambda: v <= value,
        "gt": lambda: v > value,
        "gte": lambda: v >= value,
        "in": lambda: v in value,
        "between": lambda: value[0] <= v <= value[1],
        "contains": lambda: value in v,
    }[op]()


def _attribute(v: Any, op: str, value: Any) -> bool:
    if op == "exists":
        return (v is not None) == value
    if op == "ne":
        return not _attribute(v, "eq", value)
    if op == "not_in":
        return not _attribute(v, "in", value)
    sample = value[0] if isinstance(value, list) else value
    if isinstance(sample, bool):
        ok = isinstance(v, bool)
    elif isinstance(sample, str):
        ok = isinstance(v, str)
    else:
        ok = isinstance(v, int | float) and not isinstance(v, bool)
    if not ok:
        return False
    if isinstance(sample, bool):
        return v in value if op == "in" else v == value
    return _compare(v, op, value)


# A top-level "all" of conditions: when one of them is a selective filter on the customer, the
# compiler evaluates the aggregates beside it as correlated subqueries (the other code path).
flat_all = st.lists(condition(), min_size=2, max_size=4).map(lambda xs: {"all": xs})
any_rule = st.one_of(rules, flat_all)
# rules on the feedback fields alone (with one customer field for the correlated path)
feedback_rules = st.one_of(
    st.recursive(
        condition("feedback."),
        lambda children: st.one_of(
            st.lists(children, max_size=3).map(lambda xs: {"all": xs}),
            st.lists(children, max_size=3).map(lambda xs: {"any": xs}),
            children.map(lambda x: {"not": x}),
        ),
        max_leaves=4,
    ),
    st.tuples(
        condition("customer.country"), st.lists(condition("feedback."), min_size=1, max_size=3)
    ).map(lambda t: {"all": [t[0], *t[1]]}),
)
