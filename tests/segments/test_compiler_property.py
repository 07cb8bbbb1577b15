"""The SQL compiler against a plain Python evaluation of the same rule, on random rule trees
over random customers (SQLite and PostgreSQL: the ``session`` fixture runs on both)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from fidele.kit.clock import FrozenClock
from fidele.segments import domain, service
from tests.fixtures.factories import Tenant, make_tenant
from tests.segments import world

# Both properties: the session fixture is shared across examples (each runs in a savepoint).
PROPERTY = settings(
    max_examples=60,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(
    people=world.shop,
    others=world.shop,
    rules=st.lists(world.any_rule, min_size=1, max_size=4),
)
def test_sql_equals_python(
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    people: list[dict[str, Any]],
    others: list[dict[str, Any]],
    rules: list[dict[str, Any]],
) -> None:
    _check(session, tenant, clock, people, others, rules)


@PROPERTY
@given(
    people=world.shop,
    others=world.shop,
    rules=st.lists(world.feedback_rules, min_size=1, max_size=4),
)
def test_sql_equals_python_on_feedback(
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    people: list[dict[str, Any]],
    others: list[dict[str, Any]],
    rules: list[dict[str, Any]],
) -> None:
    """The ``feedback.*`` fields (latest NPS/CSAT score, answers, reviews, complaints)."""
    _check(session, tenant, clock, people, others, rules)


def _check(
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    people: list[dict[str, Any]],
    others: list[dict[str, Any]],
    rules: list[dict[str, Any]],
) -> None:
    now = clock.now()
    savepoint = session.begin_nested()
    try:
        # another merchant's customers (same data shape) must never show up
        other = make_tenant(session, now, name="Other shop")
        world.insert(session, other.merchant_id, other.programme_id, now, others)
        ids = world.insert(session, tenant.merchant_id, tenant.programme_id, now, people)
        for rule in rules:
            domain.parse_rule(rule)  # every generated rule is valid
            expected = sorted(
                i for i, p in zip(ids, people, strict=True) if world.evaluate(rule, p, now)
            )
            m = tenant.merchant_id
            got = service.customer_ids(session, merchant_id=m, rule=rule, now=now)
            assert got == expected, rule
            assert service.count(session, merchant_id=m, rule=rule, now=now) == len(expected)
            for i in ids[:3]:
                assert service.customer_matches(
                    session, merchant_id=m, customer_id=i, rule=rule, now=now
                ) == (i in expected), (rule, i)
            among = service.matching_among(
                session, merchant_id=m, rule=domain.parse_rule(rule), now=now, ids=ids[1:]
            )
            assert among == set(expected) - {ids[0]}, rule
    finally:
        savepoint.rollback()
