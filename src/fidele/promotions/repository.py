"""All SQL of the promotions domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import String, and_, bindparam, cast, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fidele.kit.repository import RepositoryBase, insert_or_twin
from fidele.ledger.models import Account
from fidele.orders.models import Order
from fidele.promotions.models import (
    CheckoutSession,
    Coupon,
    CouponCustomerUse,
    CouponHold,
    GiftCard,
    PendingReward,
    PromotionSettings,
    RateCounter,
    Redemption,
    Referral,
    ReferralCode,
    ReferralInvitation,
    ReferralRefusal,
)


def _rowcount(result: object) -> int:
    return int(result.rowcount)  # type: ignore[attr-defined]


class SettingsRepository(RepositoryBase[PromotionSettings]):
    model = PromotionSettings


# Built once (checkout evaluate runs them on every request; see customers.repository).
_FAILURES = (
    select(func.coalesce(func.max(RateCounter.count), 0))
    .where(
        RateCounter.key.in_(bindparam("keys", expanding=True)),
        RateCounter.window_start == bindparam("window"),
    )
    .scalar_subquery()
)
_FAILURES_ONLY = select(_FAILURES)


class CouponRepository(RepositoryBase[Coupon]):
    model = Coupon

    def by_codes(self, merchant_id: int, codes: Sequence[str]) -> dict[str, Coupon]:
        """The coupons of ``codes`` (normalised), by code."""
        if not codes:
            return {}
        rows = self.session.scalars(
            select(Coupon).where(Coupon.merchant_id == merchant_id, Coupon.code.in_(codes))
        )
        return {c.code: c for c in rows if c.code is not None}

    def by_source_ref(self, merchant_id: int, ref: str) -> Coupon | None:
        return self.one_or_none(
            select(Coupon).where(Coupon.merchant_id == merchant_id, Coupon.source_ref == ref)
        )

    def automatic_any_time(self, merchant_id: int) -> Sequence[Coupon]:
        """Active automatic promotions whatever their window (the cache filters by time)."""
        return self.all(
            select(Coupon)
            .where(
                Coupon.merchant_id == merchant_id,
                Coupon.automatic.is_(True),
                Coupon.status == "active",
            )
            .order_by(Coupon.id)
        )

    def listing(self, merchant_id: int, *, after_id: int, limit: int) -> Sequence[Coupon]:
        return self.all(
            select(Coupon)
            .where(Coupon.merchant_id == merchant_id, Coupon.id > after_id)
            .order_by(Coupon.id)
            .limit(limit)
        )

    def take_use(self, coupon_id: int) -> bool:
        """Atomic ``used_count += 1`` refused at the usage limit (row-locked on PostgreSQL)."""
        return self._bump_within_limit(coupon_id, "used_count")

    def hold_use(self, coupon_id: int) -> bool:
        """Atomic ``held_count += 1`` refused when uses and holds reach the usage limit; on
        PostgreSQL it row-locks the coupon until commit, so holds of one coupon queue."""
        return self._bump_within_limit(coupon_id, "held_count")

    def _bump_within_limit(self, coupon_id: int, counter: str) -> bool:
        """``counter += 1`` unless uses and holds together already reach ``usage_limit``."""
        result = self.session.execute(
            update(Coupon)
            .where(
                Coupon.id == coupon_id,
                or_(
                    Coupon.usage_limit.is_(None),
                    Coupon.used_count + Coupon.held_count < Coupon.usage_limit,
                ),
            )
            .values({counter: getattr(Coupon, counter) + 1})
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    def unhold(self, coupon_id: int, *, used: bool) -> None:
        """A hold ends: released, or (``used``) turned into a use in the same UPDATE."""
        values = {"held_count": Coupon.held_count - 1}
        if used:
            values["used_count"] = Coupon.used_count + 1
        self.session.execute(
            update(Coupon)
            .where(Coupon.id == coupon_id)
            .values(values)
            .execution_options(synchronize_session=False)
        )

    def customer_holds(self, coupon_id: int, customer_id: int) -> int:
        stmt = select(func.count()).where(
            CouponHold.coupon_id == coupon_id, CouponHold.customer_id == customer_id
        )
        return int(self.session.execute(stmt).scalar_one())

    def own_hold(self, coupon_id: int, row: CheckoutSession) -> CouponHold | None:
        """A hold of ``coupon_id`` by another open session of the same shopper (its customer,
        or the same customer id as typed for a guest): a newer cart of theirs takes it over."""
        same = (
            CheckoutSession.customer_id == row.customer_id
            if row.customer_id is not None
            else and_(
                CheckoutSession.customer_id.is_(None),
                CheckoutSession.customer_ref == row.customer_ref,
            )
        )
        stmt = (
            select(CouponHold)
            .join(CheckoutSession, CheckoutSession.id == CouponHold.session_id)
            .where(
                CouponHold.coupon_id == coupon_id,
                CheckoutSession.merchant_id == row.merchant_id,
                CheckoutSession.status == "open",
                CheckoutSession.id != row.id,
                same,
            )
            .limit(1)
            .with_for_update(of=CouponHold)
        )
        return self.session.execute(stmt).scalars().first()

    def holds_of(self, session_id: str) -> Sequence[CouponHold]:
        stmt = select(CouponHold).where(CouponHold.session_id == session_id)
        return self.session.execute(stmt).scalars().all()

    def take_customer_use(self, coupon_id: int, customer_id: int, limit: int) -> bool:
        insert_or_twin(
            self.session, CouponCustomerUse(coupon_id=coupon_id, customer_id=customer_id, used=0)
        )
        result = self.session.execute(
            update(CouponCustomerUse)
            .where(
                CouponCustomerUse.coupon_id == coupon_id,
                CouponCustomerUse.customer_id == customer_id,
                CouponCustomerUse.used < limit,
            )
            .values(used=CouponCustomerUse.used + 1)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    def customer_uses(self, coupon_ids: Sequence[int], customer_id: int) -> dict[int, int]:
        if not coupon_ids:
            return {}
        rows = self.session.execute(
            select(CouponCustomerUse.coupon_id, CouponCustomerUse.used).where(
                CouponCustomerUse.coupon_id.in_(coupon_ids),
                CouponCustomerUse.customer_id == customer_id,
            )
        ).all()
        return {c: u for c, u in rows}


class GiftCardRepository(RepositoryBase[GiftCard]):
    model = GiftCard

    def by_hashes(self, merchant_id: int, hashes: Sequence[str]) -> dict[str, GiftCard]:
        if not hashes:
            return {}
        rows = self.all(
            select(GiftCard).where(
                GiftCard.merchant_id == merchant_id, GiftCard.code_hash.in_(hashes)
            )
        )
        return {g.code_hash: g for g in rows}

    def by_source_ref(self, merchant_id: int, ref: str) -> GiftCard | None:
        return self.one_or_none(
            select(GiftCard).where(GiftCard.merchant_id == merchant_id, GiftCard.source_ref == ref)
        )

    def expired_with_money(self, now: datetime, limit: int) -> Sequence[GiftCard]:
        """Cards past their expiry still ``active``, or ``expired`` ones money came back to (a
        refund, a released hold), each row-locked for the caller; rows another process holds
        are skipped (PostgreSQL), so several workers can run the write-off at once."""
        main = (
            select(Account.id)
            .where(
                Account.kind == "gift_card",
                Account.ref == cast(GiftCard.id, String),
                Account.merchant_id == GiftCard.merchant_id,
                Account.unit == GiftCard.currency,
                Account.balance > 0,
            )
            .exists()
        )
        stmt = (
            select(GiftCard)
            .where(
                GiftCard.expires_at <= now,
                or_(GiftCard.status == "active", and_(GiftCard.status == "expired", main)),
            )
            .order_by(GiftCard.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self.all(stmt)


class SessionRepository(RepositoryBase[CheckoutSession]):
    model = CheckoutSession

    def for_merchant(
        self, merchant_id: int, id_: str, *, lock: bool = False
    ) -> CheckoutSession | None:
        stmt = select(CheckoutSession).where(
            CheckoutSession.id == id_, CheckoutSession.merchant_id == merchant_id
        )
        if lock:
            stmt = stmt.with_for_update()
        return self.one_or_none(stmt)

    def by_order_ref(self, merchant_id: int, order_ref: str) -> CheckoutSession | None:
        return self.one_or_none(
            select(CheckoutSession).where(
                CheckoutSession.merchant_id == merchant_id, CheckoutSession.order_ref == order_ref
            )
        )

    def expired_ids(self, now: datetime, limit: int) -> list[str]:
        stmt = (
            select(CheckoutSession.id)
            .where(CheckoutSession.status == "open", CheckoutSession.expires_at <= now)
            .limit(limit)
        )
        return list(self.session.execute(stmt).scalars())

    def locked(self, id_: str) -> CheckoutSession | None:
        return self.one_or_none(
            select(CheckoutSession).where(CheckoutSession.id == id_).with_for_update()
        )

    def redemptions(self, session_id: str) -> Sequence[Redemption]:
        stmt = select(Redemption).where(Redemption.session_id == session_id).order_by(Redemption.id)
        return self.session.execute(stmt).scalars().all()


class OrderFacts:
    """Read-only questions about orders (the orders domain owns the table)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def count_for_customer(self, customer_id: int, *, before_id: int | None = None) -> int:
        stmt = select(func.count()).select_from(Order).where(Order.customer_id == customer_id)
        if before_id is not None:
            stmt = stmt.where(Order.id < before_id)
        return int(self.session.execute(stmt).scalar_one())

    def orders_of(self, customer_id: int) -> Sequence[Order]:
        stmt = select(Order).where(Order.customer_id == customer_id).order_by(Order.id)
        return self.session.execute(stmt).scalars().all()


