"""What each order of a batch earns in each tier it could be placed in: ``earning.facts_of`` and
``domain.order_points`` over whole columns (polars), for the batch replay. No I/O.

Multipliers compound as in :func:`domain.order_points`. A multiplier that does not apply to an
order (outside its dates, another channel) still multiplies the order's lines by 10_000, which
the next power of 10_000 in the denominator cancels exactly, so every order goes through the
same steps and the floors are the same. ``tests/loyalty/test_bulk_earning.py`` checks the result
against ``domain.order_points`` on random orders and scales."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import polars as pl

from fidele.kit.money import CURRENCIES
from fidele.loyalty import domain
from fidele.loyalty.bulk_store import EPOCH, to_us
from fidele.loyalty.config import FirstOrder, Multiplier, Scale, Tier
from fidele.loyalty.earning import facts_of

LIMIT = 2**62  # int64 with room (discount shares)
WIDE = 2**125  # int128 with room (compounded weights); beyond it use the domain path


@dataclass(frozen=True)
class Earnings:
    """Per tier variant (tier index; one variant when there are no tiers): each order's points
    and the JSON list of its awards without the closing bracket; ``bonus_*`` are what the
    first-order rules add (points, and the awards to append)."""

    points: list[list[int]]
    detail: list[list[str]]
    bonus_points: list[int]
    bonus_detail: list[str]


def _us(at: Any) -> int | None:
    return None if at is None else to_us(at)


def _live(rule: Any) -> pl.Expr:
    start, end = _us(rule.starts_at), _us(rule.ends_at)
    expr = pl.lit(True)
    if start is not None:
        expr &= pl.col("placed_us") >= start
    if end is not None:
        expr &= pl.col("placed_us") < end
    return expr


def _award(name: str, points: pl.Expr) -> pl.Expr:
    return pl.concat_str(
        [pl.lit(f'{{"rule": {json.dumps(name)}, "points": '), points.cast(pl.String), pl.lit("}")]
    )


def _net_lines(orders: pl.DataFrame, lines: pl.DataFrame) -> pl.DataFrame | None:
    """Lines after their share of the order's discount (largest remainder, ties to the first
    line, as ``kit.money.allocate``), gift cards left out."""
    lines = lines.with_columns(amount=pl.col("quantity") * pl.col("unit_price"))
    if lines.height and (lines["amount"].min() < 0 or orders["discounts"].min() < 0):
        return None
    lines = lines.join(orders.select("idx", "discounts"), on="idx", how="left").with_columns(
        wsum=pl.col("amount").sum().over("idx")
    )
    lines = lines.with_columns(d=pl.min_horizontal("discounts", "wsum"))
    if lines.height and lines["d"].max() > 0:
        if lines["d"].max() * lines["amount"].max() >= LIMIT:
            return None
        raw = pl.col("d") * pl.col("amount")
        lines = (
            lines.with_columns(
                part=pl.when(pl.col("wsum") > 0).then(raw // pl.col("wsum")).otherwise(0),
                rem=pl.when(pl.col("wsum") > 0).then(raw % pl.col("wsum")).otherwise(0),
            )
            .sort(["idx", "rem", "n"], descending=[False, True, False])
            .with_columns(
                rank=pl.int_range(pl.len()).over("idx"),
                left=pl.col("d") - pl.col("part").sum().over("idx"),
            )
            .with_columns(
                amount=pl.col("amount")
                - pl.col("part")
                - (pl.col("rank") < pl.col("left")).cast(pl.Int64)
            )
            .sort(["idx", "n"])
        )
    return lines.filter(pl.col("type") != "gift_card").select(
        "idx", "amount", "category", "product_id"
    )


def _eligible(scale: Scale, orders: pl.DataFrame, net: pl.DataFrame) -> pl.DataFrame:
    """``domain.eligible_lines``: shipping and tax become a line of no category."""
    base = scale.settings.base
    if base == "net":
        return net
    sums = orders.join(net.group_by("idx").agg(s=pl.col("amount").sum()), on="idx", how="left")
    extra = pl.col("total") - pl.col("s").fill_null(0) if base == "total" else pl.col("tax")
    rows = sums.select("idx", amount=extra).filter(pl.col("amount") > 0)
    rows = rows.with_columns(category=pl.lit(None, pl.String), product_id=pl.lit(None, pl.String))
    return pl.concat([net, rows]).sort("idx", maintain_order=True)


def _factor(rule: Multiplier) -> pl.Expr:
    applies = pl.col(f"applies_{rule.id}")
    if rule.categories or rule.products:
        applies &= pl.col("category").is_in(rule.categories) | pl.col("product_id").is_in(
            rule.products
        )
    return pl.when(applies).then(rule.multiplier_bp).otherwise(10_000)


def earnings(scale: Scale, orders: pl.DataFrame, lines: pl.DataFrame) -> Earnings | None:
    """``orders``: ``idx`` (0..n-1), ``placed_us`` (UTC microseconds), ``currency``, ``total``,
    ``discounts``, ``shipping``, ``tax``, ``channel``; ``lines``: ``idx``, ``n`` (rank in the
    order), ``quantity``, ``unit_price``, ``category``, ``product_id``, ``type``. None when the
    batch is outside what int64 columns compute exactly."""
    ppu = scale.settings.points_per_unit
    net = _net_lines(orders, lines)
    if net is None:
        return None
    multipliers = [r for r in scale.rules if isinstance(r, Multiplier)]
    orders = orders.with_columns(
        denom=pl.col("currency").replace_strict(
            {c: 10**d for c, d in CURRENCIES.items()}, return_dtype=pl.Int64
        ),
        **{
            f"applies_{r.id}": _live(r)
            & (pl.col("channel").is_in(r.channels).fill_null(False) if r.channels else True)
            for r in multipliers
        },
    )
    frame = _eligible(scale, orders, net).join(
        orders.select("idx", *[f"applies_{r.id}" for r in multipliers]), on="idx", how="left"
    )
    s0 = frame.group_by("idx").agg(pl.col("amount").sum())
    top = int(s0["amount"].max() or 0) * max(ppu, 1)
    variants = scale.tiers.levels or [None]
    points, detail = [], []
    for tier in variants:
        done = _variant(scale, orders, frame, multipliers, tier, top)
        if done is None:
            return None
        points.append(done[0])
        detail.append(done[1])
    bonus = orders.sort("idx").select(
        "idx",  # a column of the frame's height: constant expressions broadcast to it
        pts=pl.sum_horizontal(
            pl.lit(0), *[pl.when(_live(r)).then(r.points).otherwise(0) for r in _firsts(scale)]
        ),
        detail=pl.concat_str(
            [pl.lit("")]
            + [
                pl.when(_live(r)).then(pl.lit(", ") + _award(r.id, pl.lit(r.points)))
                for r in _firsts(scale)
            ],
            ignore_nulls=True,
        ),
    )
    return Earnings(points, detail, bonus["pts"].to_list(), bonus["detail"].to_list())


def _floor(expr: pl.Expr, k: int) -> pl.Expr:
    """``expr // 10_000**k`` one step at a time (nested floors of positive divisors are the
    floor of the product), so no divisor overflows."""
    for _ in range(k):
        expr = expr // 10_000
    return expr.cast(pl.Int64)


def add_months(us: pl.Expr, months: int) -> pl.Expr:
    """:func:`domain.add_months` on UTC microseconds (polars clips to the month's last day
    the same way)."""
    return us.cast(pl.Datetime("us")).dt.offset_by(f"{months}mo").dt.epoch("us")


def _firsts(scale: Scale) -> list[FirstOrder]:
    return [r for r in scale.rules if isinstance(r, FirstOrder)]


def _variant(
    scale: Scale,
    orders: pl.DataFrame,
    frame: pl.DataFrame,
    multipliers: list[Multiplier],
    tier: Tier | None,
    top: int,
) -> tuple[list[int], list[str]] | None:
    """Points and awards of every order placed in ``tier``."""
    name = tier.name if tier else None
    sources: list[tuple[str, pl.Expr, pl.Expr, int]] = [
        (r.id, _factor(r), pl.col(f"applies_{r.id}"), r.multiplier_bp)
        for r in multipliers
        if not r.tiers or name in r.tiers
    ]
    if tier is not None and tier.multiplier_bp != 10_000:
        bp = tier.multiplier_bp
        sources.append((f"tier:{tier.name}", pl.lit(bp), pl.lit(True), bp))
    bound = top
    for *_, bp in sources:
        bound *= max(bp, 10_000)
    if bound >= WIDE:
        return None
    ppu = scale.settings.points_per_unit
    weights = frame.select(
        "idx",
        w0=pl.col("amount").cast(pl.Int128),
        **{f"f{k}": factor for k, (_, factor, _, _) in enumerate(sources, start=1)},
    )
    for k in range(1, len(sources) + 1):
        weights = weights.with_columns((pl.col(f"w{k - 1}") * pl.col(f"f{k}")).alias(f"w{k}"))
    sums = weights.group_by("idx").agg(pl.col(f"w{k}").sum() for k in range(len(sources) + 1))
    out = orders.join(sums, on="idx", how="left").sort("idx")
    cur = [
        _floor(pl.col(f"w{k}").fill_null(0) * ppu // pl.col("denom"), k)
        for k in range(len(sources) + 1)
    ]
    pieces = [_award("base", cur[0])] + [
        pl.when(applies).then(_award(rule, cur[k] - cur[k - 1]))
        for k, (rule, _, applies, _) in enumerate(sources, start=1)
    ]
    res = out.select(
        "idx",
        pts=cur[-1],
        detail=pl.lit("[") + pl.concat_str(pieces, separator=", ", ignore_nulls=True),
    )
    return res["pts"].to_list(), res["detail"].to_list()


def earnings_by_domain(scale: Scale, orders: pl.DataFrame, lines: pl.DataFrame) -> Earnings:
    """The same table, order by order through :func:`domain.order_points` (the reference, and
    the path for batches :func:`earnings` refuses)."""
    by_order: dict[int, list[dict[str, Any]]] = {}
    for line in lines.sort(["idx", "n"]).iter_rows(named=True):
        by_order.setdefault(line["idx"], []).append(line)
    variants = scale.tiers.levels or [None]
    points: list[list[int]] = [[] for _ in variants]
    detail: list[list[str]] = [[] for _ in variants]
    bonus_points, bonus_detail = [], []
    for row in orders.sort("idx").iter_rows(named=True):
        placed_at = EPOCH + timedelta(microseconds=row["placed_us"])
        payload = {
            **row,
            "placed_at": placed_at.isoformat(),
            "lines": [
                {k: ln[k] for k in ("quantity", "unit_price", "category", "product_id", "type")}
                for ln in by_order.get(row["idx"], [])
            ],
        }
        facts = facts_of(payload)
        for t, tier in enumerate(variants):
            awards = domain.order_points(scale, facts, domain.Context(tier=tier)).awards
            points[t].append(sum(p for _, p in awards))
            detail[t].append("[" + ", ".join(_text(r, p) for r, p in awards))
        firsts = [(r.id, r.points) for r in _firsts(scale) if r.live(placed_at)]
        bonus_points.append(sum(p for _, p in firsts))
        bonus_detail.append("".join(", " + _text(r, p) for r, p in firsts))
    return Earnings(points, detail, bonus_points, bonus_detail)


def _text(rule: str, points: int) -> str:
    return f'{{"rule": {json.dumps(rule)}, "points": {points}}}'
