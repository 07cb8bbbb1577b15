from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fidele.kit import codes
from fidele.kit.money import mul_bp
from fidele.promotions import domain
from fidele.promotions.domain import CartLine, Conditions, Offer, Shopper, Tender

T0 = datetime(2026, 6, 1, tzinfo=UTC)

lines_st = st.lists(
    st.builds(
        CartLine,
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["x", "y", None]),
        st.integers(1, 5),
        st.integers(0, 100_000),
    ),
    min_size=1,
    max_size=6,
)
offer_st = st.builds(
    Offer,
    ref=st.text("abcdef", min_size=1, max_size=4),
    source=st.sampled_from(["coupon", "promotion", "reward", "referral"]),
    kind=st.sampled_from(["amount_off", "percent_off", "free_shipping", "free_product"]),
    value=st.integers(1, 200_000),
    cap=st.none() | st.integers(0, 50_000),
    product_id=st.sampled_from(["a", "b"]),
    rule=st.sampled_from([None, "buy_x_get_y", "cheapest_free"]),
    buy=st.integers(1, 3),
    get=st.integers(1, 2),
    priority=st.integers(-2, 2),
    exclusive=st.booleans(),
    automatic=st.booleans(),
    conditions=st.builds(Conditions, categories=st.sampled_from([[], ["x"], ["y"]])),
)


@given(lines_st, st.integers(0, 10_000), st.lists(offer_st, max_size=6))
def test_total_never_negative_and_shares_exact(lines, shipping, offers) -> None:  # type: ignore[no-untyped-def]
    priced = domain.price(lines, shipping, offers)
    assert 0 <= priced.due <= priced.subtotal + shipping
    for a in priced.applied:
        assert a.amount == sum(a.lines) + a.shipping
        assert all(s >= 0 for s in a.lines)
    per_line = [sum(a.lines[i] for a in priced.applied) for i in range(len(lines))]
    assert all(p <= ln.amount for p, ln in zip(per_line, lines, strict=True))
    assert sum(a.shipping for a in priced.applied) <= shipping


@given(lines_st, st.lists(offer_st, max_size=6))
def test_stacking_follows_the_documented_order(lines, offers) -> None:  # type: ignore[no-untyped-def]
    priced = domain.price(lines, 0, offers)
    keys = [domain.stack_key(a.offer) for a in priced.applied]
    assert keys == sorted(keys)
    exclusive = [a for a in priced.applied if a.offer.exclusive]
    assert not exclusive or len(priced.applied) == 1


def test_percent_before_amount_on_running_total() -> None:
    lines = [CartLine("a", None, 1, 10_000)]
    pct = Offer("p", "coupon", "percent_off", value=1000)
    amt = Offer("m", "coupon", "amount_off", value=2000)
    priced = domain.price(lines, 0, [amt, pct])
    assert [a.amount for a in priced.applied] == [1000, 2000]  # 10% of 10000, then 20.00


def test_percent_rounds_half_away_from_zero_and_caps() -> None:
    lines = [CartLine("a", None, 1, 1005)]
    assert domain.price(lines, 0, [Offer("p", "coupon", "percent_off", value=5000)]).discount == 503
    capped = Offer("p", "coupon", "percent_off", value=5000, cap=100)
    assert domain.price(lines, 0, [capped]).discount == 100


@given(
    st.integers(0, 10**9),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=5),
)
def test_payments_never_exceed_due(due, asks) -> None:  # type: ignore[no-untyped-def]
    tenders = [Tender("gift_card", str(i), r, a) for i, (r, a) in enumerate(asks)]
    taken = domain.pay(due, tenders)
    assert sum(taken) <= due
    assert all(0 <= t <= min(r, a) for t, (r, a) in zip(taken, asks, strict=True))


