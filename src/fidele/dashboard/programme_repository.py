"""The SQL of the programme pages (loyalty, promotions, shop settings): read-only summaries
the domains' own repositories do not offer. Every query is scoped to one merchant or one
programme."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from fidele.events.models import ConnectorSecret, Event
from fidele.loyalty.models import Counter
from fidele.outbox.models import OutboxMessage
from fidele.promotions.models import Coupon, GiftCard
from fidele.tenancy.models import Merchant


class ProgrammePages:
    def __init__(self, session: Any) -> None:
        self.session = session

    # --- loyalty ------------------------------------------------------------------------

    def counters(self, programme_id: int, keys: Sequence[str]) -> dict[str, int]:
        """Budget counters by key (absent: nothing spent yet)."""
        if not keys:
            return {}
        stmt = select(Counter.key, Counter.value).where(
            Counter.programme_id == programme_id, Counter.key.in_(list(keys))
        )
        return {k: int(v) for k, v in self.session.execute(stmt).all()}

    def owner_of(self, programme_id: int) -> int | None:
        """The programme's owner: the merchant it was created with (its first)."""
        stmt = select(func.min(Merchant.id)).where(Merchant.programme_id == programme_id)
        return self.session.execute(stmt).scalar_one_or_none()

    def merchant_names(self, programme_id: int) -> dict[int, str]:
        stmt = select(Merchant.id, Merchant.name).where(Merchant.programme_id == programme_id)
        return {int(i): str(n) for i, n in self.session.execute(stmt).all()}

    # --- promotions ---------------------------------------------------------------------

    def coupons(self, merchant_id: int, *, limit: int) -> Sequence[Coupon]:
        """The merchant's own codes (not batches, personal or automatic ones), newest first."""
        stmt = (
            select(Coupon)
            .where(
                Coupon.merchant_id == merchant_id,
                Coupon.batch.is_(None),
                Coupon.customer_id.is_(None),
                Coupon.automatic.is_(False),
            )
            .order_by(Coupon.id.desc())
            .limit(limit)
        )
        return self.session.execute(stmt).scalars().all()

    def automatic(self, merchant_id: int) -> Sequence[Coupon]:
        stmt = (
            select(Coupon)
            .where(Coupon.merchant_id == merchant_id, Coupon.automatic.is_(True))
            .order_by(Coupon.id.desc())
        )
        return self.session.execute(stmt).scalars().all()

    def batches(self, merchant_id: int, *, limit: int) -> list[dict[str, Any]]:
        """Batches of generated codes: size, codes used at least once, total uses."""
        stmt = (
            select(
                Coupon.batch,
                func.min(Coupon.name),
                func.min(Coupon.kind),
                func.min(Coupon.value),
                func.count(),
                func.coalesce(func.sum(case((Coupon.used_count > 0, 1), else_=0)), 0),
                func.coalesce(func.sum(Coupon.used_count), 0),
                func.min(Coupon.created_at),
                func.max(Coupon.id),
            )
            .where(Coupon.merchant_id == merchant_id, Coupon.batch.is_not(None))
            .group_by(Coupon.batch)
            .order_by(func.max(Coupon.id).desc())
            .limit(limit)
        )
        keys = ("batch", "name", "kind", "value", "count", "codes_used", "uses", "created_at")
        return [dict(zip(keys, row[:8], strict=True)) for row in self.session.execute(stmt)]

    def batch(self, merchant_id: int, batch: str) -> Sequence[Coupon]:
        stmt = (
            select(Coupon)
            .where(Coupon.merchant_id == merchant_id, Coupon.batch == batch)
            .order_by(Coupon.id)
        )
        return self.session.execute(stmt).scalars().all()

    def personal_usage(self, merchant_id: int) -> list[dict[str, Any]]:
        """Coupons issued to one customer (next-order, referral, dashboard...), per origin."""
        stmt = (
            select(
                Coupon.origin,
                func.count(),
                func.coalesce(func.sum(Coupon.used_count), 0),
            )
            .where(Coupon.merchant_id == merchant_id, Coupon.customer_id.is_not(None))
            .group_by(Coupon.origin)
            .order_by(Coupon.origin)
        )
        return [
            {"origin": o, "issued": int(n), "used": int(u)}
            for o, n, u in self.session.execute(stmt)
        ]

    def gift_cards(self, merchant_id: int, *, limit: int) -> Sequence[GiftCard]:
        stmt = (
            select(GiftCard)
            .where(GiftCard.merchant_id == merchant_id)
            .order_by(GiftCard.id.desc())
            .limit(limit)
        )
        return self.session.execute(stmt).scalars().all()

    # --- shop settings ------------------------------------------------------------------

    def deliveries(self, merchant_id: int, *, limit: int) -> Sequence[OutboxMessage]:
        stmt = (
            select(OutboxMessage)
            .where(OutboxMessage.merchant_id == merchant_id, OutboxMessage.channel == "webhook")
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        )
        return self.session.execute(stmt).scalars().all()

    def connector_secrets(self, merchant_id: int) -> dict[str, datetime]:
        """When each platform's secret was last set (its value is never read here)."""
        stmt = select(ConnectorSecret.platform, ConnectorSecret.updated_at).where(
            ConnectorSecret.merchant_id == merchant_id
        )
        return {str(p): at for p, at in self.session.execute(stmt).all()}

    def last_received(
        self, merchant_id: int, sources: Sequence[str], *, window: int
    ) -> dict[str, datetime]:
        """The last event each connector brought in (``source`` of the event log), among the
        merchant's latest ``window`` events: the log has no index on its source, and a shop
        whose connector works has it among its latest events."""
        recent = (
            select(Event.source, Event.received_at)
            # ``+ 0``: walk the primary key backwards and stop after ``window`` rows, rather
            # than read the merchant's whole log through its (merchant, type) index and sort it
            .where(Event.merchant_id + 0 == merchant_id)
            .order_by(Event.id.desc())
            .limit(window)
            .subquery()
        )
        stmt = (
            select(recent.c.source, func.max(recent.c.received_at))
            .where(recent.c.source.in_(list(sources)))
            .group_by(recent.c.source)
        )
        return {str(s): at for s, at in self.session.execute(stmt).all() if at is not None}
