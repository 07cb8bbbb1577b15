"""Checkout: evaluate a cart once, then confirm (or cancel) it once, atomically and idempotently.

Evaluate prices the cart, holds gift card and wallet amounts in the ledger and stores the
result in a session. Confirm consumes exactly what the stored result says: coupon usages (atomic
conditional counters), reward vouchers, points, and the held money. The usages of coupons
with a usage or per-customer limit are held from evaluate (``holds``): a second open cart is
refused the last use (``held_by_another_checkout``), confirm turns the hold into the use, and
cancel or expiry gives it back. A coupon without a hold (no limits) is used at confirm by an
atomic conditional counter; if that fails confirm answers 409 and changes nothing."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.customers.repository import CustomerRepository
from fidele.errors import NotFound, StateConflict
from fidele.promotions import (
    balances,
    cache,
    domain,
    giftcards,
    holds,
    ratelimit,
    resolve,
    wallet,
)
from fidele.promotions.errors import CouponNotRedeemable, SessionAlreadyConfirmed, SessionClosed
from fidele.promotions.loyalty_port import LoyaltyPort, NoLoyalty, default_loyalty
from fidele.promotions.models import CheckoutSession, GiftCard, Redemption
from fidele.promotions.repository import CouponRepository, SessionRepository
from fidele.promotions.schemas import CheckoutIn, CheckoutOut, DiscountOut, RejectedOut
from fidele.tenancy.service import Caller


def evaluate(
    session: Session,
    caller: Caller,
    data: CheckoutIn,
    now: datetime,
    *,
    loyalty: LoyaltyPort = default_loyalty,
) -> CheckoutSession:
    """Price the cart, hold payment-like balances and store the result in a new session."""
    promos = cache.merchant(session, caller.merchant_id)
    cfg = promos.cfg
    customer = CustomerRepository(session).by_external_id(caller.merchant_id, data.customer_id)
    lines = [
        domain.CartLine(x.product_id, x.category, x.quantity, x.unit_price) for x in data.lines
    ]
    who = resolve.shopper(session, customer, data.currency, data.channel, now, loyalty)
    cart = resolve.Cart(caller, customer, lines, who, now, cfg, loyalty, data.customer_id)
    found = resolve.typed_codes(session, cart, data.codes)
    offers = resolve.automatic(session, cart, promos.offers_at(now)) + found.offers
    priced = domain.price(lines, data.shipping, offers)
    row = _new_session(session, caller, customer, data, now, cfg.session_ttl_minutes)
    priced, not_held = holds.hold_applied(
        session, row, lines, data.shipping, offers, priced, found.coupons, found.customer_uses, now
    )
    rejected = (
        found.rejected
        + not_held
        + [
            {"code": r.offer.code, "reason": r.reason, "detail": r.detail}
            for r in priced.refused
            if r.offer.code
        ]
    )
    tenders = _tenders(session, cart, row.id, data, priced.due, rejected)
    earned = loyalty.simulate_order_points(
        session,
        caller,
        customer=customer,
        lines=[x.model_dump() for x in data.lines],
        shipping=data.shipping - sum(a.shipping for a in priced.applied),
        discounts=priced.discount,
        currency=data.currency,
        now=now,
    )
    row.result = _result(priced, tenders, rejected, earned)
    row.total = row.result["total"]
    return row


def _new_session(
    session: Session,
    caller: Caller,
    customer: Customer | None,
    data: CheckoutIn,
    now: datetime,
    ttl: int,
) -> CheckoutSession:
    row = CheckoutSession(
        id=secrets.token_hex(16),
        merchant_id=caller.merchant_id,
        programme_id=caller.programme_id,
        customer_id=customer.id if customer else None,
        customer_ref=data.customer_id,
        api_key_id=caller.api_key_id,
        currency=data.currency,
        status="open",
        request=data.model_dump(mode="json"),
        result={},
        total=0,
        expires_at=now + timedelta(minutes=ttl),
        created_at=now,
    )
    # Not flushed: inserted once with its result at the next flush, instead of INSERT + UPDATE.
    return SessionRepository(session).add(row, flush=False)


def _tenders(
    session: Session,
    cart: resolve.Cart,
    sid: str,
    data: CheckoutIn,
    due: int,
    rejected: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Points, gift cards, then wallet, each as much as asked and available; money is held."""
    asked: list[tuple[domain.Tender, dict[str, Any]]] = []
    if data.points:
        asked.append(_points(session, cart, data, due))
    if data.gift_cards:
        asked.extend(_gift_cards(session, cart, data, rejected))
    if data.wallet_amount:
        asked.append(_wallet(session, cart, data.wallet_amount))
    amounts = domain.pay(due, [t for t, _ in asked])
    out = []
    for (tender, meta), amount in zip(asked, amounts, strict=True):
        if (
            amount
            and "accounts" in meta
            and not _hold(session, sid, tender, meta, amount, cart.now)
        ):
            rejected.append(
                {
                    "code": tender.code or tender.source,
                    "reason": "insufficient_balance",
                    "detail": "the balance changed; evaluate again",
                }
            )
            amount = 0
        if amount:
            out.append(
                {
                    **meta,
                    "source": tender.source,
                    "ref": tender.ref,
                    "code": tender.code,
                    "amount": amount,
                }
            )
    return out


