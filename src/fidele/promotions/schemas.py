from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from fidele.kit.schemas import (
    INT32,
    Currency,
    Email,
    ExternalId,
    InputModel,
    Minor,
    OutputModel,
    UtcDatetime,
    required_in,
    when,
)
from fidele.promotions.domain import Conditions, Kind


class _OfferIn(InputModel):
    name: str | None = Field(None, max_length=200)
    kind: Kind
    value: int = Field(0, ge=0, le=10**15, description="minor units, or basis points if percent")
    cap: Minor | None = Field(None, description="maximum discount of a percent_off")
    product_id: str | None = Field(None, max_length=255, description="free_product: which")
    priority: int = Field(0, ge=-1000, le=1000)
    exclusive: bool = False
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = Field(None, description="after starts_at (422 otherwise)")
    conditions: Conditions = Field(default_factory=Conditions)

    # ends_at > starts_at cannot be said in JSON Schema; it is in the field descriptions.
    schema_rules = (
        when("kind", "percent_off", required_in("value", minimum=1, maximum=10_000)),
        when("kind", "amount_off", required_in("value", minimum=1)),
    )

    @model_validator(mode="after")
    def _coherent(self) -> _OfferIn:
        if self.kind == "percent_off" and not 0 < self.value <= 10_000:
            raise ValueError("percent_off value is in basis points, 1 to 10000")
        if self.kind == "amount_off" and self.value <= 0:
            raise ValueError("amount_off value must be positive (minor units)")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class CouponIn(_OfferIn):
    code: str | None = Field(None, min_length=3, max_length=40)
    usage_limit: int | None = Field(None, ge=1, le=INT32)
    per_customer_limit: int | None = Field(None, ge=1, le=INT32)

    schema_rules = (
        *_OfferIn.schema_rules,
        when("kind", "free_product", required_in("product_id", type="string", minLength=1)),
    )

    @model_validator(mode="after")
    def _free_product(self) -> CouponIn:
        if self.kind == "free_product" and not self.product_id:
            raise ValueError("a free_product coupon names its product_id")
        return self


class BatchIn(_OfferIn):
    count: int = Field(ge=1, le=10_000)
    usage_limit: int = Field(
        1, ge=1, le=INT32, description="uses of each code (single-use by default)"
    )
    per_customer_limit: int | None = Field(None, ge=1, le=INT32)


class PromotionIn(_OfferIn):
    """An automatic promotion, applied with no code when its conditions hold. ``rule``:
    ``buy_x_get_y`` (buy ``buy``, get ``get`` of the cheapest eligible units free),
    ``cheapest_free`` (the cheapest unit free from ``buy`` units), or none: a plain
    percent/amount/free shipping, or a gift with purchase (``free_product`` + ``min_subtotal``)."""

    rule: Literal["buy_x_get_y", "cheapest_free"] | None = None
    buy: int = Field(0, ge=0, le=1000)
    get: int = Field(0, ge=0, le=1000)

    schema_rules = (
        *_OfferIn.schema_rules,
        {
            "if": {"properties": {"rule": {"type": "string"}}, "required": ["rule"]},
            "then": {"properties": {"kind": {"const": "free_product"}}},
        },
        when(
            "rule",
            "buy_x_get_y",
            {
                "properties": {"buy": {"minimum": 1}, "get": {"minimum": 1}},
                "required": ["buy", "get"],
            },
        ),
        {
            "if": {
                "properties": {"kind": {"const": "free_product"}, "rule": {"type": "null"}},
                "required": ["kind"],
            },
            "then": required_in("product_id", type="string", minLength=1),
        },
    )

    @model_validator(mode="after")
    def _rule(self) -> PromotionIn:
        if self.rule is not None and self.kind != "free_product":
            raise ValueError("rules give products: kind must be free_product")
        if self.rule == "buy_x_get_y" and (self.buy < 1 or self.get < 1):
            raise ValueError("buy_x_get_y needs buy >= 1 and get >= 1")
        if self.kind == "free_product" and self.rule is None and not self.product_id:
            raise ValueError("a gift with purchase names its product_id")
        return self


class CouponOut(OutputModel):
    id: int
    code: str | None
    name: str | None
    kind: str
    value: int
    cap: int | None
    product_id: str | None
    rule: str | None
    priority: int
    exclusive: bool
    automatic: bool
    conditions: dict[str, Any]
    schedule: list[Any] | None
    starts_at: UtcDatetime | None
    ends_at: UtcDatetime | None
    usage_limit: int | None
    per_customer_limit: int | None
    used_count: int
    held_count: int = 0  # uses held by open checkout sessions
    batch: str | None
    origin: str
    status: str
    text: str | None = None

    @classmethod
    def of(cls, coupon: Any) -> CouponOut:
        """The coupon as the API shows it: its code as it was typed or generated."""
        out = cls.model_validate(coupon)
        out.code = coupon.display_code
        return out


class BatchOut(OutputModel):
    batch: str
    count: int
    codes: list[str]


class GiftCardIn(InputModel):
    amount: int = Field(gt=0, le=10**12)
    currency: Currency
    recipient_email: Email | None = None
    message: str | None = Field(None, max_length=1000)


class GiftCardOut(OutputModel):
    id: int
    code: str | None = Field(None, description="shown once, at creation")
    last4: str
    currency: str
    initial_amount: int
    balance: int
    expires_at: UtcDatetime | None
    status: str


class CartLineIn(InputModel):
    product_id: str = Field(min_length=1, max_length=255)
    name: str | None = Field(None, max_length=500)
    category: str | None = Field(None, max_length=255)
    quantity: int = Field(gt=0, le=100_000)
    unit_price: Minor


class GiftCardUse(InputModel):
    code: str = Field(min_length=1, max_length=60)
    amount: int = Field(gt=0, le=10**12)


class CheckoutIn(InputModel):
    customer_id: ExternalId
    currency: Currency
    lines: list[CartLineIn] = Field(min_length=1, max_length=500)
    shipping: Minor = 0
    codes: list[str] = Field(default_factory=list, max_length=10)
    points: int = Field(0, ge=0, le=10**12)
    gift_cards: list[GiftCardUse] = Field(default_factory=list, max_length=10)
    wallet_amount: Minor = 0
    channel: str | None = Field(None, max_length=50)


class DiscountOut(OutputModel):
    source: str
    code: str | None
    amount: int
    name: str | None = None
    lines: list[int] | None = Field(None, description="share of each cart line")
    shipping: int = 0


class RejectedOut(OutputModel):
    code: str
    reason: str
    detail: str | None = None


class CheckoutOut(OutputModel):
    session_id: str
    status: str
    currency: str
    subtotal: int
    shipping: int
    discounts: list[DiscountOut]
    rejected_codes: list[RejectedOut]
    discount_total: int
    points_used: int
    points_earned: int
    total: int
    expires_at: UtcDatetime
    order_id: str | None = None


class ConfirmIn(InputModel):
    order_id: ExternalId


class InvitationIn(InputModel):
    customer_id: ExternalId
    email: str = Field(
        min_length=3, max_length=320, pattern=r"^[^@ \t\n\r\f\v\x00]+@[^@ \t\n\r\f\v\x00]+$"
    )


class ReferralOut(OutputModel):
    customer_id: str
    code: str
    link: str
    stats: dict[str, int]


class WalletOut(OutputModel):
    customer_id: str
    currency: str
    balance: int
