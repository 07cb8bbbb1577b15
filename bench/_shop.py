"""The generated shop the analytics benchmarks run on (shared by bench/analytics.py and
bench/compare_lifetimes.py).

CDNOW's BG/NBD and Gamma-Gamma estimates (Fader, Hardie & Lee 2005; Fader & Hardie 2013) except
``alpha``: 1.0 instead of 4.414, i.e. each customer's purchase rate is 4.4x CDNOW's (same
gamma shape ``r``, same dropout ``a``, ``b``), over 3 years with customers acquired during the
first year. That gives ~6.2 transactions per customer, the ~6M rows for 1M customers the
issue asks for; CDNOW's own rates over the generator's default 2 years give only ~2.9.
"""

from __future__ import annotations

from datetime import date, timedelta

START = date(2024, 1, 1)
DAYS = 1095
ACQUISITION_DAYS = 365
END = START + timedelta(days=DAYS - 1)  # last observed day (inclusive)
PARAMS = {"alpha": 1.0}
TAG = "3y_alpha1"  # in cached file names: a change of shop must not reuse an old file


def shop(n: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """``n`` customers' transactions (polars frame: customer_id, date, amount)."""
    from fidele.analytics.generate import simulate_bgnbd_gg

    return simulate_bgnbd_gg(
        n, start=START, days=DAYS, acquisition_days=ACQUISITION_DAYS, seed=seed, **PARAMS
    )
