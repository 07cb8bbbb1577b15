"""RFM: quantile scores 1-5 and named segments defined as data the merchant can override, and
the same machinery for segments on criteria of the merchant's choosing.

Ties: a value's score is set by the **lowest** rank among equal values
(``score = 1 + floor(bins * (min_rank - 1) / n)``), so equal values always share a score, the
result does not depend on row order, and a large tie group falls into the lowest quantile it
reaches. Recency is scored so that the most recent buyers get 5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from fidele.analytics.summary import as_day

__all__ = [
    "DEFAULT_SEGMENTS",
    "Segment",
    "assign_segments",
    "quantile_scores",
    "rfm",
    "segment_summary",
]


@dataclass(frozen=True)
class Segment:
    """A named segment: inclusive score ranges per score column; the first match wins."""

    name: str
    ranges: Mapping[str, tuple[int, int]] = field(default_factory=dict)


def _seg(name: str, r: tuple[int, int], f: tuple[int, int], m: tuple[int, int] = (1, 5)):
    return Segment(name, {"r_score": r, "f_score": f, "m_score": m})


# The classic eleven, ordered so that they partition every (R, F, M) combination.
DEFAULT_SEGMENTS: tuple[Segment, ...] = (
    _seg("Champions", (4, 5), (4, 5), (4, 5)),
    _seg("Loyal", (3, 5), (4, 5)),
    _seg("Can't lose them", (1, 1), (4, 5), (4, 5)),
    _seg("At risk", (1, 2), (3, 5)),
    _seg("Potential loyalists", (4, 5), (2, 3)),
    _seg("New customers", (5, 5), (1, 1)),
    _seg("Promising", (4, 4), (1, 1)),
    _seg("Need attention", (3, 3), (2, 3)),
    _seg("About to sleep", (3, 3), (1, 1)),
    _seg("Hibernating", (2, 2), (1, 2)),
    _seg("Lost", (1, 1), (1, 2)),
)


def quantile_scores(
    frame: pl.DataFrame, columns: Mapping[str, tuple[str, bool]], *, bins: int = 5
) -> pl.DataFrame:
    """Add a 1..``bins`` quantile score per criterion.

    Parameters
    ----------
    columns
        ``{score column: (value column, higher_is_better)}``.

    Returns
    -------
    polars.DataFrame
        ``frame`` with one Int8 column per score (ties: see the module docstring).
    """
    n = max(frame.height, 1)
    exprs = []
    for score, (value, higher_is_better) in columns.items():
        rank = pl.col(value).rank("min", descending=not higher_is_better)
        exprs.append((1 + (bins * (rank - 1)) // n).cast(pl.Int8).alias(score))
    return frame.with_columns(exprs)


def assign_segments(
    frame: pl.DataFrame,
    segments: Sequence[Segment] = DEFAULT_SEGMENTS,
    *,
    column: str = "segment",
    default: str = "Other",
) -> pl.DataFrame:
    """Name each row by the first segment whose ranges all contain its scores."""
    expr: pl.Expr = pl.lit(default)
    for seg in reversed(segments):
        cond = pl.lit(True)
        for col, (lo, hi) in seg.ranges.items():
            cond = cond & pl.col(col).is_between(lo, hi)
        expr = pl.when(cond).then(pl.lit(seg.name)).otherwise(expr)
    return frame.with_columns(expr.alias(column))


def rfm(
    summary: pl.DataFrame,
    *,
    observation_end: date | datetime,
    customer_col: str = "customer_id",
    last_col: str = "last_purchase",
    frequency_col: str = "n_orders",
    monetary_col: str = "total_spend",
    segments: Sequence[Segment] = DEFAULT_SEGMENTS,
    bins: int = 5,
) -> pl.DataFrame:
    """RFM scores and segments from a per-customer summary (see :func:`summary`).

    Returns
    -------
    polars.DataFrame
        ``customer_col``, ``recency_days`` (days from the last purchase to
        ``observation_end``), ``frequency``, ``monetary``, ``r_score``, ``f_score``,
        ``m_score`` (1-5), ``rfm`` (e.g. ``"545"``) and ``segment``.
    """
    end = as_day(observation_end)
    base = summary.select(
        customer_col,
        (pl.lit(end) - pl.col(last_col)).dt.total_days().alias("recency_days"),
        pl.col(frequency_col).alias("frequency"),
        pl.col(monetary_col).alias("monetary"),
    )
    scored = quantile_scores(
        base,
        {
            "r_score": ("recency_days", False),
            "f_score": ("frequency", True),
            "m_score": ("monetary", True),
        },
        bins=bins,
    )
    code = pl.concat_str([pl.col(c).cast(pl.Utf8) for c in ("r_score", "f_score", "m_score")])
    return assign_segments(scored.with_columns(code.alias("rfm")), segments)


def segment_summary(
    scored: pl.DataFrame, *, segment_col: str = "segment", monetary_col: str = "monetary"
) -> pl.DataFrame:
    """Customers and revenue per segment.

    Returns
    -------
    polars.DataFrame
        ``segment_col``, ``customers``, ``share`` (of customers), ``revenue`` and
        ``revenue_share``, largest segments first.
    """
    total = scored.height or 1
    revenue = scored.get_column(monetary_col).sum() or 1
    return (
        scored.group_by(segment_col)
        .agg(pl.len().alias("customers"), pl.col(monetary_col).sum().alias("revenue"))
        .with_columns(
            (pl.col("customers") / total).alias("share"),
            (pl.col("revenue") / revenue).alias("revenue_share"),
        )
        .select(segment_col, "customers", "share", "revenue", "revenue_share")
        .sort(["customers", segment_col], descending=[True, False])
    )
