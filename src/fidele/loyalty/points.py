"""Points bookkeeping: every movement is a ledger posting (unit ``PTS``) plus the lot rows
that say which earned points it moved.

Accounts: per member ``available``, ``pending`` and ``debt`` (allow_negative: points clawed
back after they were spent); per merchant ``issued`` (allow_negative, the source of points),
``redeemed``, ``expired`` and ``adjustments`` (allow_negative). In a coalition each merchant
has its own, so settlement can say who issued what and where it was spent.

Concurrency: anything that changes a member first locks the member's row (:func:`hold`:
read afresh, so the counters kept on it, ``lifetime_earned`` and ``lifetime_spent``, are
changed from their current value), then, to read lots and post, the member's pending and
available accounts (ascending id, the ledger's order). Debits are conditional UPDATEs besides,
so an available balance cannot go below zero even without the locks. Lock order: member row,
then accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.kit.cache import memo
from fidele.ledger import service as ledger
from fidele.ledger.models import Account
from fidele.ledger.service import POINTS
from fidele.loyalty import domain
from fidele.loyalty.models import Consumption, Lot, Member
from fidele.loyalty.repository import LoyaltyRepository

ISSUED_SHARDS = 16
SHARD = "shard:"  # the ref of an ``issued`` shard: this, then member id % ISSUED_SHARDS
MERCHANT_KINDS = {"issued": True, "redeemed": False, "expired": False, "adjustments": True}


def member_account(session: Session, member: Member, kind: str) -> Account:
    acc = session.get(Account, getattr(member, f"{kind}_account_id"))
    assert acc is not None
    return acc


def open_accounts(session: Session, member: Member, now: datetime) -> None:
    """The three accounts of a member just inserted (inside the caller's savepoint): their
    keys name the new member, so none can exist yet and they go in one multi-row INSERT
    instead of a get-or-create with its own savepoint each."""
    kinds = ("available", "pending", "debt")
    accounts = [
        ledger.new_account(
            programme_id=member.programme_id,
            kind=kind,
            unit=POINTS,
            now=now,
            ref=f"member:{member.id}",
            allow_negative=kind == "debt",
        )
        for kind in kinds
    ]
    session.add_all(accounts)
    session.flush()
    for kind, acc in zip(kinds, accounts, strict=True):
        setattr(member, f"{kind}_account_id", acc.id)


def shard_ref(kind: str, member_id: int | None) -> str | None:
    """``issued`` is credited by every order of a merchant: one row would serialise all of
    them (its row lock is held until commit), so it is split in ``ISSUED_SHARDS`` accounts
    by member. Reports sum the shards (they group by merchant and kind)."""
    if kind != "issued" or member_id is None:
        return None
    return f"{SHARD}{member_id % ISSUED_SHARDS}"


def merchant_account(
    session: Session,
    programme_id: int,
    merchant_id: int,
    kind: str,
    now: datetime,
    member_id: int | None = None,
) -> Account:
    ref = shard_ref(kind, member_id)
    key = (programme_id, merchant_id, kind, ref)
    # Cached per session; checked on use, since a rolled-back savepoint can leave an id that
    # SQLite then gives to another account.
    cache: dict[tuple[int, int, str, str | None], int] = session.info.setdefault(
        "loyalty_accounts", {}
    )
    found = cache.get(key)
    acc = session.get(Account, found) if found is not None else None
    if acc is None or (acc.programme_id, acc.merchant_id, acc.kind, acc.ref) != key:
        acc = ledger.account(
            session,
            programme_id=programme_id,
            merchant_id=merchant_id,
            kind=kind,
            unit=POINTS,
            now=now,
            ref=ref,
            allow_negative=MERCHANT_KINDS[kind],
        )
        cache[key] = acc.id
    return acc


def remember_account(session: Session, acc: Account) -> None:
    """Put a merchant account read by another query into :func:`merchant_account`'s cache."""
    key = (acc.programme_id, acc.merchant_id, acc.kind, acc.ref)
    session.info.setdefault("loyalty_accounts", {})[key] = acc.id


def balance(session: Session, member: Member, kind: str) -> int:
    acc = member_account(session, member, kind)
    session.refresh(acc, ["balance"])
    return acc.balance


HELD = "loyalty_members_held"  # ids of the members whose row this transaction has locked


def held(session: Session, member: Member) -> None:
    """Note that this transaction already holds ``member``'s row (it read it ``FOR UPDATE``,
    or inserted it)."""
    memo(session, HELD)[member.id] = True


def hold(session: Session, member: Member) -> None:
    """Lock ``member``'s row until the transaction ends and refresh it (once per
    transaction): the member's changes are serialised, so a counter changed in Python
    (``lifetime_spent += n``) starts from the committed value, not from a copy read before
    another transaction changed it."""
    if memo(session, HELD).get(member.id):
        return
    LoyaltyRepository(session).lock_member(member.id)
    held(session, member)


def lock(session: Session, member: Member) -> None:
    """Lock the member's row, then its pending and available accounts (see the module's
    docstring)."""
    hold(session, member)
    ledger.lock(session, [member_account(session, member, k) for k in ("pending", "available")])


def move(
    session: Session,
    member: Member,
    *,
    source_key: str,
    reason: str,
    debit: Account,
    credit: Account,
    points: int,
    now: datetime,
    meta: dict[str, Any] | None = None,
    fresh: bool = False,
) -> bool:
    """One two-leg posting; False when this source was already posted."""
    if points == 0:
        return True
    _, created = ledger.transfer(
        session,
        programme_id=member.programme_id,
        source_key=source_key,
        reason=reason,
        debit=debit,
        credit=credit,
        amount=points,
        now=now,
        meta=meta,
        fresh=fresh,
    )
    return created


def earn(
    session: Session,
    member: Member,
    *,
    merchant_id: int,
    source_key: str,
    reason: str,
    points: int,
    earned_at: datetime,
    available_at: datetime,
    expires_at: datetime | None,
    now: datetime,
    from_kind: str = "issued",
    absent: bool = False,
    **extra: Any,
) -> Lot:
    """Credit a lot (pending until ``available_at``) from the merchant's ``from_kind``
    account; idempotent on ``source_key``. ``absent``: the caller has just read that no lot
    of this source exists (a concurrent twin is still caught by the posting's and the lot's
    unique source keys)."""
    if not absent:
        existing = LoyaltyRepository(session).lot(member.programme_id, source_key)
        if existing is not None:
            return existing
    hold(session, member)
    status = "pending" if available_at > now else "available"
    issued = merchant_account(session, member.programme_id, merchant_id, from_kind, now, member.id)
    target = member_account(session, member, status)
    move(
        session,
        member,
        source_key=source_key,
        reason=reason,
        debit=issued,
        credit=target,
        points=points,
        now=now,
        fresh=True,  # no lot of this source: its posting, written with it, is not there either
    )
    lot = Lot(
        programme_id=member.programme_id,
        merchant_id=merchant_id,
        member_id=member.id,
        source_key=source_key,
        reason=reason,
        points=points,
        remaining=points,
        clawed=0,
        status=status,
        earned_at=earned_at,
        available_at=available_at,
        expires_at=expires_at,
        **extra,
    )
    session.add(lot)
    session.flush()
    member.lifetime_earned += points
    if status == "available":
        settle_debt(session, member, now)
    return lot


def release(session: Session, member: Member, lot: Lot, now: datetime) -> None:
    """Pending → available once the return window has passed."""
    move(
        session,
        member,
        source_key=f"{lot.source_key}:release",
        reason="release",
        debit=member_account(session, member, "pending"),
        credit=member_account(session, member, "available"),
        points=lot.remaining,
        now=now,
    )
    lot.status = "available"
    settle_debt(session, member, now)


def consume(
    session: Session,
    member: Member,
    *,
    points: int,
    source_key: str,
    kind: str,
    merchant_id: int | None,
    now: datetime,
    lots: list[Lot] | None = None,
) -> None:
    """Take ``points`` from available lots, first-expiring-first, recording each take
    (``merchant_id`` None: charged to each lot's own merchant)."""
    left = points
    for lot in (
        lots if lots is not None else LoyaltyRepository(session).lots(member.id, "available")
    ):
        take = min(left, lot.remaining)
        if take <= 0:
            continue
        lot.remaining -= take
        session.add(
            Consumption(
                programme_id=member.programme_id,
                lot_id=lot.id,
                merchant_id=merchant_id or lot.merchant_id,
                source_key=source_key,
                kind=kind,
                points=take,
                restored=False,
                created_at=now,
            )
        )
        left -= take
        if left == 0:
            break
    if left:
        raise RuntimeError(f"lots hold {points - left} points, {points} were posted")
    session.flush()


def take(
    session: Session,
    member: Member,
    *,
    source_key: str,
    reason: str,
    credit: Account,
    points: int,
    kind: str,
    merchant_id: int | None,
    now: datetime,
    lots: list[Lot] | None = None,
    consume_key: str | None = None,
    meta: dict[str, Any] | None = None,
) -> bool:
    """Post available points to ``credit`` and consume the lots they came from (FEFO unless
    ``lots`` is given); False when this source was already posted."""
    debit = member_account(session, member, "available")
    if not move(
        session,
        member,
        source_key=source_key,
        reason=reason,
        debit=debit,
        credit=credit,
        points=points,
        now=now,
        meta=meta,
    ):
        return False
    consume(
        session,
        member,
        points=points,
        source_key=consume_key or source_key,
        kind=kind,
        merchant_id=merchant_id,
        now=now,
        lots=lots,
    )
    return True


def spend(
    session: Session,
    member: Member,
    *,
    points: int,
    source_key: str,
    kind: str,
    merchant_id: int,
    now: datetime,
    reason: str,
) -> bool:
    """Debit available points to the merchant's ``redeemed`` account and consume lots.
    Raises ``InsufficientBalance`` (409) when the balance is short; False on a replayed
    source."""
    lock(session, member)
    redeemed = merchant_account(session, member.programme_id, merchant_id, "redeemed", now)
    if not take(
        session,
        member,
        source_key=source_key,
        reason=reason,
        credit=redeemed,
        points=points,
        kind=kind,
        merchant_id=merchant_id,
        now=now,
    ):
        return False
    member.lifetime_spent += points
    return True


def restore(session: Session, member: Member, *, source_key: str, now: datetime) -> int:
    """Give back what ``source_key`` spent, to the lots it came from (with their own expiry
    dates) and from the merchants' ``redeemed`` accounts it went to."""
    lock(session, member)
    repo = LoyaltyRepository(session)
    taken = repo.consumptions(member.programme_id, source_key)
    total = 0
    for c in taken:
        lot = session.get(Lot, c.lot_id)
        assert lot is not None
        redeemed = merchant_account(session, member.programme_id, c.merchant_id, "redeemed", now)
        move(
            session,
            member,
            source_key=f"{source_key}:restore:{c.id}",
            reason="restore",
            debit=redeemed,
            credit=member_account(session, member, "available"),
            points=c.points,
            now=now,
        )
        lot.remaining += c.points
        c.restored = True
        total += c.points
    member.lifetime_spent -= total
    session.flush()
    settle_debt(session, member, now)
    return total


def settle_debt(session: Session, member: Member, now: datetime) -> None:
    """Points owed after a clawback are repaid from the next points that become available."""
    owed = -balance(session, member, "debt")
    if owed <= 0:
        return
    pay = min(owed, balance(session, member, "available"))
    if pay > 0:
        take(
            session,
            member,
            source_key=f"debt:{member.id}:{now.isoformat()}:{owed}",
            reason="debt_settled",
            credit=member_account(session, member, "debt"),
            points=pay,
            kind="debt",
            merchant_id=None,
            now=now,
        )


def expire(session: Session, member: Member, lot: Lot, at: datetime, now: datetime) -> int:
    """Post what is left of an available lot to its merchant's ``expired`` account."""
    points = lot.remaining
    if points > 0:
        expired = merchant_account(session, member.programme_id, lot.merchant_id, "expired", now)
        take(
            session,
            member,
            source_key=f"lot:{lot.id}:expire:{at.isoformat()}:{points}",
            reason="expire",
            credit=expired,
            points=points,
            kind="expire",
            merchant_id=lot.merchant_id,
            now=now,
            lots=[lot],
        )
    return points


SPENT_KINDS = ("redeem", "burn", "debt", "adjust")  # points of a lot the customer used


def clawback(
    session: Session,
    member: Member,
    lot: Lot,
    *,
    points: int,
    source_key: str,
    now: datetime,
    forgive_spent: bool = False,
) -> None:
    """Take back ``points`` of an order's lot in its current state
    (:func:`domain.clawback_split`): what the lot holds (pending or available); its expired
    points are not taken; its spent points from the member's other available points, then as
    debt, unless ``forgive_spent``."""
    if points <= 0:
        return
    lock(session, member)
    session.refresh(lot)
    usage = LoyaltyRepository(session).lot_usage(lot.id)
    split = domain.clawback_split(
        points,
        lot_points=lot.points,
        remaining=lot.remaining,
        expired=usage.get("expire", 0),
        spent=sum(usage.get(k, 0) for k in SPENT_KINDS),
        clawed=lot.clawed,
        forgive_spent=forgive_spent,
    )
    issued = merchant_account(
        session, member.programme_id, lot.merchant_id, "issued", now, member.id
    )
    claw = {
        "reason": "clawback",
        "credit": issued,
        "merchant_id": lot.merchant_id,
        "now": now,
        "consume_key": source_key,
    }
    own = split.from_lot
    if lot.status == "pending":
        move(
            session,
            member,
            source_key=f"{source_key}:lot",
            reason="clawback",
            debit=member_account(session, member, "pending"),
            credit=issued,
            points=own,
            now=now,
        )
        lot.remaining -= own
    else:
        take(
            session,
            member,
            source_key=f"{source_key}:lot",
            points=own,
            lots=[lot],
            kind="claw",
            **claw,
        )
    # Spent points are recovered like a debt repaid at once: the other lots record a "debt"
    # take (spent, from their own point of view, should their orders be refunded later).
    other = min(split.recover, balance(session, member, "available"))
    take(session, member, source_key=f"{source_key}:other", points=other, kind="debt", **claw)
    move(
        session,
        member,
        source_key=f"{source_key}:debt",
        reason="clawback_debt",
        debit=member_account(session, member, "debt"),
        credit=issued,
        points=split.recover - other,
        now=now,
    )
    lot.clawed += points
    member.lifetime_earned -= points
    session.flush()
