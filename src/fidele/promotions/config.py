"""A merchant's promotion settings, stored as JSON in ``promotion_settings`` with these defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fidele.kit.schemas import Int, StrictJsonModel


class NextOrder(StrictJsonModel):
    enabled: bool = False
    # [days, basis points]: 15% within 15 days, 10% within 30, 5% within 60, then expired.
    schedule: list[tuple[Int, Int]] = Field(
        default_factory=lambda: [(15, 1500), (30, 1000), (60, 500)]
    )
    min_subtotal: int = Field(0, ge=0)
    # Also email the coupon (through the outbox) to a customer who accepts marketing email.
    email: bool = True


class ReferralConfig(StrictJsonModel):
    enabled: bool = True
    # Welcome advantage of the referee on its first order.
    welcome_kind: Literal["percent_off", "amount_off"] = "amount_off"
    welcome_value: int = Field(1000, ge=0)
    # Reward of the referrer once the referee's first order passes its return window: store
    # credit (minor units), an amount-off coupon (minor units) or loyalty points (points).
    reward_kind: Literal["credit", "coupon", "points"] = "credit"
    reward_value: int = Field(1000, ge=0)
    monthly_cap: int = Field(10, ge=0)
    link_template: str = "https://shop.example/?ref={code}"


class PromotionConfig(StrictJsonModel):
    currency: str = "EUR"
    session_ttl_minutes: int = Field(30, ge=1, le=24 * 60)
    return_window_days: int = Field(14, ge=0, le=365)
    cashback_bp: int = Field(0, ge=0, le=10_000)
    gift_card_validity_days: int | None = Field(365, ge=1)
    failed_lookups_per_minute: int = Field(10, ge=1)
    shop_name: str = "our shop"
    next_order: NextOrder = Field(default_factory=NextOrder)
    referral: ReferralConfig = Field(default_factory=ReferralConfig)
