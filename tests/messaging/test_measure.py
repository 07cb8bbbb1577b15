"""The measurement arithmetic against published and hand-computed values, and its properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from fidele.messaging.measure import (
    BUCKETS,
    Group,
    bucket,
    compare,
    holdout_salt,
    is_held_out,
    newcombe_difference,
    pick_variant,
    variant_salt,
    wilson,
    winner,
)

# Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10 (hybrid score):
# the paper's eight examples, to 4 decimals.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_TABLE_II)
def test_newcombe_reproduces_the_published_table(counts, expected) -> None:
    interval = newcombe_difference(*counts)
    assert interval is not None
    assert (round(interval.low, 4), round(interval.high, 4)) == expected


def test_wilson_by_hand() -> None:
    # 81/263 (Newcombe 1998, the single-proportion paper's example): 0.2553 to 0.3662.
    # By hand: p = 0.30798, z^2 = 3.84146; centre = (p + z^2/526) / (1 + z^2/263)
    # = 0.31528 / 1.01461 = 0.31075; half = 1.95996/1.01461 * sqrt(p(1-p)/263 + z^2/276676)
    # = 1.93174 * 0.028727 = 0.055493.
    interval = wilson(81, 263)
    assert interval is not None
    assert round(interval.low, 4) == 0.2553
    assert round(interval.high, 4) == 0.3662
    # 0 out of 20: the upper end is z^2 / (n + z^2) = 3.84146 / 23.84146.
    zero = wilson(0, 20)
    assert zero is not None
    assert zero.low == 0.0
    assert zero.high == pytest.approx(3.841459 / 23.841459, abs=1e-6)
    assert wilson(0, 0) is None


def test_welch_against_scipy_on_raw_revenues() -> None:
    treated = [0, 0, 0, 2500, 0, 4990, 0, 0, 1200, 0, 0, 0]
    control = [0, 0, 1500, 0, 0, 0, 0, 0, 0, 0]
    a, b = Group.of(len(treated), [v for v in treated if v]), Group.of(len(control), [1500])
    # zeros of non-buyers are implied by customers - converted
    effect = compare(a, b)
    ref = stats.ttest_ind(treated, control, equal_var=False).confidence_interval(0.95)
    assert effect.revenue_interval is not None
    assert effect.revenue_interval.low == pytest.approx(ref.low, rel=1e-9)
    assert effect.revenue_interval.high == pytest.approx(ref.high, rel=1e-9)
    assert effect.revenue_difference == pytest.approx(np.mean(treated) - np.mean(control))


def test_compare_by_hand() -> None:
    # Sent to 200, 30 bought for 100.00 each; holdout 50, 4 bought for 100.00 each.
    effect = compare(Group.of(200, [10_000] * 30), Group.of(50, [10_000] * 4))
    assert effect.rate_difference == pytest.approx(0.15 - 0.08)
    assert effect.relative_lift == pytest.approx(0.07 / 0.08)
    assert effect.revenue_difference == pytest.approx(1500 - 800)
    assert effect.rate_interval is not None
    assert effect.rate_interval.low < 0.07 < effect.rate_interval.high
    # Revenue is 10,000 x the conversion indicator here, so Welch's variances are
    # 10^8 * p(1-p) * n/(n-1) by hand.
    v1 = 1e8 * 0.15 * 0.85 * 200 / 199
    v2 = 1e8 * 0.08 * 0.92 * 50 / 49
    se = math.sqrt(v1 / 200 + v2 / 50)
    df = se**4 / ((v1 / 200) ** 2 / 199 + (v2 / 50) ** 2 / 49)
    half = stats.t.ppf(0.975, df) * se
    assert effect.revenue_interval is not None
    assert effect.revenue_interval.low == pytest.approx(700 - half)
    assert effect.revenue_interval.high == pytest.approx(700 + half)


def test_small_groups_still_get_an_interval() -> None:
    effect = compare(Group.of(3, [500]), Group.of(2, []))
    assert effect.rate_interval is not None
    assert effect.rate_interval.low < 0 < effect.rate_interval.high
    assert effect.revenue_interval is not None
    single = compare(Group.of(1, [500]), Group.of(1, []))
    assert single.rate_interval is not None  # Newcombe needs no minimum size
    assert single.revenue_interval is None  # Welch needs 2 per group
    assert compare(Group.of(0, []), Group.of(5, [])).rate_interval is None


def test_no_spread_gives_the_point() -> None:
    effect = compare(Group.of(10, []), Group.of(10, []))
    assert effect.revenue_interval is not None
    assert effect.revenue_interval.as_list() == [0.0, 0.0]


def test_newcombe_covers_at_small_sizes() -> None:
    """At 30 customers per arm and a 10% rate, the interval holds the true difference in
    about 95% of experiments (Wald's would not: it collapses at 0 conversions)."""
    rng = np.random.default_rng(7)
    trials = 4000
    x1 = rng.binomial(30, 0.15, trials)
    x2 = rng.binomial(30, 0.10, trials)
    hits = 0
    for a, b in zip(x1, x2, strict=True):
        interval = newcombe_difference(int(a), 30, int(b), 30)
        assert interval is not None
        hits += interval.low <= 0.05 <= interval.high
    assert 0.93 <= hits / trials <= 0.985


counts = st.integers(min_value=1, max_value=5000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)


@given(counts)
def test_wilson_is_inside_unit_and_holds_the_rate(xn) -> None:
    x, n = xn
    interval = wilson(x, n)
    assert interval is not None
    assert 0.0 <= interval.low <= x / n <= interval.high <= 1.0


@given(counts, counts)
def test_newcombe_holds_the_difference_and_is_antisymmetric(a, b) -> None:
    d = newcombe_difference(a[0], a[1], b[0], b[1])
    r = newcombe_difference(b[0], b[1], a[0], a[1])
    assert d is not None
    assert r is not None
    diff = a[0] / a[1] - b[0] / b[1]
    assert -1.0 <= d.low <= diff + 1e-12
    assert diff - 1e-12 <= d.high <= 1.0
    assert d.low == pytest.approx(-r.high, abs=1e-12)
    assert d.high == pytest.approx(-r.low, abs=1e-12)


@given(
    st.lists(st.integers(min_value=0, max_value=10**7), min_size=2, max_size=60),
    st.lists(st.integers(min_value=0, max_value=10**7), min_size=2, max_size=60),
)
def test_welch_interval_holds_the_difference(a, b) -> None:
    ga = Group.of(len(a), [v for v in a if v])
    gb = Group.of(len(b), [v for v in b if v])
    effect = compare(ga, gb)
    diff = np.mean(a) - np.mean(b)
    assert effect.revenue_difference == pytest.approx(diff)
    assert effect.revenue_interval is not None
    tol = 1e-9 * max(1.0, abs(diff))
    assert effect.revenue_interval.low - tol <= diff <= effect.revenue_interval.high + tol


# --- assignment ---------------------------------------------------------------------------


def test_holdout_share_is_within_its_binomial_range() -> None:
    salt = holdout_salt(1, "flow:3")
    n = 20_000
    held = sum(is_held_out(salt, cid, 1000) for cid in range(1, n + 1))
    # 10% of 20,000: mean 2,000, sd 42.4; 4 sd either side.
    assert 1830 <= held <= 2170


@given(st.integers(min_value=1, max_value=10**12), st.integers(0, BUCKETS), st.integers(0, BUCKETS))
def test_holdout_is_deterministic_and_nested(customer_id, a, b) -> None:
    salt = holdout_salt(5, "broadcast:9")
    small, large = min(a, b), max(a, b)
    assert is_held_out(salt, customer_id, small) == is_held_out(salt, customer_id, small)
    if is_held_out(salt, customer_id, small):
        assert is_held_out(salt, customer_id, large)


def test_holdouts_of_different_flows_are_independent() -> None:
    a, b = holdout_salt(1, "flow:1"), holdout_salt(1, "flow:2")
    both = sum(is_held_out(a, c, 5000) and is_held_out(b, c, 5000) for c in range(1, 10_001))
    assert 2350 <= both <= 2650  # 25% when independent (sd 43)


def test_variant_split_follows_weights_and_is_stable() -> None:
    salt = variant_salt(1, "broadcast:4")
    weights = [("a", 1), ("b", 3)]
    picks = [pick_variant(salt, c, weights) for c in range(1, 8001)]
    assert 5800 <= picks.count("b") <= 6200  # 75% of 8,000, sd 39
    assert picks == [pick_variant(salt, c, weights) for c in range(1, 8001)]
    # independent of the holdout of the same broadcast
    hold = holdout_salt(1, "broadcast:4")
    held_b = [p for c, p in enumerate(picks, 1) if is_held_out(hold, c, 2000)]
    assert 0.70 <= held_b.count("b") / len(held_b) <= 0.80


def test_bad_shares_and_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="holdout share"):
        is_held_out("s", 1, BUCKETS + 1)
    with pytest.raises(ValueError, match="weights"):
        pick_variant("s", 1, [("a", 0)])
    assert 0 <= bucket("s", 1) < BUCKETS


def test_winner_only_once_the_interval_excludes_zero() -> None:
    close = {"a": Group.of(100, [1] * 10), "b": Group.of(100, [1] * 13)}
    assert winner(close) is None
    clear = {"a": Group.of(1000, [1] * 100), "b": Group.of(1000, [1] * 160)}
    assert winner(clear) == "b"
    three = {**clear, "c": Group.of(1000, [1] * 150)}
    assert winner(three) is None  # b does not yet beat c
    assert winner({"a": Group.of(10, [])}) is None
