"""Measurement arithmetic (pure): deterministic holdout and variant assignment, rates, and the
incremental effect of a message against its holdout (or of one variant against another) with a
95% confidence interval that holds at any size.

Methods, and why:

- **A rate** (opened, clicked, converted over sent): the **Wilson score interval**. Unlike the
  textbook Wald interval it stays inside [0, 1] and does not collapse to a width of 0 at 0/n or
  n/n, so a flow sent to 40 customers gets an honest, wide interval instead of a false certainty.
- **Difference of two conversion rates** (treated - holdout, variant B - variant A):
  **Newcombe's hybrid score interval** (Newcombe 1998, "method 10"), built from the two Wilson
  intervals. Its coverage stays close to 95% for small groups and for rates near 0, where the
  Wald difference interval is badly anti-conservative; it needs no minimum size (a group of 1 is
  allowed and simply gives a wide interval). Klaviyo's 400k floor is not needed.
- **Difference of revenue per customer**: **Welch's t interval** (unequal variances,
  Welch-Satterthwaite degrees of freedom) on per-customer revenue, zeros included for those
  who did not buy. Revenue is skewed, so with few buyers the interval is approximate (it rests
  on the central limit theorem); it needs at least 2 customers in each group.
- **Assignment** to holdout and variants: SHA-256 of a salt naming the merchant and the
  experiment, and the customer's id, reduced to one of 10,000 buckets. The same customer always
  lands in the same group (retries, restarts, several workers), holdouts of different flows are
  independent, and a larger share keeps back a superset of a smaller share's customers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "BUCKETS",
    "Effect",
    "Group",
    "Interval",
    "bucket",
    "compare",
    "holdout_salt",
    "is_held_out",
    "newcombe_difference",
    "pick_variant",
    "rate",
    "variant_salt",
    "welch_difference",
    "wilson",
    "winner",
]

BUCKETS = 10_000  # shares are in basis points: a 10% holdout is 1000
Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


# --- assignment ---------------------------------------------------------------------------


def holdout_salt(merchant_id: int, scope: str) -> str:
    """``scope``: ``"flow:12"``, ``"broadcast:7"`` or ``"programme"`` (the global holdout)."""
    return f"holdout:{merchant_id}:{scope}"


def variant_salt(merchant_id: int, scope: str) -> str:
    return f"variant:{merchant_id}:{scope}"


def _hash(salt: str, customer_id: int) -> int:
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def bucket(salt: str, customer_id: int) -> int:
    """The customer's bucket in [0, BUCKETS) for this salt (uniform, deterministic)."""
    return _hash(salt, customer_id) % BUCKETS


def is_held_out(salt: str, customer_id: int, share_bp: int) -> bool:
    """Whether the customer is kept back, for a holdout of ``share_bp`` basis points."""
    if not 0 <= share_bp <= BUCKETS:
        raise ValueError(f"holdout share {share_bp} is not within 0..{BUCKETS} basis points")
    return bucket(salt, customer_id) < share_bp


def pick_variant(salt: str, customer_id: int, weights: Sequence[tuple[str, int]]) -> str:
    """The variant name for this customer; ``weights`` are positive integers (any scale)."""
    total = sum(w for _, w in weights)
    if not weights or total <= 0 or any(w < 0 for _, w in weights):
        raise ValueError("variant weights must be non-negative with a positive total")
    point = _hash(salt, customer_id) % total
    for name, weight in weights:
        if point < weight:
            return name
        point -= weight
    raise AssertionError("unreachable: point < total")


# --- intervals ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def rate(successes: int, n: int) -> float | None:
    return None if n == 0 else successes / n


def wilson(successes: int, n: int, z: float = Z95) -> Interval | None:
    """Wilson score interval for ``successes``/``n``; None when n is 0."""
    if n == 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n}")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Exact ends at 0/n and n/n (rounding would otherwise leave 1e-17 below 0).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(low, high)


def newcombe_difference(x1: int, n1: int, x2: int, n2: int) -> Interval | None:
    """Newcombe's hybrid score interval for ``x1/n1 - x2/n2``; None when a group is empty."""
    w1, w2 = wilson(x1, n1), wilson(x2, n2)
    if w1 is None or w2 is None:
        return None
    p1, p2 = x1 / n1, x2 / n2
    d = p1 - p2
    low = d - math.sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2)
    high = d + math.sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2)
    return Interval(max(-1.0, low), min(1.0, high))


