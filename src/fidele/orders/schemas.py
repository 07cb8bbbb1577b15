from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from fidele.kit.schemas import (
    Currency,
    Email,
    ExternalId,
    InputModel,
    Minor,
    OutputModel,
    UtcDatetime,
)


class LineIn(InputModel):
    """``line_id`` is the shop's id of the line (variants of one product are distinct lines);
    ``tax`` is the tax on this line after its discounts, inside ``unit_price`` when the order's
    ``prices_include_tax``, on top of it otherwise."""

    product_id: str = Field(min_length=1, max_length=255)
    line_id: str | None = Field(None, min_length=1, max_length=255)
    variant_id: str | None = Field(None, max_length=255)
    name: str | None = Field(None, max_length=500)
    category: str | None = Field(None, max_length=255)
    quantity: int = Field(gt=0, le=1_000_000)
    unit_price: Minor
    type: Literal["product", "gift_card", "service"] = "product"
    tax: Minor | None = None


class OrderIn(InputModel):
    """``total`` must equal sum(quantity * unit_price) - discounts + shipping + tax +
    adjustment, where tax counts 0 when ``prices_include_tax`` (it is inside the prices, and
    still stored). ``adjustment`` is what the shop's total holds beyond those (duties, tips,
    rounding of per-unit prices): recorded as a discrepancy, never folded into discounts or
    tax. ``payment_status`` "pending" (unpaid cash on delivery, check, transfer) earns nothing
    until the order is paid, unless the programme earns on placement."""

    id: ExternalId
    customer_id: ExternalId
    placed_at: UtcDatetime
    currency: Currency
    lines: list[LineIn] = Field(min_length=1, max_length=1000)
    shipping: Minor = 0
    discounts: Minor = 0
    tax: Minor = 0
    prices_include_tax: bool = False
    adjustment: int = Field(0, ge=-(10**15), le=10**15)
    total: Minor
    payment_status: Literal["pending", "paid"] = "paid"
    paid_at: UtcDatetime | None = Field(None, description="when paid (default: placed_at)")
    channel: str | None = Field(None, max_length=50)
    email: Email | None = Field(None, description="guest checkout email")
    codes: list[str] = Field(default_factory=list, max_length=20)
    attributes: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _adds_up(self) -> OrderIn:
        subtotal = sum(line.quantity * line.unit_price for line in self.lines)
        if self.discounts > subtotal + self.shipping:
            raise ValueError("discounts exceed the order amount")
        tax = 0 if self.prices_include_tax else self.tax
        expected = subtotal - self.discounts + self.shipping + tax + self.adjustment
        if expected != self.total:
            raise ValueError(
                f"total {self.total} does not add up: lines {subtotal} - discounts "
                f"{self.discounts} + shipping {self.shipping} + tax {tax} + adjustment "
                f"{self.adjustment} = {expected}"
            )
        ids = [ln.line_id for ln in self.lines if ln.line_id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("two lines have the same line_id")
        return self


class StatusIn(InputModel):
    """``paid`` records the payment of a pending order (its fulfilment status stays)."""

    status: Literal["paid", "shipped", "delivered", "cancelled"]
    occurred_at: UtcDatetime | None = None


class RefundLineIn(InputModel):
    """A line by the shop's ``line_id`` or, for orders sent without line ids, by product."""

    product_id: str | None = Field(None, min_length=1, max_length=255)
    line_id: str | None = Field(None, min_length=1, max_length=255)
    quantity: int = Field(gt=0, le=1_000_000)

    @model_validator(mode="after")
    def _keyed(self) -> RefundLineIn:
        if (self.product_id is None) == (self.line_id is None):
            raise ValueError("give either line_id or product_id")
        return self


class RefundIn(InputModel):
    """Give ``amount``, or ``lines`` (refunded at their net price), or neither for the rest of
    the order; ``shipping`` adds a shipping refund to lines."""

    id: ExternalId
    amount: int | None = Field(None, gt=0, le=10**15)
    lines: list[RefundLineIn] | None = Field(None, min_length=1, max_length=1000)
    shipping: Minor = 0
    reason: str | None = Field(None, max_length=500)
    occurred_at: UtcDatetime | None = None

    schema_rules = (
        {
            "not": {
                "properties": {"amount": {"type": "integer"}, "lines": {"type": "array"}},
                "required": ["amount", "lines"],
            }
        },
    )

    @model_validator(mode="after")
    def _one_way(self) -> RefundIn:
        if self.amount is not None and self.lines is not None:
            raise ValueError("give either amount or lines, not both")
        return self


class LineOut(OutputModel):
    product_id: str
    line_id: str | None
    variant_id: str | None
    name: str | None
    category: str | None
    quantity: int
    unit_price: int
    type: str
    discount: int
    tax: int | None
    refunded_quantity: int


class RefundOut(OutputModel):
    id: str
    amount: int
    lines: list[dict[str, Any]]
    reason: str | None
    occurred_at: UtcDatetime


class OrderOut(OutputModel):
    id: str
    customer_id: str
    placed_at: UtcDatetime
    currency: str
    lines: list[LineOut]
    subtotal: int
    shipping: int
    discounts: int
    tax: int
    prices_include_tax: bool
    adjustment: int = Field(
        description="what the total holds beyond lines, discounts, "
        "shipping and tax: non-zero when the shop's figures do not add up"
    )
    total: int
    refunded_total: int
    status: str
    payment_status: str
    paid_at: UtcDatetime | None
    channel: str | None
    shipped_at: UtcDatetime | None
    delivered_at: UtcDatetime | None
    cancelled_at: UtcDatetime | None
    refunds: list[RefundOut]
    attributes: dict[str, Any]
    created_at: UtcDatetime
    updated_at: UtcDatetime
    # Filled by the loyalty domain when it is installed: points this order earned.
    loyalty: dict[str, Any] | None = None