def _points(
    session: Session, cart: resolve.Cart, data: CheckoutIn, due: int
) -> tuple[domain.Tender, dict[str, Any]]:
    if not cart.loyalty.installed:
        raise NoLoyalty(
            "this shop has no loyalty programme: points cannot be burned", field="points"
        )
    if cart.customer is None:
        raise StateConflict("an unknown customer has no points", field="points")
    available = cart.loyalty.available_points(session, cart.customer, cart.now)
    if data.points > available:
        raise StateConflict(
            f"only {available} points are available", field="points", available=available
        )
    per_100, currency = cart.loyalty.point_value(session, cart.caller.programme_id)
    if currency != data.currency:
        raise StateConflict(f"points are worth {currency}, not {data.currency}", field="points")
    used, money = domain.points_for(due, data.points, per_100)
    return domain.Tender("points", "points", money, money), {"points": used}


def _gift_cards(
    session: Session, cart: resolve.Cart, data: CheckoutIn, rejected: list[dict[str, Any]]
) -> list[tuple[domain.Tender, dict[str, Any]]]:
    """The gift cards typed, looked up at once; counted against the lookup limit like coupon
    codes (a card code is guessable the same way)."""
    rate_keys = ratelimit.keys(cart.caller, cart.customer_ref)
    limit = cart.cfg.failed_lookups_per_minute
    typed = [(use, *domain.check_code(use.code)) for use in data.gift_cards]
    with ratelimit.lookups(session, rate_keys, cart.now, len(typed), limit) as tally:
        norms = [norm for _, norm, bad in typed if not bad]
        cards = giftcards.find(session, cart.caller.merchant_id, norms)
        tally.found = sum(1 for _, norm, bad in typed if not bad and norm in cards)
    asked = []
    for use, norm, bad in typed:
        card = None if bad else cards.get(norm)
        asked.extend(_gift_card(session, cart, use.code, use.amount, card, bad, rejected))
    return asked


def _gift_card(
    session: Session,
    cart: resolve.Cart,
    raw: str,
    amount: int,
    card: GiftCard | None,
    bad: str | None,
    rejected: list[dict[str, Any]],
) -> list[tuple[domain.Tender, dict[str, Any]]]:
    reason = bad or giftcards.refusal(card, cart.shopper.currency, cart.now)
    if reason is None and card is not None:
        bal = giftcards.account_of(session, card, cart.now)
        if bal.main.balance > 0:
            tender = domain.Tender(
                "gift_card",
                f"gift_card:{card.id}",
                amount,
                bal.main.balance,
                code=raw.strip().upper(),
            )
            return [(tender, {"accounts": [bal.main.id, bal.held.id, bal.spent.id]})]
        reason = "insufficient_balance"
    rejected.append({"code": raw, "reason": reason, "detail": f"gift card: {reason}"})
    return []


def _wallet(
    session: Session, cart: resolve.Cart, amount: int
) -> tuple[domain.Tender, dict[str, Any]]:
    if cart.customer is None:
        raise StateConflict("an unknown customer has no wallet", field="wallet_amount")
    bal = wallet.account_of(session, cart.customer, cart.shopper.currency, cart.now)
    tender = domain.Tender("wallet", "wallet", amount, bal.main.balance)
    return tender, {"accounts": [bal.main.id, bal.held.id, bal.spent.id]}


def _hold(
    session: Session, sid: str, t: domain.Tender, meta: dict[str, Any], amount: int, now: datetime
) -> bool:
    return shift(
        session, meta["accounts"], "main", "held", amount, f"checkout:{sid}:hold:{t.ref}", now
    )


