"""Recommendations: "customers who bought this also bought", from order lines.

Co-occurrence is counted per **customer** (everything a customer bought, over all their
standing orders: cancelled orders and fully refunded lines are left out), which is what "customers
who bought this also bought" means and what a small shop needs (most customers buy once, so
for them it is the order's basket anyway). For products A and B, over N customers who bought
something:

- support(A, B) = customers who bought both; pairs below ``min_support`` (default 2) are
  dropped, so one customer's basket never becomes a recommendation on its own;
- confidence(A -> B) = support / n_A;
- lift(A, B) = support * N / (n_A * n_B): how much more often B goes with A than chance.

Each product keeps its ``top`` recommendations ranked by lift, then support. The
``messaging.recommendations`` job recomputes a merchant's table when its orders changed; at send
time :func:`for_customer` reads it (one indexed query), merges the recommendations of what the
customer bought, drops what they already bought, and tops up with the merchant's most bought
products (``product_id`` ``"*"``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.messaging.context import provider
from fidele.messaging.measure_repository import RecommendationRepository

POPULAR = "*"
MIN_SUPPORT = 2
TOP = 20
# A customer with more distinct products than this (a reseller's account) would add
# n^2 pairs of little meaning: such baskets are left out of the pair counts.
MAX_BASKET = 200
CONTEXT_LIMIT = 4


def co_occurrence(
    baskets: pl.DataFrame, *, min_support: int = MIN_SUPPORT, top: int = TOP
) -> pl.DataFrame:
    """Pairs of products bought by the same customers.

    Parameters
    ----------
    baskets : columns ``customer_id``, ``product_id`` (duplicates allowed).

    Returns
    -------
    Columns ``product_id``, ``rank`` (1 = best), ``recommended_product_id``, ``support``,
    ``lift``, ``confidence``: for each product its ``top`` partners with support >=
    ``min_support``, by lift then support (then product id, for a stable order).
    """
    distinct = baskets.select("customer_id", "product_id").unique()
    sizes = distinct.group_by("customer_id").len("size")
    distinct = distinct.join(sizes, on="customer_id").filter(pl.col("size") <= MAX_BASKET)
    n_customers = distinct["customer_id"].n_unique()
    counts = distinct.group_by("product_id").len("n")
    pairs = (
        distinct.select("customer_id", "product_id")
        .join(
            distinct.select("customer_id", pl.col("product_id").alias("recommended_product_id")),
            on="customer_id",
        )
        .filter(pl.col("product_id") != pl.col("recommended_product_id"))
        .group_by("product_id", "recommended_product_id")
        .len("support")
        .filter(pl.col("support") >= min_support)
    )
    scored = (
        pairs.join(counts, on="product_id")
        .join(
            counts.rename({"product_id": "recommended_product_id", "n": "n_b"}),
            on="recommended_product_id",
        )
        .with_columns(
            lift=pl.col("support").cast(pl.Float64) * n_customers / (pl.col("n") * pl.col("n_b")),
            confidence=pl.col("support").cast(pl.Float64) / pl.col("n"),
        )
        .sort(
            ["product_id", "lift", "support", "recommended_product_id"],
            descending=[False, True, True, False],
        )
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("product_id"))
        .filter(pl.col("rank") <= top)
    )
    return scored.select(
        "product_id", "rank", "recommended_product_id", "support", "lift", "confidence"
    )


def popular(baskets: pl.DataFrame, *, top: int = TOP) -> pl.DataFrame:
    """The most bought products (by customers), as rows of ``product_id`` ``"*"``."""
    distinct = baskets.select("customer_id", "product_id").unique()
    n_customers = max(distinct["customer_id"].n_unique(), 1)
    return (
        distinct.group_by("product_id")
        .len("support")
        .sort(["support", "product_id"], descending=[True, False])
        .head(top)
        .select(
            pl.lit(POPULAR).alias("product_id"),
            pl.int_range(1, pl.len() + 1).alias("rank"),
            pl.col("product_id").alias("recommended_product_id"),
            "support",
            pl.lit(1.0).alias("lift"),
            (pl.col("support").cast(pl.Float64) / n_customers).alias("confidence"),
        )
    )


def refresh(session: Session, merchant_id: int, now: datetime) -> int:
    """Recompute the merchant's recommendations; returns how many rows it holds now."""
    repo = RecommendationRepository(session)
    rows = repo.baskets(merchant_id)
    baskets = pl.DataFrame(
        rows, schema={"customer_id": pl.Int64, "product_id": pl.Utf8}, orient="row"
    )
    table = pl.concat([co_occurrence(baskets), popular(baskets)], how="vertical_relaxed")
    names = repo.product_names(merchant_id)
    records = [
        {
            **r,
            "merchant_id": merchant_id,
            "name": names.get(r["recommended_product_id"], (None, None))[0],
            "category": names.get(r["recommended_product_id"], (None, None))[1],
            "computed_at": now,
        }
        for r in table.to_dicts()
    ]
    repo.replace(merchant_id, records)
    return len(records)


def refresh_due(session: Session, now: datetime) -> int:
    """Every merchant whose orders changed since its last computation (or never computed)."""
    repo = RecommendationRepository(session)
    done = 0
    for merchant_id in repo.merchant_ids():
        last = repo.computed_at(merchant_id)
        if last is None and not repo.has_orders(merchant_id):
            continue
        if last is not None and not repo.orders_changed_since(merchant_id, last):
            continue
        refresh(session, merchant_id, now)
        done += 1
    return done


@dataclass(frozen=True)
class Recommendation:
    product_id: str
    name: str | None
    category: str | None
    reason: str  # "also_bought" or "popular"
    lift: float
    support: int

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def for_customer(
    session: Session, merchant_id: int, customer_id: int, limit: int = 4
) -> list[Recommendation]:
    """What to suggest to this customer: partners of what they bought, best lift first, never
    a product they already bought; topped up with the merchant's most bought products."""
    repo = RecommendationRepository(session)
    bought = repo.bought_by(merchant_id, customer_id)
    best: dict[str, Recommendation] = {}
    fallback: list[Recommendation] = []
    for row in repo.for_products(merchant_id, [*sorted(bought), POPULAR]):
        if row.recommended_product_id in bought:
            continue
        reason = "popular" if row.product_id == POPULAR else "also_bought"
        rec = Recommendation(
            row.recommended_product_id, row.name, row.category, reason, row.lift, row.support
        )
        if reason == "popular":
            fallback.append(rec)
            continue
        seen = best.get(rec.product_id)
        if seen is None or (rec.lift, rec.support) > (seen.lift, seen.support):
            best[rec.product_id] = rec
    ranked = sorted(best.values(), key=lambda r: (-r.lift, -r.support, r.product_id))
    for rec in fallback:  # already in popularity order
        if rec.product_id not in best:
            ranked.append(rec)
    return ranked[:limit]


@provider("recommendations")
def _context(session: Session, customer: Customer, now: datetime) -> list[dict[str, Any]]:
    """Template name ``recommendations``: up to 4 products for this customer, each with
    ``product_id``, ``name``, ``category``, ``reason`` ("also_bought" or "popular"), ``lift``
    and ``support``."""
    found = for_customer(session, customer.merchant_id, customer.id, CONTEXT_LIMIT)
    return [r.as_dict() for r in found]