class PendingRepository(RepositoryBase[PendingReward]):
    model = PendingReward

    def due(self, now: datetime, limit: int) -> Sequence[PendingReward]:
        return self.all(
            select(PendingReward)
            .where(PendingReward.status == "pending", PendingReward.due_at <= now)
            .order_by(PendingReward.id)
            .limit(limit)
        )

    def of_order(self, kind: str, order_id: int) -> PendingReward | None:
        return self.one_or_none(
            select(PendingReward).where(
                PendingReward.kind == kind, PendingReward.order_id == order_id
            )
        )


class ReferralRepository(RepositoryBase[Referral]):
    model = Referral

    def code_of(self, customer_id: int) -> ReferralCode | None:
        return self.session.get(ReferralCode, customer_id)

    def by_code(self, merchant_id: int, code: str) -> ReferralCode | None:
        stmt = select(ReferralCode).where(
            ReferralCode.merchant_id == merchant_id, ReferralCode.code == code
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def of_referee(self, referee_id: int) -> Referral | None:
        return self.one_or_none(select(Referral).where(Referral.referee_id == referee_id))

    def by_order(self, order_id: int) -> Referral | None:
        return self.one_or_none(select(Referral).where(Referral.order_id == order_id))

    def count_since(self, referrer_id: int, since: datetime) -> int:
        stmt = select(func.count()).where(
            Referral.referrer_id == referrer_id, Referral.created_at >= since
        )
        return int(self.session.execute(stmt).scalar_one())

    def stats(self, merchant_id: int, referrer_id: int | None = None) -> dict[str, int]:
        stmt = select(Referral.status, func.count()).where(Referral.merchant_id == merchant_id)
        if referrer_id is not None:
            stmt = stmt.where(Referral.referrer_id == referrer_id)
        out = {str(s): int(n) for s, n in self.session.execute(stmt.group_by(Referral.status))}
        for label, model in (("refused", ReferralRefusal), ("invitations", ReferralInvitation)):
            count = select(func.count()).select_from(model).where(model.merchant_id == merchant_id)
            if referrer_id is not None:
                count = count.where(model.referrer_id == referrer_id)
            out[label] = int(self.session.execute(count).scalar_one())
        return out


class RateRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def bump(self, deltas: dict[str, int], window: datetime) -> dict[str, int]:
        """Add each key's delta (negative to take away) to its counter in ``window``; the
        counts after it, by key. One atomic statement (upsert with RETURNING) taking the rows
        in key order: concurrent callers, in any process, each see counts that include
        everyone counted before them, and two callers never lock in opposite orders."""
        dialect = postgresql if self.session.bind.dialect.name == "postgresql" else sqlite  # type: ignore[union-attr]
        rows = [{"key": k, "window_start": window, "count": deltas[k]} for k in sorted(deltas)]
        stmt = dialect.insert(RateCounter).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["key", "window_start"],
            set_={"count": RateCounter.count + stmt.excluded.count},
        ).returning(RateCounter.key, RateCounter.count)
        return {str(k): int(c) for k, c in self.session.execute(stmt)}

    def most(self, keys: Sequence[str], window: datetime) -> int:
        """The largest count of ``keys`` in ``window`` (0 when none counted yet)."""
        params = {"keys": list(keys), "window": window}
        return int(self.session.execute(_FAILURES_ONLY, params).scalar_one())

    def purge(self, before: datetime) -> int:
        from sqlalchemy import delete

        result = self.session.execute(delete(RateCounter).where(RateCounter.window_start < before))
        return _rowcount(result)