def shift(
    session: Session, ids: list[int], src: str, dst: str, amount: int, key: str, now: datetime
) -> bool:
    """Move money between two of a balance's accounts (``main``, ``held``, ``spent``); the
    posting's reason is the step named in ``key`` (``checkout:<id>:<step>:...``)."""
    bal = balances.by_ids(session, *ids)
    return balances.move(
        session,
        debit=getattr(bal, src),
        credit=getattr(bal, dst),
        amount=amount,
        source_key=key,
        reason=f"checkout.{key.split(':')[2]}",
        now=now,
    )


def _result(
    priced: domain.Priced,
    tenders: list[dict[str, Any]],
    rejected: list[dict[str, Any]],
    earned: int,
) -> dict[str, Any]:
    discounts = [
        {
            "source": a.offer.source,
            "code": a.offer.code,
            "amount": a.amount,
            "ref": a.offer.ref,
            "name": a.offer.name,
            "lines": a.lines,
            "shipping": a.shipping,
        }
        for a in priced.applied
    ]
    paid = sum(t["amount"] for t in tenders)
    return {
        "subtotal": priced.subtotal,
        "shipping": priced.shipping,
        "discounts": discounts,
        "tenders": tenders,
        "rejected_codes": rejected,
        "discount_total": priced.discount,
        "points_used": sum(t.get("points", 0) for t in tenders),
        "points_earned": earned,
        "total": priced.due - paid,
    }


def get(
    session: Session, caller: Caller, session_id: str, *, lock: bool = False
) -> CheckoutSession:
    row = SessionRepository(session).for_merchant(caller.merchant_id, session_id, lock=lock)
    if row is None:
        raise NotFound(f"checkout session {session_id!r} not found")
    return row


def confirm(
    session: Session,
    caller: Caller,
    session_id: str,
    order_ref: str,
    now: datetime,
    *,
    loyalty: LoyaltyPort = default_loyalty,
) -> CheckoutSession:
    """Consume everything the session's result uses, for the shop's order ``order_ref``.

    The same confirm again returns the same session; another order id gets a 409, as does a
    cancelled or expired session or a code whose limit was reached since evaluate."""
    row = get(session, caller, session_id, lock=True)
    if row.status == "confirmed":
        if row.order_ref == order_ref:
            return row
        raise SessionAlreadyConfirmed(f"session was confirmed for order {row.order_ref!r}")
    if row.status != "open" or row.expires_at <= now:
        raise SessionClosed(
            f"checkout session is {'expired' if row.status == 'open' else row.status}"
        )
    if SessionRepository(session).by_order_ref(caller.merchant_id, order_ref) is not None:
        raise SessionAlreadyConfirmed(f"order {order_ref!r} was confirmed by another session")
    row.status, row.order_ref, row.closed_at = "confirmed", order_ref, now
    used = holds.end(session, row, used=True)  # held uses become uses
    for d in row.result["discounts"]:
        _consume(session, row, d, now, loyalty, used)
    for t in row.result["tenders"]:
        _capture(session, row, t, now, loyalty)
    session.flush()
    return row


def _redeem(
    session: Session,
    row: CheckoutSession,
    kind: str,
    ref: str,
    code: str | None,
    amount: int,
    now: datetime,
) -> None:
    session.add(
        Redemption(
            session_id=row.id,
            merchant_id=row.merchant_id,
            customer_id=row.customer_id,
            kind=kind,
            ref=ref,
            code=code,
            amount=amount,
            order_ref=row.order_ref or "",
            api_key_id=row.api_key_id,
            created_at=now,
        )
    )


def _consume(
    session: Session,
    row: CheckoutSession,
    d: dict[str, Any],
    now: datetime,
    loyalty: LoyaltyPort,
    held: set[int],
) -> None:
    if d["source"] == "coupon":
        _take_coupon(session, row, int(d["ref"].split(":")[1]), d["code"], held)
    elif d["source"] == "reward":
        voucher = loyalty.find_voucher(session, row.programme_id, d["code"])
        if voucher is None:
            raise CouponNotRedeemable(
                f"reward {d['code']} is no longer available", reason="unknown"
            )
        loyalty.use_voucher(session, voucher, order_ref=row.order_ref or "", now=now)
    _redeem(session, row, d["source"], d["ref"], d["code"], d["amount"], now)


def _take_coupon(
    session: Session, row: CheckoutSession, coupon_id: int, code: str, held: set[int]
) -> None:
    repo = CouponRepository(session)
    if coupon_id not in held and not repo.take_use(coupon_id):
        raise CouponNotRedeemable(
            f"code {code} reached its usage limit", reason="usage_limit_reached"
        )
    coupon = repo.get(coupon_id)
    limit = coupon.per_customer_limit if coupon else None
    if limit is not None and row.customer_id is not None:
        if not repo.take_customer_use(coupon_id, row.customer_id, limit):
            raise CouponNotRedeemable(
                f"code {code} was already used by this customer", reason="customer_limit_reached"
            )


