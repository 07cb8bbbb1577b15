from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fidele.loyalty import domain
from fidele.loyalty.config import ScaleError, Tier, default_scale, parse, parse_yaml
from fidele.loyalty.domain import Context, Line, OrderFacts

AT = datetime(2026, 6, 6, 12, tzinfo=UTC)


def facts(*lines: Line, shipping: int = 0, tax: int = 0, channel: str | None = None) -> OrderFacts:
    total = sum(ln.amount for ln in lines) + shipping + tax
    return OrderFacts("EUR", list(lines), shipping, tax, total, channel, AT)


def scale(**extra: object):  # type: ignore[no-untyped-def]
    return parse({"settings": {"points_per_unit": 1}, "rules": [], **extra})


class TestOrderPoints:
    def test_one_point_per_euro_rounds_down_once_per_order(self) -> None:
        result = domain.order_points(
            scale(), facts(Line("a", None, 199), Line("b", None, 199)), Context()
        )
        assert result.awards == [("base", 3)]  # 3.98 € → 3, not 1 + 1

    def test_bases(self) -> None:
        f = facts(Line("a", None, 1000), shipping=500, tax=300)
        for base, expected in (("net", 10), ("no_shipping", 13), ("total", 18)):
            s = parse({"settings": {"base": base}})
            assert domain.order_points(s, f, Context()).total == expected

    def test_category_multiplier_credits_its_rule(self) -> None:
        s = scale(
            rules=[
                {
                    "id": "shoes-x2",
                    "type": "multiplier",
                    "multiplier_bp": 20_000,
                    "categories": ["shoes"],
                }
            ]
        )
        f = facts(Line("a", "shoes", 1000), Line("b", "hats", 1000))
        assert domain.order_points(s, f, Context()).awards == [("base", 20), ("shoes-x2", 10)]

    def test_campaign_only_inside_its_window(self) -> None:
        rule = {
            "id": "weekend",
            "type": "multiplier",
            "multiplier_bp": 20_000,
            "starts_at": "2026-06-06T00:00:00Z",
            "ends_at": "2026-06-08T00:00:00Z",
        }
        s = scale(rules=[rule])
        assert domain.order_points(s, facts(Line("a", None, 1000)), Context()).total == 20
        later = OrderFacts(
            "EUR", [Line("a", None, 1000)], 0, 0, 1000, None, datetime(2026, 6, 9, tzinfo=UTC)
        )
        assert domain.order_points(s, later, Context()).total == 10

    def test_tier_membership_and_first_order_compose(self) -> None:
        s = scale(rules=[{"id": "welcome", "type": "first_order", "points": 50}])
        ctx = Context(
            first_order=True,
            tier=Tier(name="Gold", multiplier_bp=15_000),
            plan_multiplier_bp=12_000,
        )
        result = domain.order_points(s, facts(Line("a", None, 10_000)), ctx)
        assert result.awards == [
            ("base", 100),
            ("tier:Gold", 50),
            ("membership", 30),
            ("welcome", 50),
        ]
        assert result.total == 230

    def test_channel_multiplier(self) -> None:
        s = scale(
            rules=[
                {"id": "app", "type": "multiplier", "multiplier_bp": 30_000, "channels": ["app"]}
            ]
        )
        assert domain.order_points(s, facts(Line("a", None, 1000)), Context()).total == 10
        assert (
            domain.order_points(s, facts(Line("a", None, 1000), channel="app"), Context()).total
            == 30
        )

    def test_zero_decimal_currency(self) -> None:
        f = OrderFacts("JPY", [Line("a", None, 1234)], 0, 0, 1234, None, AT)
        assert domain.order_points(scale(), f, Context()).total == 1234


def test_refund_clawback_is_cumulative_and_exact() -> None:
    assert domain.refund_clawback(99, 1000, 333) == 32
    assert domain.refund_clawback(99, 1000, 1000) == 99
    assert domain.refund_clawback(99, 1000, 5000) == 99


def test_tier_rank_with_seniority() -> None:
    levels = [
        Tier(name="B"),
        Tier(name="S", threshold={"value": 500}),
        Tier(name="G", threshold={"metric": "orders", "value": 10}),
    ]
    assert domain.tier_rank(levels, {"points": 499}, 0, 0) == 0
    assert domain.tier_rank(levels, {"points": 499}, 1, 100) == 1
    assert domain.tier_rank(levels, {"points": 0, "orders": 10}, 0, 0) == 2


