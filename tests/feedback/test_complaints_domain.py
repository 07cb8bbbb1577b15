"""Pure rules: SLA due times on business hours across weekends and DST changes, transitions,
the retention of complainants against a hand count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fidele.feedback import complaints_domain as d

PARIS = d.zone("Europe/Paris")
WEEKDAYS = d.business_hours(None)  # Mon-Fri 09:00-18:00


def test_weekend_and_spring_dst_change():
    # Friday 27 March 2026 16:00 in Paris (CET, UTC+1); the clocks go forward on Sunday 29.
    start = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)
    # 2 h on Friday, then Monday from 09:00 CEST (UTC+2): 11:00 local = 09:00 UTC.
    assert d.add_business_time(start, 4, PARIS, WEEKDAYS) == datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    # 18 h: Friday 2, Monday 9, Tuesday 7 -> Tuesday 16:00 CEST.
    due = d.add_business_time(start, 18, PARIS, WEEKDAYS)
    assert due == datetime(2026, 3, 31, 14, 0, tzinfo=UTC)


def test_weekend_and_autumn_dst_change():
    # Friday 23 October 2026 17:00 CEST; the clocks go back on Sunday 25.
    start = datetime(2026, 10, 23, 15, 0, tzinfo=UTC)
    # 1 h on Friday, 3 h on Monday from 09:00 CET (UTC+1): 12:00 local = 11:00 UTC.
    assert d.add_business_time(start, 4, PARIS, WEEKDAYS) == datetime(
        2026, 10, 26, 11, 0, tzinfo=UTC
    )


def test_opened_at_night_counts_from_opening():
    # Monday 02:00 Paris (summer): the clock starts at 09:00.
    start = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    assert d.add_business_time(start, 1, PARIS, WEEKDAYS) == datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def test_a_day_of_23_hours_counts_23_real_hours():
    sundays = d.business_hours({"sun": "00:00-24:00"})
    start = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)  # Saturday: closed
    # Sunday 29 March lasts 23 h in Paris: all of it is used up exactly at midnight.
    assert d.add_business_time(start, 23, PARIS, sundays) == datetime(
        2026, 3, 29, 22, 0, tzinfo=UTC
    )
    # One more hour waits for the next Sunday (CEST): 01:00 local = 23:00 UTC the day before.
    assert d.add_business_time(start, 24, PARIS, sundays) == datetime(2026, 4, 4, 23, 0, tzinfo=UTC)


def test_business_hours_are_checked():
    with pytest.raises(d.RuleError) as err:
        d.business_hours({"mon": "18:00-09:00"})
    assert err.value.field == "business_hours.mon"
    with pytest.raises(d.RuleError):
        d.business_hours({})
    with pytest.raises(d.RuleError):
        d.business_hours({"monday": "09:00-18:00"})


def test_transitions():
    assert d.can_move("open", "in_progress") and d.can_move("in_progress", "resolved")
    assert d.can_move("open", "rejected")
    assert not d.can_move("open", "resolved")
    assert not d.can_move("resolved", "open") and not d.can_move("rejected", "in_progress")


def test_breach_flags():
    due = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert not d.breached(due, due, due + timedelta(days=9))
    assert d.breached(due, due + timedelta(seconds=1), due)
    assert d.breached(due, None, due + timedelta(minutes=1))
    assert not d.breached(due, None, due)


def test_days_late_counts_calendar_days_in_the_zone():
    promised = datetime(2026, 6, 2, 21, 30, tzinfo=UTC)  # 3 June 23:30 in Paris
    assert d.days_late(promised, datetime(2026, 6, 2, 22, 30, tzinfo=UTC), PARIS) == 1
    assert d.days_late(promised, datetime(2026, 6, 2, 20, 0, tzinfo=UTC), PARIS) == 0


def test_retention_against_a_hand_count():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    day = timedelta(days=1)
    as_of = t0 + 400 * day
    complaints = [
        d.Resolved(1, t0, "coupon", 10),  # orders again 30 days later
        d.Resolved(2, t0, "none", 100),  # orders again 120 days later: 180 d only
        d.Resolved(3, t0, "none", 10),  # never again
        d.Resolved(4, as_of - 50 * day, "points", 5),  # too recent for both windows
    ]
    orders = {
        1: [t0 - 10 * day, t0 + 30 * day],
        2: [t0 - 5 * day, t0 + 120 * day],
        3: [t0 - 5 * day],
        4: [t0],
        5: [t0, t0 + 60 * day],  # without complaint: repeats within 90
        6: [t0, t0 + 200 * day],  # repeats after 180 only
        7: [as_of - 10 * day, as_of - 5 * day],  # window not over
    }
    r = d.retention(complaints, orders, as_of)
    assert r["90d"]["complainants"] == {"n": 3, "repeated": 1, "rate": 0.3333}
    assert r["180d"]["complainants"] == {"n": 3, "repeated": 2, "rate": 0.6667}
    assert r["90d"]["without_complaint"] == {"n": 2, "repeated": 1, "rate": 0.5}
    assert r["180d"]["without_complaint"] == {"n": 2, "repeated": 1, "rate": 0.5}
    assert r["90d"]["by_gesture"]["coupon"] == {"n": 1, "repeated": 1, "rate": 1.0}
    assert r["180d"]["by_gesture"]["none"] == {"n": 2, "repeated": 1, "rate": 0.5}
    assert "points" not in r["90d"]["by_gesture"]
    assert r["180d"]["by_resolution_time"]["<=1d"] == {"n": 2, "repeated": 1, "rate": 0.5}
    assert r["180d"]["by_resolution_time"]["3-7d"] == {"n": 1, "repeated": 1, "rate": 1.0}
