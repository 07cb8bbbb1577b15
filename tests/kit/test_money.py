from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fidele.kit import money


def test_currency_exponents() -> None:
    assert money.minor_units("EUR") == 2 and money.minor_units("JPY") == 0
    assert money.minor_units("KWD") == 3 and money.unit("EUR") == 100
    assert money.is_currency("EUR") and not money.is_currency("XXY")


def test_rounding_is_half_away_from_zero() -> None:
    assert money.mul_bp(1005, 5000) == 503
    assert money.mul_bp(-1005, 5000) == -503
    assert money.div_round(5, 2) == 3 and money.div_round(4, 3) == 1


def test_allocate_known_case() -> None:
    assert money.allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert money.allocate(350, [3000, 500]) == [300, 50]
    assert money.allocate(7, [0, 0]) == [7, 0]


@given(st.integers(-(10**9), 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=20))
def test_allocate_parts_sum_to_total(total: int, weights: list[int]) -> None:
    parts = money.allocate(total, weights)
    assert sum(parts) == total and len(parts) == len(weights)
    if sum(weights):
        for p, w in zip(parts, weights, strict=True):
            exact = total * w / sum(weights)
            assert abs(p - exact) < 1 + 1e-9
