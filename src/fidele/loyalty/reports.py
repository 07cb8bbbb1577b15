"""What the programme costs: coalition settlement and outstanding liability."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.loyalty import domain, members
from fidele.loyalty.repository import LoyaltyRepository


def settlement(
    session: Session, programme_id: int, start: datetime, end: datetime
) -> dict[str, Any]:
    """Who owes whom for ``[start, end)``.

    Each point redeemed (or burned) at merchant B that was issued by merchant A is a debt of A
    to B at the programme's point value: A is charged for the points it issued, B credited for
    the points redeemed at it. Amounts are computed per (A, B) pair and netted per merchant,
    so the lines sum to zero exactly. ``issued`` and ``redeemed`` (all points, in the ledger)
    are shown for information."""
    value = members.scale_at(session, programme_id).settings
    repo = LoyaltyRepository(session)
    net: dict[int, int] = defaultdict(int)
    for issuer, redeemer, pts in repo.cross_merchant_use(programme_id, start, end):
        if issuer == redeemer:
            continue
        amount = domain.money_value(pts, value.point_value)
        net[issuer] -= amount
        net[redeemer] += amount
    flows: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for merchant, kind, total in repo.merchant_flows(programme_id, start, end):
        flows[merchant][kind] += total
    lines = [
        {
            "merchant_id": m,
            "issued": -flows[m]["issued"],
            "redeemed": flows[m]["redeemed"],
            "net": net.get(m, 0),
        }
        for m in sorted(set(flows) | set(net))
    ]
    return {
        "currency": value.currency,
        "point_value": value.point_value,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "lines": lines,
        "total": sum(line["net"] for line in lines),
    }


def liability(session: Session, programme_id: int, now: datetime) -> dict[str, Any]:
    """Outstanding points (available and pending) and their money value, by age of the lot
    and by issuing merchant."""
    s = members.scale_at(session, programme_id).settings
    by_age: dict[str, int] = defaultdict(int)
    by_merchant: dict[int, int] = defaultdict(int)
    starts = domain.age_bucket_starts(now)
    for merchant_id, bucket, points in LoyaltyRepository(session).live_points(
        programme_id, starts, domain.OLDEST_BUCKET
    ):
        by_age[bucket] += points
        by_merchant[merchant_id] += points
    total = sum(by_age.values())
    return {
        "currency": s.currency,
        "points": total,
        "value": domain.money_value(total, s.point_value),
        "by_age": [
            {"bucket": b, "points": p, "value": domain.money_value(p, s.point_value)}
            for b, p in sorted(by_age.items())
        ],
        "by_merchant": [
            {"merchant_id": m, "points": p, "value": domain.money_value(p, s.point_value)}
            for m, p in sorted(by_merchant.items())
        ],
    }
