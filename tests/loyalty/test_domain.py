from __future__ import annotations

from datetime import UTC, date, datetime

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
