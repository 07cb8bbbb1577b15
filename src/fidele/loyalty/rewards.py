"""Rewards, redemptions, vouchers, burns and manual adjustments.

Each write is an event of the log (``loyalty.redemption``, ``loyalty.redemption_cancelled``,
``loyalty.burn``, ``loyalty.burn_refund``, ``loyalty.adjustment``, ``loyalty.voucher_used``,
``loyalty.voucher_released``) whose handler does the work, so a replay of the log redoes it.
The request's idempotency key is the event's: a retry finds the event and returns what it made.
A redemption's id is its event's id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.errors import Conflict, InvalidInput, NotFound
from fidele.events import service as events
from fidele.events.models import Event
from fidele.events.repository import EventRepository
from fidele.kit import codes
from fidele.loyalty import domain, members, membership, notify, points
from fidele.loyalty.errors import InsufficientPoints, RewardUnavailable, VoucherNotUsable
from fidele.loyalty.models import Member, Redemption, Reward, Voucher
from fidele.loyalty.repository import LoyaltyRepository
from fidele.tenancy.service import Caller

PREFIX = "RW"
KINDS = ("amount_off", "percent_off", "free_shipping", "free_product", "donation", "custom")


def create_reward(session: Session, caller: Caller, data: dict[str, Any], now: datetime) -> Reward:
    reward = Reward(
        programme_id=caller.programme_id,
        merchant_id=caller.merchant_id,
        issued=0,
        created_at=now,
        **data,
    )
    _check_value(reward.kind, reward.value)
    session.add(reward)
    session.flush()
    return reward


def _check_value(kind: str, value: int) -> None:
    if kind == "percent_off" and not 0 < value <= 10_000:
        raise InvalidInput("a percent_off value is in basis points (1-10000)", field="value")


def update_reward(session: Session, caller: Caller, reward_id: int, data: dict[str, Any]) -> Reward:
    """Change a reward of the programme (``data`` as ``RewardIn`` validates it); its stock
    cannot fall below what was already issued."""
    reward = get_reward(session, caller, reward_id)
    stock = data.get("stock")
    if stock is not None and stock < reward.issued:
        raise InvalidInput(
            f"{reward.issued} already issued: the stock cannot be lower", field="stock"
        )
    _check_value(data.get("kind", reward.kind), data.get("value", reward.value))
    for name, value in data.items():
        setattr(reward, name, value)
    session.flush()
    return reward


def get_reward(session: Session, caller: Caller, reward_id: int) -> Reward:
    reward = session.get(Reward, reward_id)
    if reward is None or reward.programme_id != caller.programme_id:
        raise NotFound(f"reward {reward_id} not found")
    return reward


def visible_rewards(session: Session, caller: Caller, now: datetime) -> list[Reward]:
    """Rewards of the programme that are live now (any tier or membership)."""
    return [
        r
        for r in LoyaltyRepository(session).rewards(caller.programme_id)
        if (r.starts_at is None or r.starts_at <= now) and (r.ends_at is None or now < r.ends_at)
    ]


def _caller_of(event: Event) -> Caller:
    return Caller(event.merchant_id, event.programme_id, None, frozenset())


def _record(
    session: Session,
    caller: Caller,
    customer: Customer,
    type_: str,
    payload: dict[str, Any],
    key: str,
    now: datetime,
) -> tuple[Event, bool]:
    existing = EventRepository(session).by_idempotency_key(caller.merchant_id, key)
    if existing is not None:
        return existing, False
    return events.record(
        session,
        caller,
        type=type_,
        occurred_at=now,
        now=now,
        source="loyalty",
        payload=payload,
        customer_id=customer.id,
        idempotency_key=key,
    )


# -- redemptions


def redeem(
    session: Session, caller: Caller, customer: Customer, reward_id: int, key: str, now: datetime
) -> tuple[Redemption, bool]:
    get_reward(session, caller, reward_id)
    event, created = _record(
        session,
        caller,
        customer,
        "loyalty.redemption",
        {"reward_id": reward_id, "code": codes.generate(f"{PREFIX}-")},
        f"loyalty:redeem:{key}",
        now,
    )
    if event.payload.get("reward_id") != reward_id or event.customer_id != customer.id:
        raise Conflict("this Idempotency-Key was used for another redemption")
    row = session.get(Redemption, event.id)
    assert row is not None
    return row, created


def on_redemption(session: Session, event: Event, now: datetime) -> Redemption:
    customer, member = _member(session, event, now)
    reward = get_reward(session, _caller_of(event), int(event.payload["reward_id"]))
    points.lock(session, member)
    _check_available(session, member, reward, now)
    _require(session, member, reward.points_cost)
    points.spend(
        session,
        member,
        points=reward.points_cost,
        source_key=f"redemption:{event.id}",
        kind="redeem",
        merchant_id=event.merchant_id,
        now=now,
        reason="redemption",
    )
    if not LoyaltyRepository(session).take_stock(reward.id, 1):
        raise RewardUnavailable(f"reward {reward.id} is out of stock", reason="out_of_stock")
    row = Redemption(
        id=event.id,
        programme_id=event.programme_id,
        merchant_id=event.merchant_id,
        member_id=member.id,
        customer_id=customer.id,
        reward_id=reward.id,
        points=reward.points_cost,
        status="active",
        created_at=now,
    )
    session.add(row)
    session.flush()
    session.add(
        Voucher(
            programme_id=event.programme_id,
            redemption_id=row.id,
            code=codes.normalise(event.payload["code"]),
            kind=reward.kind,
            value=reward.value,
            status="issued",
            created_at=now,
        )
    )
    session.flush()
    notify.emit(
        session,
        member,
        merchant_id=event.merchant_id,
        topic="loyalty.reward_redeemed",
        dedup=f"redemption:{event.id}",
        now=now,
        payload={"redemption_id": row.id, "reward_id": reward.id, "points": row.points},
    )
    return row


def _member(session: Session, event: Event, now: datetime) -> tuple[Customer, Member]:
    assert event.customer_id is not None
    customer = session.get(Customer, event.customer_id)
    assert customer is not None
    member = members.member_for(session, customer, now)
    members.catch_up(session, member, now, event.merchant_id)
    return customer, member


def _require(session: Session, member: Member, needed: int) -> None:
    have = points.balance(session, member, "available")
    if have < needed:
        raise InsufficientPoints(
            f"{needed} points needed, {have} available", balance=have, required=needed
        )


def _check_available(session: Session, member: Member, reward: Reward, now: datetime) -> None:
    """Window, tier, membership and per-customer limit (stock is taken atomically later)."""
    if (reward.starts_at and now < reward.starts_at) or (reward.ends_at and now >= reward.ends_at):
        raise RewardUnavailable(f"reward {reward.id} is not available now", reason="not_available")
    scale = members.scale_at(session, member.programme_id, now)
    tier = members.tier_of(scale, member)
    if reward.tiers and (tier is None or tier.name not in reward.tiers):
        raise RewardUnavailable(
            f"reward {reward.id} is for tiers {', '.join(reward.tiers)}", reason="tier"
        )
    if reward.members_only and membership.active(session, member, now) is None:
        raise RewardUnavailable(f"reward {reward.id} is for paid members", reason="membership")
    if reward.stock is not None and reward.issued >= reward.stock:  # re-checked atomically
        raise RewardUnavailable(f"reward {reward.id} is out of stock", reason="out_of_stock")
    limit = reward.per_customer_limit
    if (
        limit is not None
        and LoyaltyRepository(session).redemptions_count(member.id, reward.id) >= limit
    ):
        raise RewardUnavailable(f"limit of {limit} per customer reached", reason="limit_reached")


def unavailable_reason(
    session: Session, member: Member, reward: Reward, now: datetime
) -> str | None:
    """Why ``member`` cannot redeem ``reward`` now (``not_available``, ``tier``,
    ``membership``, ``out_of_stock``, ``limit_reached``), or None: the redemption's own check,
    for those who list what a customer may redeem (the storefront)."""
    try:
        _check_available(session, member, reward, now)
    except RewardUnavailable as exc:
        return str(exc.extra.get("reason", "not_available"))
    return None


def get_redemption(session: Session, caller: Caller, redemption_id: int) -> Redemption:
    row = session.get(Redemption, redemption_id)
    if row is None or row.merchant_id != caller.merchant_id:
        raise NotFound(f"redemption {redemption_id} not found")
    return row


def cancel(session: Session, caller: Caller, redemption_id: int, now: datetime) -> Redemption:
    """Void an unused code and give the points back to their original lots."""
    row = get_redemption(session, caller, redemption_id)
    if row.status == "cancelled":
        return row
    voucher = LoyaltyRepository(session).voucher_of(row.id)
    if voucher is not None and voucher.status == "used":
        raise VoucherNotUsable(f"redemption {row.id}'s code was already used", reason="used")
    customer = session.get(Customer, row.customer_id)
    assert customer is not None
    _record(
        session,
        caller,
        customer,
        "loyalty.redemption_cancelled",
        {"redemption_id": row.id},
        f"loyalty:cancel:{row.id}",
        now,
    )
    return row


def on_cancel(session: Session, event: Event, now: datetime) -> None:
    row = session.get(Redemption, int(event.payload["redemption_id"]))
    if row is None or row.status == "cancelled":
        return
    _, member = _member(session, event, now)
    points.restore(session, member, source_key=f"redemption:{row.id}", now=now)
    LoyaltyRepository(session).take_stock(row.reward_id, -1)
    row.status, row.cancelled_at = "cancelled", now
    voucher = LoyaltyRepository(session).voucher_of(row.id)
    if voucher is not None:
        voucher.status = "cancelled"


# -- burns (points paying at checkout) and adjustments


def burn(
    session: Session,
    *,
    customer: Customer,
    amount: int,
    source_key: str,
    now: datetime,
    merchant_id: int,
) -> None:
    if amount <= 0:
        raise InvalidInput("points to burn must be positive", field="points")
    caller = Caller(merchant_id, customer.programme_id, None, frozenset())
    _record(
        session,
        caller,
        customer,
        "loyalty.burn",
        {"points": amount, "source_key": source_key},
        f"loyalty:burn:{source_key}",
        now,
    )


def on_burn(session: Session, event: Event, now: datetime) -> None:
    _, member = _member(session, event, now)
    points.lock(session, member)
    amount = int(event.payload["points"])
    _require(session, member, amount)
    points.spend(
        session,
        member,
        points=amount,
        source_key=f"burn:{event.payload['source_key']}",
        kind="burn",
        merchant_id=event.merchant_id,
        now=now,
        reason="burn",
    )


def refund_burn(session: Session, *, source_key: str, now: datetime) -> None:
    burned = LoyaltyRepository(session).event_by_key(f"loyalty:burn:{source_key}")
    if burned is None or burned.customer_id is None:
        raise NotFound(f"no points were burned for {source_key!r}")
    customer = session.get(Customer, burned.customer_id)
    assert customer is not None
    _record(
        session,
        _caller_of(burned),
        customer,
        "loyalty.burn_refund",
        {"source_key": source_key},
        f"loyalty:burn_refund:{source_key}",
        now,
    )


def on_burn_refund(session: Session, event: Event, now: datetime) -> None:
    _, member = _member(session, event, now)
    points.restore(session, member, source_key=f"burn:{event.payload['source_key']}", now=now)


def adjust(
    session: Session,
    caller: Caller,
    customer: Customer,
    amount: int,
    reason: str,
    key: str,
    now: datetime,
) -> Event:
    if amount == 0:
        raise InvalidInput("points must not be zero", field="points")
    event, _ = _record(
        session,
        caller,
        customer,
        "loyalty.adjustment",
        {"points": amount, "reason": reason},
        f"loyalty:adjust:{key}",
        now,
    )
    return event


def on_adjustment(session: Session, event: Event, now: datetime) -> None:
    _, member = _member(session, event, now)
    amount, source = int(event.payload["points"]), f"adjustment:{event.id}"
    if amount > 0:
        scale = members.scale_at(session, event.programme_id, now)
        months = scale.settings.expiry_months
        points.earn(
            session,
            member,
            merchant_id=event.merchant_id,
            source_key=source,
            reason="adjustment",
            points=amount,
            earned_at=now,
            available_at=now,
            expires_at=domain.add_months(now, months) if months else None,
            now=now,
            from_kind="adjustments",
            detail=[{"reason": event.payload["reason"]}],
        )
        return
    points.lock(session, member)
    _require(session, member, -amount)
    adjustments = points.merchant_account(
        session, event.programme_id, event.merchant_id, "adjustments", now
    )
    points.take(
        session,
        member,
        source_key=source,
        reason="adjustment",
        credit=adjustments,
        points=-amount,
        kind="adjust",
        merchant_id=event.merchant_id,
        now=now,
        meta={"reason": event.payload["reason"]},
    )


# -- vouchers (the checkout of promotions consumes them)


def pretty(code: str) -> str:
    body = code[len(PREFIX) :]
    return f"{PREFIX}-" + "-".join(body[i : i + 4] for i in range(0, len(body), 4))


def find_voucher(session: Session, programme_id: int, code: str) -> Voucher | None:
    if not codes.is_well_formed(code, PREFIX):
        return None
    return LoyaltyRepository(session).voucher_by_code(programme_id, codes.normalise(code))


def voucher_owner(session: Session, voucher: Voucher) -> int:
    """The customer who bought ``voucher`` with points: only they may use it at checkout."""
    return LoyaltyRepository(session).voucher_owner(voucher)


def use_voucher(session: Session, voucher: Voucher, *, order_ref: str, now: datetime) -> None:
    """Mark an issued code used by ``order_ref`` (again for the same order: nothing changes),
    through a ``loyalty.voucher_used`` event, so a replay of the log reproduces it."""
    session.refresh(voucher, with_for_update=True)
    if voucher.status == "used" and voucher.order_ref == order_ref:
        return
    if voucher.status != "issued":
        raise VoucherNotUsable(f"voucher is {voucher.status}", reason=voucher.status)
    _voucher_event(session, voucher, "loyalty.voucher_used", order_ref, now)


def release_voucher(session: Session, voucher: Voucher, *, order_ref: str, now: datetime) -> None:
    """Make a code used by ``order_ref`` usable again (``loyalty.voucher_released``); a code
    not used by that order is left as it is."""
    session.refresh(voucher, with_for_update=True)
    if voucher.status == "used" and voucher.order_ref == order_ref:
        _voucher_event(session, voucher, "loyalty.voucher_released", order_ref, now)


def _voucher_event(
    session: Session, voucher: Voucher, type_: str, order_ref: str, now: datetime
) -> None:
    # No idempotency key: the voucher's row lock and status check above make each change
    # happen once, and a code may be used, released and used again by the same order.
    row = session.get(Redemption, voucher.redemption_id)
    assert row is not None
    events.record(
        session,
        Caller(row.merchant_id, row.programme_id, None, frozenset()),
        type=type_,
        occurred_at=now,
        now=now,
        source="loyalty",
        payload={"redemption_id": row.id, "order_ref": order_ref},
        customer_id=row.customer_id,
    )


def on_voucher_used(session: Session, event: Event, now: datetime) -> None:
    voucher = LoyaltyRepository(session).voucher_of(int(event.payload["redemption_id"]))
    if voucher is not None and voucher.status == "issued":
        voucher.status, voucher.order_ref, voucher.used_at = "used", event.payload["order_ref"], now
        session.flush()


def on_voucher_released(session: Session, event: Event, now: datetime) -> None:
    voucher = LoyaltyRepository(session).voucher_of(int(event.payload["redemption_id"]))
    if voucher is not None and (voucher.status, voucher.order_ref) == (
        "used",
        event.payload["order_ref"],
    ):
        voucher.status, voucher.order_ref, voucher.used_at = "issued", None, None
        session.flush()