@lru_cache(maxsize=1024)
def _t975(df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def welch_difference(
    mean1: float, var1: float, n1: int, mean2: float, var2: float, n2: int
) -> Interval | None:
    """Welch's 95% interval for ``mean1 - mean2`` (sample variances, ddof=1); None below 2
    observations in a group."""
    if n1 < 2 or n2 < 2:
        return None
    d = mean1 - mean2
    a, b = var1 / n1, var2 / n2
    se2 = a + b
    if se2 <= 0:  # no spread at all (e.g. nobody bought in either group): the point itself
        return Interval(d, d)
    df = se2 * se2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    half = _t975(df) * math.sqrt(se2)
    return Interval(d - half, d + half)


# --- groups and effects -------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """One arm: how many customers, how many converted, and their revenue (minor units).

    ``revenue_sq`` is the sum over customers of the square of each customer's revenue (exact
    Python integers), enough for the variance without keeping every value."""

    customers: int
    converted: int
    revenue: int
    revenue_sq: int

    @classmethod
    def of(cls, customers: int, converted_revenues: Iterable[int]) -> Group:
        """``converted_revenues``: one entry per converted customer, that customer's revenue
        over the window (0 for an order of nothing)."""
        values = list(converted_revenues)
        if len(values) > customers:
            raise ValueError(f"{len(values)} converted out of {customers} customers")
        return cls(customers, len(values), sum(values), sum(v * v for v in values))

    @property
    def rate(self) -> float | None:
        return rate(self.converted, self.customers)

    @property
    def revenue_per_customer(self) -> float | None:
        return None if self.customers == 0 else self.revenue / self.customers

    @property
    def revenue_variance(self) -> float | None:
        n = self.customers
        if n < 2:
            return None
        # Exact integer arithmetic first: n * sum(x^2) - sum(x)^2 is never negative.
        return (n * self.revenue_sq - self.revenue * self.revenue) / (n * (n - 1))

    def as_dict(self) -> dict[str, Any]:
        interval = wilson(self.converted, self.customers)
        return {
            "customers": self.customers,
            "converted": self.converted,
            "conversion_rate": self.rate,
            "conversion_rate_ci95": interval.as_list() if interval else None,
            "revenue": self.revenue,
            "revenue_per_customer": self.revenue_per_customer,
        }


@dataclass(frozen=True)
class Effect:
    """``treated`` against ``control``: differences are treated minus control."""

    treated: Group
    control: Group
    rate_difference: float | None
    rate_interval: Interval | None
    relative_lift: float | None
    revenue_difference: float | None
    revenue_interval: Interval | None

    @property
    def significant(self) -> bool:
        return self.rate_interval is not None and self.rate_interval.excludes_zero()

    def as_dict(self) -> dict[str, Any]:
        return {
            "incremental_conversion_rate": self.rate_difference,
            "incremental_conversion_rate_ci95": _listed(self.rate_interval),
            "relative_lift": self.relative_lift,
            "incremental_revenue_per_customer": self.revenue_difference,
            "incremental_revenue_per_customer_ci95": _listed(self.revenue_interval),
            "significant": self.significant,
            "method": {
                "conversion": "Newcombe hybrid score interval (Wilson-based), 95%",
                "revenue": "Welch t interval on revenue per customer, 95%",
            },
        }


def _listed(interval: Interval | None) -> list[float] | None:
    return None if interval is None else interval.as_list()


def compare(treated: Group, control: Group) -> Effect:
    """The incremental conversion rate and revenue per customer of ``treated`` over
    ``control``, each with its 95% interval (None where a group is too small)."""
    rt, rc = treated.rate, control.rate
    diff = None if rt is None or rc is None else rt - rc
    lift = None if diff is None or not rc else diff / rc
    rpt, rpc = treated.revenue_per_customer, control.revenue_per_customer
    rev_diff = None if rpt is None or rpc is None else rpt - rpc
    vt, vc = treated.revenue_variance, control.revenue_variance
    rev_interval = None
    if rpt is not None and rpc is not None and vt is not None and vc is not None:
        rev_interval = welch_difference(rpt, vt, treated.customers, rpc, vc, control.customers)
    return Effect(
        treated,
        control,
        diff,
        newcombe_difference(
            treated.converted, treated.customers, control.converted, control.customers
        ),
        lift,
        rev_diff,
        rev_interval,
    )


def winner(groups: dict[str, Group]) -> str | None:
    """The variant whose conversion rate beats every other variant's with a 95% interval of
    the difference that excludes zero; None while no variant does (keep sending the split).

    With more than two variants this is a series of pairwise comparisons, each at 95%: the
    leader must clear all of them, which makes the rule stricter, not looser."""
    ranked = sorted(groups.items(), key=lambda kv: kv[1].rate or 0.0, reverse=True)
    if len(ranked) < 2:
        return None
    name, best = ranked[0]
    for _, other in ranked[1:]:
        effect = compare(best, other)
        if effect.rate_interval is None or effect.rate_interval.low <= 0:
            return None
    return name
