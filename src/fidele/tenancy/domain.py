"""Pure rules of tenancy: key format, hashing, scopes, derived webhook secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCOPES = ("read", "write", "admin")
KEY_PREFIX = "fdl"
# admin implies write implies read
_IMPLIED = {"admin": {"admin", "write", "read"}, "write": {"write", "read"}, "read": {"read"}}


def parse_scopes(raw: str | list[str]) -> list[str]:
    items = raw.split(",") if isinstance(raw, str) else raw
    scopes = sorted({s.strip() for s in items if s.strip()})
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(bad) or '-'}")
    return scopes


def grants(scopes: frozenset[str], needed: str) -> bool:
    return any(needed in _IMPLIED[s] for s in scopes if s in _IMPLIED)


def new_api_key() -> tuple[str, str]:
    """Return ``(prefix, full_key)``; the key is ``fdl_<prefix>_<secret>``."""
    prefix = secrets.token_hex(6)
    return prefix, f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"


def split_key(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def webhook_secret(server_secret: str, merchant_id: int, salt: str) -> str:
    digest = hmac.new(
        server_secret.encode(), f"webhook:{merchant_id}:{salt}".encode(), hashlib.sha256
    )
    return "whsec_" + digest.hexdigest()[:40]


def is_locale(tag: str) -> bool:
    """A locale CLDR knows (``fr_FR``, ``en_GB``, ``de``)."""
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(tag)
    except (ValueError, TypeError, UnknownLocaleError):
        return False
    return True


def is_timezone(name: str) -> bool:
    """An IANA timezone name (``Europe/Paris``)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    return True
