"""Engagement score: points per action on a scale the merchant sets, over a window, with
thresholds giving a status. It measures attachment, not money owed (not loyalty points)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

import polars as pl

__all__ = ["DEFAULT_SCALE", "DEFAULT_STATUSES", "engagement", "status_for"]

# Event types as the API and fidele record them (``fidele.events.domain.EVENT_TYPES``).
DEFAULT_SCALE: dict[str, int] = {
    "order.placed": 5,
    "newsletter_subscribed": 10,
    "review_posted": 8,
    "survey_answered": 4,
    "social_share": 3,
    "wishlist_added": 1,
}
# (minimum score, status), ascending.
DEFAULT_STATUSES: tuple[tuple[int, str], ...] = ((0, "casual"), (20, "engaged"), (50, "fan"))


def status_for(score: int, statuses: Sequence[tuple[int, str]] = DEFAULT_STATUSES) -> str:
    """The status of the highest threshold at or below ``score``."""
    chosen = statuses[0][1]
    for threshold, name in sorted(statuses):
        if score >= threshold:
            chosen = name
    return chosen


def engagement(
    events: pl.DataFrame | pl.LazyFrame,
    *,
    as_of: datetime | date,
    window_days: int = 180,
    scale: Mapping[str, int] = DEFAULT_SCALE,
    statuses: Sequence[tuple[int, str]] = DEFAULT_STATUSES,
    customer_col: str = "customer_id",
    type_col: str = "type",
    datetime_col: str = "occurred_at",
) -> pl.DataFrame:
    """Score each customer's actions in ``(as_of - window_days, as_of]``.

    Returns
    -------
    polars.DataFrame
        ``customer_col``, ``engagement_score`` (Int64, sum of the scale's points; types not in
        the scale count 0), ``actions`` (events counted) and ``engagement_status``.
    """
    end = as_of if isinstance(as_of, datetime) else datetime.combine(as_of, datetime.max.time())
    end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
    start = end - timedelta(days=window_days)
    points = pl.col(type_col).replace_strict(dict(scale), default=0, return_dtype=pl.Int64)
    when = pl.col(datetime_col)
    lf = events.lazy()
    if lf.collect_schema()[datetime_col].time_zone is None:  # type: ignore[union-attr]
        when = when.dt.replace_time_zone("UTC")
    scored = (
        lf.filter((when > start) & (when <= end))
        .group_by(customer_col)
        .agg(points.sum().alias("engagement_score"), pl.len().cast(pl.Int64).alias("actions"))
        .collect()
    )
    return scored.with_columns(_status_expr(statuses)).sort(customer_col)


def _status_expr(statuses: Sequence[tuple[int, str]]) -> pl.Expr:
    ordered = sorted(statuses)
    expr: pl.Expr = pl.lit(ordered[0][1])
    for threshold, name in ordered[1:]:
        expr = pl.when(pl.col("engagement_score") >= threshold).then(pl.lit(name)).otherwise(expr)
    return expr.alias("engagement_status")
