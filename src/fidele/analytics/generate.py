"""Seeded transactions drawn from the BG/NBD purchase process and Gamma-Gamma spend.

Tests, benchmarks and the demo shop use it: the true parameters are known, so a fit can be
checked against them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import polars as pl

__all__ = ["simulate_bgnbd_gg"]

_US_PER_DAY = 86_400_000_000


def simulate_bgnbd_gg(
    n_customers: int,
    *,
    r: float = 0.243,
    alpha: float = 4.414,
    a: float = 0.793,
    b: float = 2.426,
    p: float = 6.25,
    q: float = 3.74,
    v: float = 15.44,
    start: date,
    days: int = 730,
    seed: int = 0,
    amount_scale: float = 100.0,
    mean_orders_cap: int | None = None,
    acquisition_days: int | None = None,
) -> pl.DataFrame:
    """Draw every customer's transactions from BG/NBD (purchases) and Gamma-Gamma (spend).

    Customers are born uniformly over the first ``acquisition_days`` of the period (default
    the first half, ``days // 2``; at least one day) and make their first purchase at birth.
    While alive they buy at a Poisson rate ``lambda ~ Gamma(r, alpha)`` per **week**; after
    each repeat purchase they drop out with probability ``p_drop ~ Beta(a, b)``. The
    observation ends at ``start + days`` (exclusive). Each transaction's value is
    ``z ~ Gamma(p, nu)`` currency units with ``nu ~ Gamma(q, v)`` per customer, times
    ``amount_scale`` and rounded to minor units (at least 1).

    Parameters
    ----------
    n_customers
        Number of customers (each has at least its first purchase).
    r, alpha, a, b
        BG/NBD parameters, time in weeks (defaults: Fader, Hardie & Lee's CDNOW estimates).
    p, q, v
        Gamma-Gamma parameters in currency units (defaults: Fader & Hardie's CDNOW estimates).
    start, days
        First day of the period (UTC midnight) and its length in days.
    seed
        Seed of ``numpy.random.default_rng``: same seed, same frame.
    amount_scale
        Minor units per currency unit (100 for cents).
    mean_orders_cap
        If given, each customer's rate is clipped so its expected number of purchases over its
        lifetime in the period (``lambda * T``) is at most this; keeps demo shops realistic.
    acquisition_days
        Length of the acquisition window at the start of the period (default ``days // 2``).

    Returns
    -------
    polars.DataFrame
        ``customer_id`` (Utf8, ``"c0000001"``...), ``date`` (Datetime UTC, the purchase
        instant), ``amount`` (Int64 minor units); sorted by customer then date.
    """
    rng = np.random.default_rng(seed)
    n = int(n_customers)
    window = days // 2 if acquisition_days is None else min(acquisition_days, days)
    birth = rng.uniform(0.0, max(window, 1), n)
    age_weeks = (days - birth) / 7.0
    lam = rng.gamma(r, 1.0 / alpha, n)
    if mean_orders_cap is not None:
        lam = np.minimum(lam, mean_orders_cap / age_weeks)
    p_drop = np.clip(rng.beta(a, b, n), 1e-12, 1.0)
    arrivals = rng.poisson(lam * age_weeks)
    # the purchase after which the customer drops out: purchases stop there
    repeats = np.minimum(arrivals, rng.geometric(p_drop))
    offsets = _repeat_offsets(rng, repeats, arrivals)
    owner = np.repeat(np.arange(n), repeats)
    when = np.concatenate([birth, birth[owner] + offsets * (days - birth[owner])])
    who = np.concatenate([np.arange(n), owner])
    amount = _amounts(rng, who, n, p=p, q=q, v=v, scale=amount_scale)
    return _frame(who, when, amount, start, width=max(7, len(str(n))))


def _repeat_offsets(rng: np.random.Generator, x: np.ndarray, arrivals: np.ndarray) -> np.ndarray:
    """Fractions of each customer's window at which its ``x`` repeat purchases fall.

    They are the first ``x`` order statistics of the ``N = arrivals`` uniform Poisson arrival
    times in the window; with exponential spacings ``E``, ``U_(k) = S_k / S_(N+1)`` where
    ``S_(N+1) = S_x + G`` and ``G ~ Gamma(N + 1 - x)``, so only ``sum(x)`` spacings are drawn.
    """
    total = int(x.sum())
    spacing = rng.standard_exponential(total)
    csum = np.cumsum(spacing)
    ends = np.cumsum(x)
    starts = ends - x
    base = np.where(starts > 0, csum[np.maximum(starts - 1, 0)], 0.0)
    owner = np.repeat(np.arange(x.size), x)
    within = csum - base[owner]
    s_x = np.where(x > 0, csum[np.maximum(ends - 1, 0)] - base, 0.0)
    rest = rng.gamma(1.0 + arrivals - x, 1.0)
    return within / (s_x + rest)[owner]


def _amounts(
    rng: np.random.Generator,
    who: np.ndarray,
    n: int,
    *,
    p: float,
    q: float,
    v: float,
    scale: float,
) -> np.ndarray:
    nu = rng.gamma(q, 1.0 / v, n)
    value = rng.gamma(p, 1.0 / nu[who])
    return np.maximum(np.rint(value * scale), 1).astype(np.int64)


def _frame(
    who: np.ndarray, when: np.ndarray, amount: np.ndarray, start: date, *, width: int
) -> pl.DataFrame:
    origin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    origin_us = int(origin.timestamp() * 1_000_000)
    instants = origin_us + np.floor(when * _US_PER_DAY).astype(np.int64)
    frame = pl.DataFrame({"idx": who + 1, "date": instants, "amount": amount})
    return frame.sort("idx", "date").select(
        pl.concat_str(pl.lit("c"), pl.col("idx").cast(pl.Utf8).str.zfill(width)).alias(
            "customer_id"
        ),
        pl.col("date").cast(pl.Datetime("us", "UTC")),
        pl.col("amount"),
    )