def _capture(
    session: Session, row: CheckoutSession, t: dict[str, Any], now: datetime, loyalty: LoyaltyPort
) -> None:
    if t["source"] == "points":
        customer = session.get(Customer, row.customer_id)
        loyalty.burn_points(
            session,
            customer=customer,
            points=t["points"],
            source_key=f"checkout:{row.id}:points",
            now=now,
            merchant_id=row.merchant_id,
        )
    else:
        key = f"checkout:{row.id}:capture:{t['ref']}"
        shift(session, t["accounts"], "held", "spent", t["amount"], key, now)
    _redeem(session, row, t["source"], t["ref"], t.get("code"), t["amount"], now)


def cancel(session: Session, caller: Caller, session_id: str, now: datetime) -> CheckoutSession:
    """Release an open session's holds; cancelling again changes nothing."""
    row = get(session, caller, session_id, lock=True)
    if row.status == "confirmed":
        raise SessionClosed("a confirmed session cannot be cancelled; refund the order instead")
    if row.status == "open":
        _release(session, row, "cancelled", now)
    return row


def _release(session: Session, row: CheckoutSession, status: str, now: datetime) -> None:
    holds.end(session, row, used=False)
    for t in row.result.get("tenders", []):
        if "accounts" in t:
            key = f"checkout:{row.id}:release:{t['ref']}"
            shift(session, t["accounts"], "held", "main", t["amount"], key, now)
    row.status, row.closed_at = status, now


def expire_due(session: Session, now: datetime, *, limit: int = 500) -> int:
    """Expire open sessions past their time and release their holds (the ``expire`` job)."""
    repo = SessionRepository(session)
    done = 0
    for sid in repo.expired_ids(now, limit):
        row = repo.locked(sid)
        if row is not None and row.status == "open" and row.expires_at <= now:
            _release(session, row, "expired", now)
            done += 1
    return done


def restore_on_refund(
    session: Session,
    merchant_id: int,
    payload: dict[str, Any],
    now: datetime,
    *,
    loyalty: LoyaltyPort = default_loyalty,
) -> int:
    """Give gift cards and the wallet their share of a refund of an order paid with them."""
    row = SessionRepository(session).by_order_ref(merchant_id, str(payload.get("order_id")))
    if row is None or row.status != "confirmed":
        return 0
    total, after = int(payload["order_total"]), int(payload["refunded_total"])
    before = after - int(payload["amount"])
    tenders = row.result["tenders"]
    shares = domain.refund_shares([t["amount"] for t in tenders], total, before, after)
    for t, share in zip(tenders, shares, strict=True):
        _restore(session, row, t, share, str(payload["refund_id"]), now)
    if after >= total and any(t["source"] == "points" for t in tenders):
        loyalty.refund_burn(session, source_key=f"checkout:{row.id}:points", now=now)
    return sum(shares)


def _restore(
    session: Session,
    row: CheckoutSession,
    t: dict[str, Any],
    share: int,
    refund_id: str,
    now: datetime,
) -> None:
    if share <= 0 or "accounts" not in t:
        return
    key = f"checkout:{row.id}:refund:{refund_id}:{t['ref']}"
    shift(session, t["accounts"], "spent", "main", share, key, now)


def view(row: CheckoutSession) -> CheckoutOut:
    r = row.result
    discounts = [
        DiscountOut(**{k: d[k] for k in ("source", "code", "amount", "name", "lines", "shipping")})
        for d in r["discounts"]
    ]
    discounts += [
        DiscountOut(source=t["source"], code=t.get("code"), amount=t["amount"])
        for t in r["tenders"]
    ]
    return CheckoutOut(
        session_id=row.id,
        status=row.status,
        currency=row.currency,
        subtotal=r["subtotal"],
        shipping=r["shipping"],
        discounts=discounts,
        rejected_codes=[RejectedOut(**x) for x in r["rejected_codes"]],
        discount_total=r["discount_total"],
        points_used=r["points_used"],
        points_earned=r["points_earned"],
        total=r["total"],
        expires_at=row.expires_at,
        order_id=row.order_ref,
    )


def redemptions(session: Session, caller: Caller, session_id: str) -> Sequence[Redemption]:
    return SessionRepository(session).redemptions(get(session, caller, session_id).id)
