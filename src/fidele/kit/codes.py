"""Codes for coupons, gift cards, vouchers and referrals.

A generated code is 11 random symbols (55 bits) of Crockford's base-32 alphabet plus one Luhn
mod-32 check symbol, shown in groups of four: ``7KQM-3XWA-9PZ4``. Input is case-insensitive,
ignores spaces and dashes, and reads O as 0 and I/L as 1, so a code read aloud or retyped still
matches; a single wrong symbol, or a swap of two neighbours (all but 0<->Z, the one pair Luhn mod N
cannot see), fails the check before any lookup."""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})
RANDOM_SYMBOLS = 11


def normalise(code: str) -> str:
    """Upper-case, drop separators and map look-alike letters."""
    return "".join(code.split()).replace("-", "").upper().translate(_ALIASES)


def check_symbol(body: str) -> str:
    """Luhn mod N over the alphabet: every single substitution, every adjacent swap but 0/Z."""
    n = len(ALPHABET)
    total, factor = 0, 2
    for ch in reversed(body):
        addend = factor * _INDEX[ch]
        addend = addend // n + addend % n
        total += addend
        factor = 1 if factor == 2 else 2
    return ALPHABET[(n - total % n) % n]


def generate(prefix: str = "", symbols: int = RANDOM_SYMBOLS) -> str:
    """A new random code with its check symbol, grouped by four, after an optional prefix."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(symbols))
    full = body + check_symbol(body)
    grouped = "-".join(full[i : i + 4] for i in range(0, len(full), 4))
    return f"{prefix}{grouped}"


def is_well_formed(code: str, prefix: str = "") -> bool:
    """True when ``code`` (after normalisation, without ``prefix``) passes its check symbol."""
    norm = normalise(code)
    p = normalise(prefix)
    if p and not norm.startswith(p):
        return False
    body = norm[len(p) :]
    if len(body) < 2 or any(c not in _INDEX for c in body):
        return False
    return check_symbol(body[:-1]) == body[-1]
