"""Compositions of the pure steps used by the CLI and the daily refresh: fit and score CLV,
and assemble every per-customer insight into one frame."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from time import perf_counter

import polars as pl

from fidele.analytics.summary import TimeUnit, calibration_and_holdout, summary

__all__ = ["ClvOptions", "clv_report", "customer_insights"]

# The model modules (scipy.special, scipy.optimize: ~0.4 s to import) are imported inside the
# functions that fit, so the summary, RFM and cohorts paths never pay for them. Importing them
# in a background thread during the summary was measured slower overall: the summary ran
# 0.5-1.6 s slower beside the importing thread, more than the import itself costs.

Progress = Callable[[str, float], None]
# Below this many repeat customers the models are not fitted (their estimates would be noise).
MIN_REPEAT_CUSTOMERS = 20


@dataclass(frozen=True)
class ClvOptions:
    time_unit: TimeUnit = "weeks"
    horizon_days: int = 90
    clv_months: int = 12
    discount_rate: float = 0.01
    customer_col: str = "customer_id"
    datetime_col: str = "date"
    monetary_col: str = "amount"


@contextmanager
def _step(name: str, progress: Progress | None, timings: dict[str, float]) -> Iterator[None]:
    started = perf_counter()
    yield
    timings[name] = perf_counter() - started
    if progress is not None:
        progress(name, timings[name])


def clv_report(
    transactions: pl.DataFrame | pl.LazyFrame,
    *,
    observation_end: date,
    calibration_end: date | None = None,
    options: ClvOptions = ClvOptions(),
    progress: Progress | None = None,
) -> tuple[dict[str, object], pl.DataFrame]:
    """Fit BG/NBD and Gamma-Gamma on the summary up to ``calibration_end`` (or
    ``observation_end``) and score every customer.

    Returns the report (parameters under their usual names, log-likelihoods, standard errors,
    timings and, with ``calibration_end``, the calibration-vs-holdout table) and the
    per-customer frame of :func:`fidele.analytics.clv.score` (money in the input's unit).
    """
    o, t = options, {}
    names = dict(customer_col=o.customer_col, datetime_col=o.datetime_col)
    fit_end = calibration_end or observation_end
    with _step("summary", progress, t):
        data = summary(
            transactions,
            **names,
            monetary_col=o.monetary_col,
            observation_end=fit_end,
            time_unit=o.time_unit,
            interpurchase=False,
        )
    from fidele.analytics.bgnbd import fit_bgnbd
    from fidele.analytics.clv import calibration_vs_holdout, score
    from fidele.analytics.gammagamma import fit_gamma_gamma

    with _step("bgnbd_fit", progress, t):
        bg = fit_bgnbd(data)
    with _step("gamma_gamma_fit", progress, t):
        gg = fit_gamma_gamma(data)
    with _step("scoring", progress, t):
        scores = score(
            data,
            bg.params,
            gg.params,
            customer_col=o.customer_col,
            time_unit=o.time_unit,
            horizon_days=o.horizon_days,
            clv_months=o.clv_months,
            discount_rate=o.discount_rate,
        )
    report: dict[str, object] = {
        "bgnbd": bg.as_dict(),
        "gamma_gamma": gg.as_dict(),
        "time_unit": o.time_unit,
        "observation_end": fit_end.isoformat(),
        "customers": data.height,
        "horizon_days": o.horizon_days,
        "clv_months": o.clv_months,
        "discount_rate": o.discount_rate,
    }
    if calibration_end is not None:
        split = calibration_and_holdout(
            transactions,
            **names,
            monetary_col=o.monetary_col,
            calibration_end=calibration_end,
            observation_end=observation_end,
            time_unit=o.time_unit,
        )
        report["calibration_vs_holdout"] = calibration_vs_holdout(split, bg.params).to_dicts()
    report["timings"] = t
    return report, scores


def customer_insights(
    transactions: pl.DataFrame | pl.LazyFrame,
    *,
    observation_end: date,
    options: ClvOptions = ClvOptions(),
) -> tuple[dict[str, object] | None, pl.DataFrame]:
    """Every per-customer insight: RFM scores and segment, the CLV scores (when the shop has
    enough repeat customers to fit the models) and the cadence.

    Returns
    -------
    tuple
        The CLV report (None if the models could not be fitted) and a frame with
        ``customer_col``, ``r_score``, ``f_score``, ``m_score``, ``rfm``, ``segment``,
        ``p_alive``, ``expected_purchases``, ``expected_spend``, ``clv`` (nulls without a
        fit), ``next_expected_order``, ``expected_gap`` and ``overdue_ratio``.
    """
    from fidele.analytics.cadence import cadence
    from fidele.analytics.rfm import rfm

    o = options
    names = dict(customer_col=o.customer_col, datetime_col=o.datetime_col)
    data = summary(
        transactions,
        **names,
        monetary_col=o.monetary_col,
        observation_end=observation_end,
        time_unit=o.time_unit,
        interpurchase=False,
    )
    scored = rfm(data, observation_end=observation_end, customer_col=o.customer_col)
    out = scored.select(o.customer_col, "r_score", "f_score", "m_score", "rfm", "segment")
    report, clv = _try_clv(transactions, observation_end, o)
    out = out.join(clv, on=o.customer_col, how="left")
    beat = cadence(transactions, **names, observation_end=observation_end)
    beat = beat.select(o.customer_col, "next_expected_order", "expected_gap", "overdue_ratio")
    return report, out.join(beat, on=o.customer_col, how="left")


def _repeaters(transactions: pl.DataFrame | pl.LazyFrame, o: ClvOptions) -> int:
    day = pl.col(o.datetime_col).dt.date()
    per = transactions.lazy().group_by(o.customer_col).agg(day.n_unique().alias("days"))
    return int(per.filter(pl.col("days") > 1).select(pl.len()).collect().item())


def _try_clv(
    transactions: pl.DataFrame | pl.LazyFrame, end: date, o: ClvOptions
) -> tuple[dict[str, object] | None, pl.DataFrame]:
    from numpy.linalg import LinAlgError

    cols = ["p_alive", "expected_purchases", "expected_spend", "clv"]
    key = transactions.lazy().collect_schema()[o.customer_col]
    empty = pl.DataFrame(schema={o.customer_col: key, **dict.fromkeys(cols, pl.Float64)})
    if _repeaters(transactions, o) < MIN_REPEAT_CUSTOMERS:
        return None, empty
    try:
        report, scores = clv_report(transactions, observation_end=end, options=o)
    except (ValueError, ArithmeticError, LinAlgError):
        return None, empty
    return report, scores.select(o.customer_col, *cols)
