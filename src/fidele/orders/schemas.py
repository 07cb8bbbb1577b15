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
    product_id: str = Field(min_length=1, max_length=255)
    name: str | None = Field(None, max_length=500)
    category: str | None = Field(None, max_length=255)
    quantity: int = Field(gt=0, le=1_000_000)
    unit_price: Minor
    type: Literal["product", "gift_card", "service"] = "product"


class OrderIn(InputModel):
    """``total`` must equal sum(quantity * unit_price) - discounts + shipping + tax."""

    id: ExternalId
    customer_id: ExternalId
    placed_at: UtcDatetime
    currency: Currency
    lines: list[LineIn] = Field(min_length=1, max_length=1000)
    shipping: Minor = 0
    discounts: Minor = 0
    tax: Minor = 0
    total: Minor
    channel: str | None = Field(None, max_length=50)
    email: Email | None = Field(None, description="guest checkout email")
    codes: list[str] = Field(default_factory=list, max_length=20)
    attributes: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _adds_up(self) -> OrderIn:
        subtotal = sum(line.quantity * line.unit_price for line in self.lines)
        if self.discounts > subtotal + self.shipping:
            raise ValueError("discounts exceed the order amount")
        expected = subtotal - self.discounts + self.shipping + self.tax
        if expected != self.total:
            raise ValueError(
                f"total {self.total} does not add up: lines {subtotal} - discounts "
                f"{self.discounts} + shipping {self.shipping} + tax {self.tax} = {expected}"
            )
        return self


class StatusIn(InputModel):
    status: Literal["shipped", "delivered", "cancelled"]
    occurred_at: UtcDatetime | None = None


class RefundLineIn(InputModel):
    product_id: str = Field(min_length=1, max_length=255)
    quantity: int = Field(gt=0, le=1_000_000)


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
    name: str | None
    category: str | None
    quantity: int
    unit_price: int
    type: str
    discount: int
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
    total: int
    refunded_total: int
    status: str
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