class PrivacyRepository:
    """What the promotions domain holds on one person (GDPR export and erasure)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def coupons_of(self, customer_id: int) -> Sequence[Coupon]:
        stmt = select(Coupon).where(Coupon.customer_id == customer_id).order_by(Coupon.id)
        return self.session.execute(stmt).scalars().all()

    def gift_cards_of(
        self, merchant_id: int, customer_id: int, emails: frozenset[str]
    ) -> Sequence[GiftCard]:
        """Cards the person bought (on their orders) or was sent (to one of their addresses)."""
        bought = select(Order.id).where(Order.customer_id == customer_id)
        stmt = select(GiftCard).where(
            GiftCard.merchant_id == merchant_id,
            or_(
                GiftCard.order_id.in_(bought),
                func.lower(GiftCard.recipient_email).in_(sorted(emails) or [""]),
            ),
        )
        return self.session.execute(stmt.order_by(GiftCard.id)).scalars().all()

    def referrals_of(self, customer_id: int) -> Sequence[Referral]:
        stmt = select(Referral).where(
            or_(Referral.referrer_id == customer_id, Referral.referee_id == customer_id)
        )
        return self.session.execute(stmt.order_by(Referral.id)).scalars().all()

    def invitations_of(
        self, merchant_id: int, customer_id: int, emails: frozenset[str]
    ) -> Sequence[ReferralInvitation]:
        """Invitations the person sent, and those sent to one of their addresses."""
        stmt = select(ReferralInvitation).where(
            ReferralInvitation.merchant_id == merchant_id,
            or_(
                ReferralInvitation.referrer_id == customer_id,
                ReferralInvitation.email_normalized.in_(sorted(emails) or [""]),
            ),
        )
        return self.session.execute(stmt.order_by(ReferralInvitation.id)).scalars().all()

    def checkout_sessions_of(
        self, merchant_id: int, customer_id: int, ref: str
    ) -> Sequence[CheckoutSession]:
        stmt = select(CheckoutSession).where(
            CheckoutSession.merchant_id == merchant_id,
            or_(CheckoutSession.customer_id == customer_id, CheckoutSession.customer_ref == ref),
        )
        return self.session.execute(stmt).scalars().all()