@given(
    st.lists(st.integers(0, 10**7), min_size=1, max_size=4),
    st.integers(1, 10**7),
    st.lists(st.integers(1, 100), min_size=1, max_size=6),
)
def test_refund_split_is_proportional_and_exact(parts, total, steps) -> None:  # type: ignore[no-untyped-def]
    cuts = sorted({min(total, total * s // 100) for s in steps} | {total})
    got = [0] * len(parts)
    before = 0
    for after in cuts:
        for i, share in enumerate(domain.refund_shares(parts, total, before, after)):
            assert share >= 0
            got[i] += share
        before = after
    assert got == parts


@given(st.integers(0, 10**7), st.integers(0, 10**6), st.integers(1, 1000))
def test_points_whole_and_within_due(due, points, per_100) -> None:  # type: ignore[no-untyped-def]
    used, money = domain.points_for(due, points, per_100)
    assert 0 <= used <= points
    assert 0 <= money <= due


def test_free_units_take_the_cheapest() -> None:
    lines = [CartLine("a", "x", 2, 1000), CartLine("b", "x", 1, 300), CartLine("c", "x", 3, 500)]
    b2g1 = Offer("r", "promotion", "free_product", rule="buy_x_get_y", buy=2, get=1, automatic=True)
    assert domain.price(lines, 0, [b2g1]).applied[0].lines == [0, 300, 500]
    cheapest = Offer("c", "promotion", "free_product", rule="cheapest_free", buy=6)
    assert domain.price(lines, 0, [cheapest]).discount == 300


@pytest.mark.parametrize(
    ("conditions", "shopper", "failed"),
    [
        (Conditions(currency="USD"), Shopper("EUR"), "currency"),
        (Conditions(channels=["pos"]), Shopper("EUR", channel="web"), "channels"),
        (Conditions(first_order_only=True), Shopper("EUR", first_order=False), "first_order_only"),
        (Conditions(tiers=["Gold"]), Shopper("EUR", tier="Silver"), "tiers"),
        (Conditions(segments=["vip"]), Shopper("EUR", segments=frozenset({"new"})), "segments"),
        (Conditions(exclude_products=["a"]), Shopper("EUR"), "products"),
        (Conditions(min_subtotal=1001), Shopper("EUR"), "min_subtotal"),
        (
            Conditions(tiers=["Gold"], segments=["vip"]),
            Shopper("EUR", tier="Gold", segments=frozenset({"vip"})),
            None,
        ),
    ],
)
def test_each_condition(conditions: Conditions, shopper: Shopper, failed: str | None) -> None:
    offer = Offer("o", "coupon", "amount_off", value=1, conditions=conditions)
    assert domain.unmet(offer, [CartLine("a", "x", 1, 1000)], shopper) == failed


def test_schedule_and_text() -> None:
    sched = [(30, 1000), (15, 1500), (60, 500)]
    assert domain.scheduled_value(sched, T0, T0 + timedelta(days=15)) == 1500
    assert domain.scheduled_value(sched, T0, T0 + timedelta(days=16)) == 1000
    assert domain.scheduled_value(sched, T0, T0 + timedelta(days=60)) == 500
    assert domain.scheduled_value(sched, T0, T0 + timedelta(days=61)) is None
    text = domain.next_order_text("C123", sched, T0, "Shop")
    assert "15% off until 16/06/2026" in text
    assert text.endswith("C123")


def test_code_checks() -> None:
    code = codes.generate("G")
    assert domain.check_code(code.lower()) == (codes.normalise(code), None)
    typo = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert domain.check_code(typo)[1] == "bad_check_character"
    assert domain.check_code("SUMMER10") == ("SVMMER10", None)
    assert domain.check_code("é!")[1] == "unknown"


@pytest.mark.parametrize(
    ("referee", "kwargs", "reason"),
    [
        (domain.Identity(1), {}, "self_referral"),
        (domain.Identity(2, emails=frozenset({"a@x"})), {}, "self_referral"),
        (domain.Identity(2, addresses=frozenset({"1 rue x"})), {}, "same_address"),
        (domain.Identity(2, payments=frozenset({"card"})), {}, "same_fingerprint"),
        (domain.Identity(2), {"already_referred": True}, "already_referred"),
        (domain.Identity(2), {"first_order": False}, "not_first_order"),
        (domain.Identity(2), {"this_month": 3}, "monthly_cap_reached"),
        (domain.Identity(2), {}, None),
    ],
)
def test_referral_rules(referee: domain.Identity, kwargs: dict, reason: str | None) -> None:
    referrer = domain.Identity(
        1, emails=frozenset({"a@x"}), addresses=frozenset({"1 rue x"}), payments=frozenset({"card"})
    )
    args = {"already_referred": False, "first_order": True, "this_month": 0, "monthly_cap": 3}
    assert domain.referral_refusal(referrer, referee, **{**args, **kwargs}) == reason


def test_address_normalisation() -> None:
    assert domain.normalise_address(" 1, Rue  X ") == domain.normalise_address("1 rue x")
    # Attributes are free-form: an address object compares by its fields, never raises.
    as_object = {"line1": "1 Rue X", "city": "Lyon", "geo": {"lat": 1}}
    assert domain.normalise_address(as_object) == domain.normalise_address({**as_object})
    assert domain.normalise_address(as_object) == "lyon 1 rue x"
    assert domain.normalise_address(["1 rue x"]) is None


def test_mul_bp_is_used_for_percent() -> None:
    lines = [CartLine("a", None, 3, 333)]
    got = domain.price(lines, 0, [Offer("p", "coupon", "percent_off", value=3333)]).discount
    assert got == mul_bp(999, 3333)
