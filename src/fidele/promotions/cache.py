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
promotions are not limited by them; typed codes are always read). The cache is kept per bind
(engine, or the connection a test binds its sessions to), so two databases never share one."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.orm import Session

from fidele.promotions.config import PromotionConfig
from fidele.promotions.models import Coupon, PromotionSettings
from fidele.promotions.repository import CouponRepository, SettingsRepository

TTL_SECONDS = 2.0
_WROTE = "promotions_cache_wrote"


@dataclass(frozen=True)
class MerchantPromotions:
    cfg: PromotionConfig
    automatic: tuple[Coupon, ...]  # active automatic promotions, by id, detached copies
    expires: float

    def automatic_at(self, now: datetime) -> list[Coupon]:
        """The promotions whose window contains ``now`` (as the SQL filter would keep)."""
        return [
            c
            for c in self.automatic
            if (c.starts_at is None or c.starts_at <= now)
            and (c.ends_at is None or c.ends_at > now)
        ]


def _open(starts: datetime | None, ends: datetime | None, now: datetime) -> bool:
    return (starts is None or starts <= now) and (ends is None or ends > now)


_lock = threading.Lock()
_by_bind: WeakKeyDictionary[Any, dict[int, MerchantPromotions]] = WeakKeyDictionary()
_generation = 0


def merchant(session: Session, merchant_id: int) -> MerchantPromotions:
    """The merchant's settings and automatic promotions, from the cache when fresh."""
    if session.info.get(_WROTE):
        return _load(session, merchant_id)
    bind = session.get_bind()
    with _lock:
        entry = _by_bind.get(bind, {}).get(merchant_id)
        generation = _generation
    if entry is not None and entry.expires > time.monotonic():
        return entry
    entry = _load(session, merchant_id)
    with _lock:
        if generation == _generation:  # no change flushed while we read
            _by_bind.setdefault(bind, {})[merchant_id] = entry
    return entry


def clear() -> None:
    global _generation
    with _lock:
        _generation += 1
        _by_bind.clear()


def _load(session: Session, merchant_id: int) -> MerchantPromotions:
    row = SettingsRepository(session).get(merchant_id)
    cfg = PromotionConfig.model_validate(row.data if row else {})
    rows = CouponRepository(session).automatic_any_time(merchant_id)
    copies = tuple(_copy(c) for c in rows)
    return MerchantPromotions(cfg, copies, time.monotonic() + TTL_SECONDS)


_COLUMNS = [c.key for c in Coupon.__table__.columns]


def _copy(coupon: Coupon) -> Coupon:
    """A transient copy: shared between threads, never attached to (or expired by) a session."""
    return Coupon(**{k: getattr(coupon, k) for k in _COLUMNS})


def _touches(objects: Sequence[object]) -> bool:
    return any(
        isinstance(o, PromotionSettings) or (isinstance(o, Coupon) and o.automatic) for o in objects
    )


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    if _touches(list(chain(session.new, session.dirty, session.deleted))):
        session.info[_WROTE] = True
        clear()


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _after_end(session: Session) -> None:
    if session.info.pop(_WROTE, False):
        clear()
