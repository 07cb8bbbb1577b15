"""Conversions of what shops send (decimal strings, naive GMT times) into fidele's units.

Shops send money as decimal strings ("19.90"); fidele stores integer minor units. The conversion
goes through :class:`~decimal.Decimal`, never float, so "0.10" is 10 cents exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from fidele.errors import InvalidInput
from fidele.kit.money import MAX_MINOR, is_currency, minor_units


def to_minor(value: Any, currency: str, *, field: str = "amount") -> int:
    """``"19.90"`` EUR -> 1990; rounds half away from zero beyond the currency's decimals.

    Anything that is not a finite decimal of at most :data:`MAX_MINOR` minor units ("abc", "NaN",
    "1e30") is an :class:`InvalidInput` naming ``field``."""
    if value is None or value == "":
        return 0
    if not is_currency(currency):
        raise InvalidInput(f"unknown ISO 4217 currency {currency!r}", field="currency")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise InvalidInput(f"{value!r} is not a decimal amount", field=field) from exc
    if not amount.is_finite():
        raise InvalidInput(f"{value!r} is not a decimal amount", field=field)
    decimals = minor_units(currency)
    # Compared before any arithmetic: "1e30" would overflow the decimal context's 28 digits.
    if amount.copy_abs() > Decimal(MAX_MINOR).scaleb(-decimals):
        raise InvalidInput(
            f"{str(value)[:40]!r} is out of range (at most {MAX_MINOR} minor units)", field=field
        )
    # One rounding, from the exact input to the currency's decimals; scaleb is then exact.
    rounded = amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return int(rounded.scaleb(decimals))


def parse_time(value: Any, *, naive_is_utc: bool = False, field: str = "placed_at") -> datetime:
    """An ISO 8601 time with its zone, as aware UTC. ``naive_is_utc`` accepts zone-less values
    from fields documented as GMT (WooCommerce's ``*_gmt``, PrestaShop after conversion)."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace(" UTC", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(f"{value!r} is not an ISO 8601 time", field=field) from exc
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise InvalidInput(f"{value!r} has no timezone", field=field)
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def order_amounts(
    lines_total: int,
    *,
    discounts: int,
    shipping: int,
    tax: int,
    total: int,
    prices_include_tax: bool = False,
    rounding: int = 0,
) -> dict[str, int]:
    """``shipping/discounts/tax/adjustment/total`` for an order, made to satisfy ``OrderIn``'s
    rule ``lines - discounts + shipping + tax + adjustment == total`` (tax counted 0 when it is
    inside the prices).

    ``rounding`` is what per-unit prices lost against the shop's line amounts (a line of 3 for
    10.00 is 3 x 3.33): that much of the residue is explained and goes to ``tax`` (up, when tax
    is counted) or ``discounts`` (down). The rest (duties, tips, anything fidele does not model)
    is the ``adjustment``, recorded as a discrepancy rather than hidden in discounts or tax;
    ``total`` (what was paid) is never changed."""
    counted = 0 if prices_include_tax else tax
    residue = total - (lines_total - discounts + shipping + counted)
    explained = 0
    if rounding < 0 < -residue:
        explained = max(rounding, residue)
    elif residue > 0 < rounding and not prices_include_tax:
        explained = min(rounding, residue)
    return {
        "shipping": shipping,
        "discounts": discounts - min(explained, 0),
        "tax": tax + max(explained, 0),
        "adjustment": residue - explained,
        "total": total,
    }
