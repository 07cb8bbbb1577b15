"""Pure order arithmetic: discount shares per line, refund amounts, status transitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fidele.kit.money import allocate, div_round

# Which status may follow which (payment is apart: ``payment_status`` pending -> paid).
# Cancelling a delivered order is a refund, not a cancellation.
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


def tax_free_amounts(
    net_amounts: Sequence[int],
    line_taxes: Sequence[int | None],
    *,
    tax: int,
    shipping: int,
    prices_include_tax: bool,
) -> list[int]:
    """Line amounts after discounts without the tax inside them. Tax-exclusive prices are
    already tax-free; tax-inclusive ones lose their own tax, or, when the shop did not give
    it per line, their share of the order's tax spread over the lines and the shipping."""
    if not prices_include_tax:
        return list(net_amounts)
    if all(t is not None for t in line_taxes):
        return [a - min(int(t or 0), a) for a, t in zip(net_amounts, line_taxes, strict=True)]
    shares = allocate(tax, [*net_amounts, shipping])[: len(net_amounts)]
    return [a - min(s, a) for a, s in zip(net_amounts, shares, strict=True)]


@dataclass(frozen=True)
class LineState:
    product_id: str
    quantity: int
    refunded_quantity: int
    net_amount: int  # quantity * unit_price - discount share
    line_id: str | None = None


def refund_for_lines(
    lines: Sequence[LineState], wanted: Sequence[tuple[str | None, str | None, int]]
) -> tuple[int, list[dict[str, int | str]]]:
    """Amount to refund for ``(line_id, product_id, quantity)`` triples (one of the ids set),
    at each line's net unit price. A line id names one line; a product id the lines of that
    product in order.

    Raises ``ValueError`` naming the line or product when more is asked than remains."""
    remaining = {i: ln.quantity - ln.refunded_quantity for i, ln in enumerate(lines)}
    amount, taken = 0, []
    for line_id, product_id, qty in wanted:
        left = qty
        for i, ln in enumerate(lines):
            same = ln.line_id == line_id if line_id is not None else ln.product_id == product_id
            if not same or left == 0 or remaining[i] == 0:
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
            row: dict[str, int | str] = {"line": i, "product_id": ln.product_id, "quantity": q}
            if ln.line_id is not None:
                row["line_id"] = ln.line_id
            taken.append(row)
        if left:
            what = f"line {line_id!r}" if line_id is not None else f"product {product_id!r}"
            raise ValueError(f"{what}: {qty} to refund but fewer remain")
    return amount, taken
