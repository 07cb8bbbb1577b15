"""Money is an integer of minor units plus an ISO 4217 code; rates are basis points (1/100 %).

One rounding helper (:func:`mul_bp`) and one splitter (:func:`allocate`) serve the whole code
base, so parts always add up to their total."""

from __future__ import annotations

from collections.abc import Sequence

_CODES = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN "
    "BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN "
    "ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD "
    "JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT "
    "MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG "
    "QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT "
    "TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF "
    "XPF YER ZAR ZMW ZWG"
).split()
_EXPONENT_EXCEPTIONS = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}
CURRENCIES: dict[str, int] = {c: _EXPONENT_EXCEPTIONS.get(c, 2) for c in _CODES}
# The largest amount fidele takes (10^13 EUR): far above any order, far below the 64-bit columns
# once summed over an order's lines, so no sum of valid amounts can overflow the database.
MAX_MINOR = 10**15


def is_currency(code: str) -> bool:
    return code in CURRENCIES


def minor_units(code: str) -> int:
    """Number of decimals of the currency (EUR 2, JPY 0, KWD 3)."""
    return CURRENCIES[code]


def unit(code: str) -> int:
    """Minor units in one major unit (EUR 100, JPY 1)."""
    return 10 ** CURRENCIES[code]


def div_round(numerator: int, denominator: int) -> int:
    """Integer division rounded half away from zero (the one rounding rule of fidele)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    q, r = divmod(abs(numerator), denominator)
    if 2 * r >= denominator:
        q += 1
    return q if numerator >= 0 else -q


def mul_bp(amount: int, bp: int) -> int:
    """``amount * bp / 10_000`` rounded half away from zero, in integers (no float drift)."""
    return div_round(amount * bp, 10_000)


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` by largest remainder; parts sum to ``total``.

    Ties in remainders go to the earliest weight, so the split is deterministic."""
    if not weights:
        return []
    wsum = sum(weights)
    if wsum == 0:
        parts = [0] * len(weights)
        parts[0] = total
        return parts
    sign = -1 if total < 0 else 1
    t = abs(total)
    raw = [(t * w, i) for i, w in enumerate(weights)]
    parts = [q // wsum for q, _ in raw]
    left = t - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(raw[i][0] % wsum), i))
    for i in order[:left]:
        parts[i] += 1
    return [sign * p for p in parts]
