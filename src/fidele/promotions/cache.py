"""Per-process cache of what every checkout evaluate reads first: the merchant's promotion
settings and its active automatic promotions.

Freshness, which callers may rely on:
- a change made through this process (API, CLI, job) empties the cache when it is flushed and
  again when its transaction commits or rolls back, so the next evaluate reads the database;
  a reader that started before the change never stores what it read (generation check), and a
  session that wrote promotion data bypasses the cache until its transaction ends;
- a change made by another process (``fidele serve --workers 2``, a CLI run) is seen within
  ``TTL_SECONDS`` (2 s).
What is cached does not depend on the time: promotion windows (``starts_at``/``ends_at``) are
applied at each evaluate with its own ``now``. Usage counters are not cached (automatic
promotions are not limited by them; typed codes are always read). The mechanism is
``fidele.kit.cache.ProcessCache`` (per bind, so two databases never share one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from fidele.kit.cache import ProcessCache
from fidele.promotions import coupons, domain
from fidele.promotions.config import PromotionConfig
from fidele.promotions.models import Coupon, PromotionSettings
from fidele.promotions.repository import CouponRepository, SettingsRepository

TTL_SECONDS = 2.0


@dataclass(frozen=True)
class MerchantPromotions:
    cfg: PromotionConfig
    automatic: tuple[Coupon, ...]  # active automatic promotions, by id, detached copies
    # Their offers, built once when the value does not depend on the time (no schedule).
    fixed_offers: tuple[domain.Offer | None, ...] = ()

    def automatic_at(self, now: datetime) -> list[Coupon]:
        """The promotions whose window contains ``now`` (as the SQL filter would keep)."""
        return [c for c in self.automatic if _open(c, now)]

    def offers_at(self, now: datetime) -> list[domain.Offer]:
        """The offers of ``automatic_at(now)``, each valued at ``now``."""
        return [
            fixed or coupons.to_offer(c, now, source="promotion")
            for c, fixed in zip(self.automatic, self.fixed_offers, strict=True)
            if _open(c, now)
        ]


def _open(c: Coupon, now: datetime) -> bool:
    return (c.starts_at is None or c.starts_at <= now) and (c.ends_at is None or c.ends_at > now)


def _touches(objects: Sequence[object]) -> bool:
    return any(
        isinstance(o, PromotionSettings) or (isinstance(o, Coupon) and o.automatic) for o in objects
    )


_cache: ProcessCache[MerchantPromotions] = ProcessCache("promotions", TTL_SECONDS, _touches)


def merchant(session: Session, merchant_id: int) -> MerchantPromotions:
    """The merchant's settings and automatic promotions, from the cache when fresh."""
    return _cache.get(session, merchant_id, lambda: _load(session, merchant_id))


def clear() -> None:
    _cache.clear()


def _load(session: Session, merchant_id: int) -> MerchantPromotions:
    row = SettingsRepository(session).get(merchant_id)
    cfg = PromotionConfig.model_validate(row.data if row else {})
    copies = tuple(_copy(c) for c in CouponRepository(session).automatic_any_time(merchant_id))
    fixed = tuple(
        None if c.schedule is not None else coupons.to_offer(c, _NO_TIME, source="promotion")
        for c in copies
    )
    return MerchantPromotions(cfg, copies, fixed)


_NO_TIME = datetime.min  # to_offer reads the time only for a schedule


_COLUMNS = [c.key for c in Coupon.__table__.columns]


def _copy(coupon: Coupon) -> Coupon:
    """A transient copy: shared between threads, never attached to (or expired by) a session."""
    return Coupon(**{k: getattr(coupon, k) for k in _COLUMNS})
