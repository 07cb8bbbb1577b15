"""Pure order arithmetic: discount shares per line, refund amounts, status transitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fidele.kit.money import allocate, div_round

# Which status may follow which. Cancelling a delivered order is a refund, not a cancellation.
TRANSITIONS: dict[str, frozenset[str]] = {
    "placed": frozenset({"shipped", "delivered", "cancelled"}),
    "shipped": frozenset({"delivered", "cancelled"}),
    "delivered": frozenset(),
    "cancelled": frozenset(),
}


def can_move(current: str, new: str) -> bool:
    return new == current or new in TRANSITIONS.get(current, frozenset())


def line_discounts(amounts: Sequence[int], order_discount: int) -> list[int]:
    """Spread an order-level discount over lines in proportion to their amounts."""
    return allocate(order_discount, list(amounts))


@dataclass(frozen=True)
class LineState:
    product_id: str
    quantity: int
    refunded_quantity: int
    net_amount: int  # quantity * unit_price - discount share


def refund_for_lines(
    lines: Sequence[LineState], wanted: Sequence[tuple[str, int]]
) -> tuple[int, list[dict[str, int | str]]]:
    """Amount to refund for ``(product_id, quantity)`` pairs, at each line's net unit price.

    Raises ``ValueError`` naming the product when more is asked than remains."""
    remaining = {i: ln.quantity - ln.refunded_quantity for i, ln in enumerate(lines)}
    amount, taken = 0, []
    for product_id, qty in wanted:
        left = qty
        for i, ln in enumerate(lines):
            if ln.product_id != product_id or left == 0 or remaining[i] == 0:
                continue
            q = min(left, remaining[i])
            done = ln.quantity - remaining[i]
            # Cumulative rounding: refunding every unit, in any steps, gives back exactly the
            # line's net amount.
            before = div_round(ln.net_amount * done, ln.quantity)
            after = div_round(ln.net_amount * (done + q), ln.quantity)
            amount += after - before
            remaining[i] -= q
            left -= q
            taken.append({"line": i, "product_id": product_id, "quantity": q})
        if left:
            raise ValueError(f"product {product_id!r}: {qty} to refund but fewer remain")
    return amount, taken