def test_dates() -> None:
    assert domain.add_months(datetime(2026, 1, 31, tzinfo=UTC), 1).day == 28
    assert domain.full_years(datetime(2024, 6, 7, tzinfo=UTC), AT) == 1
    assert domain.birthday_in(2027, date(2024, 2, 29)) == date(2027, 2, 28)
    assert domain.period_key("month", AT) == "2026-06"
    assert domain.age_bucket(datetime(2025, 1, 1, tzinfo=UTC), AT) == "365+"


def test_default_scale_is_valid_and_sensible() -> None:
    s = default_scale()
    assert (s.settings.points_per_unit, s.settings.pending_days, s.settings.expiry_months) == (
        1,
        14,
        12,
    )
    assert [t.name for t in s.tiers.levels] == ["Bronze", "Silver", "Gold"]
    assert parse(s.model_dump(mode="json")) == s


def test_yaml_errors_name_the_line() -> None:
    text = (
        "settings:\n  points_per_unit: 1\nrules:\n  - id: x\n    type: action\n"
        "    event_type: review_posted\n    points: -5\n"
    )
    with pytest.raises(ScaleError) as err:
        parse_yaml(text)
    assert err.value.errors[0][0] == 7
    assert "rules.0" in err.value.errors[0][1]


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(ScaleError) as err:
        parse_yaml("settings:\n  base: [net\n")
    assert err.value.errors[0][0] is not None


def test_tiers_must_rise_and_ids_be_unique() -> None:
    with pytest.raises(ScaleError):
        parse({"tiers": {"levels": [{"name": "A", "threshold": {"value": 5}}]}})
    with pytest.raises(ScaleError):
        parse(
            {
                "rules": [
                    {"id": "a", "type": "first_order", "points": 1},
                    {"id": "a", "type": "first_order", "points": 2},
                ]
            }
        )


class TestClawbackSplit:
    def split(self, points: int, **kw: object) -> tuple[int, int, int]:
        state = {"lot_points": 100, "remaining": 0, "expired": 0, "spent": 0, "clawed": 0}
        c = domain.clawback_split(points, **{**state, "forgive_spent": False, **kw})  # type: ignore[arg-type]
        return c.from_lot, c.recover, c.forgiven

    def test_what_the_lot_holds_goes_first(self) -> None:
        assert self.split(30, remaining=100) == (30, 0, 0)

    def test_expired_points_are_never_taken(self) -> None:
        assert self.split(100, expired=100) == (0, 0, 100)
        assert self.split(100, remaining=20, expired=80) == (20, 0, 80)

    def test_spent_points_are_recovered_or_forgiven(self) -> None:
        assert self.split(100, remaining=40, spent=60) == (40, 60, 0)
        assert self.split(100, remaining=40, spent=60, forgive_spent=True) == (40, 0, 60)

    def test_expired_before_spent(self) -> None:
        assert self.split(100, expired=70, spent=30) == (0, 30, 70)
        assert self.split(50, expired=70, spent=30) == (0, 0, 50)

    def test_partial_refunds_split_each_point_once(self) -> None:
        # 30 spent, 70 expired: a first refund of 50 forgave 50 expired points (none was
        # taken from the lot); the other 50 forgive the 20 expired left, then the 30 spent.
        assert self.split(50, expired=70, spent=30, clawed=50) == (0, 30, 20)
        # 40 held, 60 spent: a first refund took 40 from the lot and 10 spent; the lot now
        # holds 0 of its own, so the next 50 are all spent.
        assert self.split(50, spent=60, clawed=50) == (0, 50, 0)


class TestExpiredAsOf:
    def test_lots_due_by_now(self) -> None:
        lots = [(30, AT), (20, AT.replace(day=7))]
        assert domain.expired_as_of(lots, 50, None, AT) == 30
        assert domain.expired_as_of(lots, 50, None, AT.replace(day=8)) == 50

    def test_inactivity_expires_everything(self) -> None:
        assert domain.expired_as_of([], 80, AT, AT) == 80
        assert domain.expired_as_of([], 80, AT.replace(day=7), AT) == 0


def test_age_bucket_starts_say_what_age_bucket_says() -> None:
    """The liability report buckets lots in SQL with these bounds: same answer at each edge."""
    starts = domain.age_bucket_starts(AT)

    def by_bounds(earned_at: datetime) -> str:
        return next((name for name, at in starts if earned_at > at), domain.OLDEST_BUCKET)

    for days in (0, 29, 30, 31, 90, 91, 180, 181, 365, 366, 400):
        for shift in (timedelta(0), timedelta(seconds=1), -timedelta(seconds=1)):
            earned = AT - timedelta(days=days) + shift
            assert by_bounds(earned) == domain.age_bucket(earned, AT), (days, shift)
