"""A known member's order: what the earning costs in statements (the orders → points path)."""

from __future__ import annotations

from sqlalchemy import event

from tests.loyalty.conftest import Shop


def _traced(shop: Shop, oid: str) -> list[str]:
    seen: list[str] = []
    conn = shop.session.connection()
    listener = lambda *a: seen.append(" ".join(a[2].split()))  # noqa: E731
    event.listen(conn, "before_cursor_execute", listener)
    try:
        shop.order(oid, amount=1_000)
    finally:
        event.remove(conn, "before_cursor_execute", listener)
    return seen


def test_known_members_order_reads_member_and_accounts_once(shop: Shop) -> None:
    shop.order("o1", amount=1_000)
    before = shop.summary()["pending"]
    shop.clock.advance(minutes=1)
    shop.session.commit()  # a new transaction: nothing remembered from the first order
    seen = _traced(shop, "o2")
    assert not [q for q in seen if q.startswith("SAVEPOINT")]
    assert not [q for q in seen if q.startswith("SELECT") and " FROM ledger_accounts " in q]
    lots = [q for q in seen if q.startswith("SELECT loyalty_lots.")]
    assert len(lots) == 2  # the catch-up's due lots; the order's own lot and "first order?"
    # customer, order, event, lines, member + accounts, scale, 2 lot reads, posting, 2
    # balances, entries, lot, member, tier window: 15 (20 before, 25 in 2026-11); then the
    # customer's running journeys (an order may reach their goal) and the segments' dirty
    # mark; the attribution of the order to a message clicked or opened: 18; the segments'
    # order facts (one upsert): 19. The merchant's event-triggered flows and conversion
    # windows come from per-process caches.
    assert len(seen) <= 19, "\n".join(seen)
    assert not [q for q in seen if q.startswith(("SELECT flows.", "SELECT messaging_measurement"))]
    assert shop.summary()["pending"] == before + 10  # 1 point per euro, no first-order bonus
