"""Flow definitions, transitions and timings as pure values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fidele.campaigns import domain, library
from fidele.campaigns.domain import FlowDefinitionError

PARIS = domain.zone("Europe/Paris")


def _flow(**over: object) -> dict[str, object]:
    return {
        "name": "cart",
        "trigger": {"event": "cart.abandoned"},
        "steps": [{"wait": {"hours": 1}}, {"send": {"template": "t"}}],
        **over,
    }


@pytest.mark.parametrize("journey", library.JOURNEYS, ids=lambda j: j.name)
def test_every_ready_made_journey_validates(journey: library.Journey) -> None:
    definition = domain.parse(journey.definition)
    assert definition.name == journey.name
    sent = {s.send.template for s in definition.steps if s.send}
    assert sent == set(journey.messages)  # every message it sends is installed with it
    for message in journey.messages.values():
        assert set(message.variants()) == {"en", "fr"}


def test_errors_name_the_path_and_reason() -> None:
    bad = _flow(steps=[{"wait": {"hours": 1}, "send": {"template": "t"}}, {"exit": True}])
    with pytest.raises(FlowDefinitionError) as err:
        domain.parse(bad)
    assert err.value.errors[0][1] == "steps.0"
    assert "exactly one of" in err.value.errors[0][2]


def test_a_jump_to_an_unknown_step_is_refused() -> None:
    bad = _flow(steps=[{"condition": {"rule": {"all": []}}, "yes": "nowhere"}])
    with pytest.raises(FlowDefinitionError, match="unknown step 'nowhere'"):
        domain.parse(bad)


def test_a_bad_segment_rule_is_refused_at_its_path_in_the_flow() -> None:
    rule = {"field": "orders.count", "op": "gte", "value": "many"}
    bad = _flow(steps=[{"condition": {"rule": rule}}, {"send": {"template": "t"}}])
    with pytest.raises(FlowDefinitionError) as err:
        domain.parse(bad)
    assert err.value.errors[0][1] == "steps.0.condition.rule.value"


def test_an_order_condition_is_checked_at_its_path() -> None:
    ok = _flow(
        trigger={"event": "order.delivered"},
        steps=[{"condition": {"order": "reviewed"}, "yes": "exit"}, {"send": {"template": "t"}}],
    )
    assert domain.parse(ok).steps[0].condition.order == "reviewed"  # type: ignore[union-attr]
    unknown = _flow(steps=[{"condition": {"order": "refunded"}, "yes": "exit"}])
    with pytest.raises(FlowDefinitionError) as err:
        domain.parse(unknown)
    assert err.value.errors[0][1] == "steps.0.condition.order"
    assert "unknown order condition 'refunded': one of reviewed" in err.value.errors[0][2]
    both = _flow(steps=[{"condition": {"order": "reviewed", "rule": {"all": []}}}])
    with pytest.raises(FlowDefinitionError, match="exactly one of rule, order"):
        domain.parse(both)
    no_order = _flow(
        trigger={"date": "birthday"}, steps=[{"condition": {"order": "reviewed"}, "yes": "exit"}]
    )
    with pytest.raises(FlowDefinitionError) as err:
        domain.parse(no_order)
    assert err.value.errors[0][1] == "steps.0.condition.order"
    assert "needs an event trigger" in err.value.errors[0][2]


def test_yaml_errors_carry_their_line() -> None:
    text = "name: cart\ntrigger:\n  event: cart.abandoned\nsteps:\n  - wait: {hours: -1}\n"
    with pytest.raises(FlowDefinitionError) as err:
        domain.parse_yaml(text)
    line, loc, _ = err.value.errors[0]
    assert (line, loc) == (5, "steps.0.wait.hours")


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({}, "exactly one of event, date, prediction"),
        ({"event": "order.delivered", "first_order": True}, "first_order applies"),
        ({"date": "02-30x"}, "MM-DD"),
        ({"prediction": {"overdue_ratio": 2, "at_most": 1}}, "at_most"),
    ],
)
def test_triggers_are_checked(trigger: dict[str, object], message: str) -> None:
    with pytest.raises(FlowDefinitionError, match=message):
        domain.parse(_flow(trigger=trigger))


def test_waiting_for_an_event_needs_a_timeout() -> None:
    steps = [{"wait": {"event": "order.placed"}}, {"send": {"template": "t"}}]
    with pytest.raises(FlowDefinitionError, match="timeout"):
        domain.parse(_flow(steps=steps))


def test_transitions_follow_order_branches_and_jumps() -> None:
    d = domain.parse(
        _flow(
            steps=[
                {
                    "id": "w",
                    "wait": {"event": "order.placed", "timeout": {"days": 3}, "on_event": "thanks"},
                },
                {"id": "c", "condition": {"rule": {"all": []}}, "yes": "thanks", "no": "exit"},
                {"id": "remind", "send": {"template": "r"}, "next": "exit"},
                {"id": "thanks", "send": {"template": "t"}},
            ]
        )
    )
    assert domain.next_after(d, "w", "event") == "thanks"
    assert domain.next_after(d, "w", "timeout") == "c"
    assert domain.next_after(d, "c", "yes") == "thanks"
    assert domain.next_after(d, "c", "no") == "exit"
    assert domain.next_after(d, "remind") == "exit"
    assert domain.next_after(d, "thanks") == "exit"  # the last step


def test_reentry_policies() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert domain.reentry_allowed("never", None, now)
    assert not domain.reentry_allowed("never", now - timedelta(days=900), now)
    assert domain.reentry_allowed("always", now, now)
    week = domain.Reentry(days=7)
    assert not domain.reentry_allowed(week, now - timedelta(days=6, hours=23), now)
    assert domain.reentry_allowed(week, now - timedelta(days=7), now)


def test_payload_filters() -> None:
    payload = {"reason": "qualified", "cart": {"total": 5000}}
    assert domain.payload_matches({"reason": "qualified"}, payload)
    assert domain.payload_matches({"cart.total": [5000, 6000]}, payload)
    assert not domain.payload_matches({"reason": "review"}, payload)
    assert not domain.payload_matches({"missing.key": 1}, payload)


def test_next_local_time_in_the_customers_zone() -> None:
    # 08:30 UTC on a Friday in June = 10:30 in Paris: next 10:00 there is Saturday 08:00 UTC
    after = datetime(2026, 6, 5, 8, 30, tzinfo=UTC)
    assert domain.next_local_time(after, "10:00", PARIS) == datetime(2026, 6, 6, 8, tzinfo=UTC)
    assert domain.next_local_time(after, "10:00", PARIS, ["monday"]) == datetime(
        2026, 6, 8, 8, tzinfo=UTC
    )
    # in winter Paris is UTC+1
    winter = datetime(2026, 1, 5, 6, tzinfo=UTC)
    assert domain.next_local_time(winter, "10:00", PARIS) == datetime(2026, 1, 5, 9, tzinfo=UTC)


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    st.sampled_from(["00:00", "09:30", "23:59", "02:30"]),
    st.sampled_from(["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"]),
)
def test_next_local_time_is_the_first_such_instant(naive: datetime, at: str, tz_name: str) -> None:
    after = naive.replace(tzinfo=UTC)
    tz = domain.zone(tz_name)
    got = domain.next_local_time(after, at, tz)
    assert after <= got < after + timedelta(days=1, hours=2)


def test_wait_timings() -> None:
    now = datetime(2026, 6, 5, 8, 30, tzinfo=UTC)
    facts = domain.Facts(tz=PARIS, gap_days=21.0)
    gap = domain.Wait(gap=0.25)
    assert domain.wait_until(gap, now, facts) == now + timedelta(days=5.25)
    gap_then_morning = domain.Wait(gap=0.25, until="10:00")
    assert domain.wait_until(gap_then_morning, now, facts) == datetime(2026, 6, 11, 8, tzinfo=UTC)
    on_event = domain.Wait(event="order.placed", timeout=domain.Duration(days=3))
    assert domain.wait_until(on_event, now, facts) == now + timedelta(days=3)
    drop = domain.Wait(before_coupon_drop=domain.Duration(days=2))
    drops = now + timedelta(days=14)
    got = domain.wait_until(drop, now, domain.Facts(tz=PARIS, coupon_drops_at=drops))
    assert got == now + timedelta(days=12)


def test_overdue_ratio_and_when_it_is_reached() -> None:
    last = datetime(2026, 1, 1, tzinfo=UTC)
    assert domain.overdue_ratio(last, 30, last + timedelta(days=45)) == pytest.approx(1.5)
    assert domain.overdue_since(last, 90, 1.0) == last + timedelta(days=90)


def test_date_occurrences_in_the_customers_year_and_zone() -> None:
    birthday = domain.Trigger(date="birthday", at="09:00")
    tokyo = domain.zone("Asia/Tokyo")
    # 09:00 in Tokyo on 10 March = 00:00 UTC
    now = datetime(2026, 3, 10, 0, 30, tzinfo=UTC)
    assert domain.date_due(birthday, date(1990, 3, 10), now, tokyo, timedelta(days=1)) == "2026"
    assert domain.date_due(birthday, date(1990, 3, 11), now, tokyo, timedelta(days=1)) is None
    # born on 29 February: the 28th in other years
    leap = datetime(2026, 2, 28, 9, 5, tzinfo=UTC)
    assert domain.date_due(birthday, date(2000, 2, 29), leap, domain.zone(None), timedelta(1))
    # a fixed date, the same for everyone, in each one's zone
    year_end = domain.Trigger(date="12-31", at="10:00")
    at = datetime(2026, 12, 31, 9, 0, tzinfo=UTC)
    assert domain.date_due(year_end, None, at, PARIS, timedelta(days=1)) == "2026"
    assert (
        domain.date_due(year_end, None, at, domain.zone("America/New_York"), timedelta(1)) is None
    )


def test_the_first_order_is_not_its_own_anniversary() -> None:
    trigger = domain.Trigger(date="first_order_anniversary", at="10:00")
    first = date(2026, 4, 2)
    on_the_day = datetime(2026, 4, 2, 12, tzinfo=UTC)
    assert domain.date_due(trigger, first, on_the_day, domain.zone(None), timedelta(1)) is None
    a_year_on = datetime(2027, 4, 2, 12, tzinfo=UTC)
    assert domain.date_due(trigger, first, a_year_on, domain.zone(None), timedelta(1)) == "2027"


def test_holdout_is_stable_and_near_its_share() -> None:
    held = [domain.held_out(7, c, 10) for c in range(5000)]
    assert 0.08 < sum(held) / len(held) < 0.12
    assert held == [domain.held_out(7, c, 10) for c in range(5000)]
    assert not any(domain.held_out(7, c, 0) for c in range(100))
