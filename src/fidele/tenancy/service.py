"""Programmes, merchants and API keys."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.errors import InvalidInput, NotFound, Unauthorized
from fidele.kit.cache import ProcessCache
from fidele.kit.money import is_currency
from fidele.tenancy import domain
from fidele.tenancy.models import ApiKey, Merchant, Programme
from fidele.tenancy.repository import ApiKeyRepository, MerchantRepository, ProgrammeRepository


@dataclass(frozen=True)
class Caller:
    """Who is calling: the merchant a key belongs to and what it may do."""

    merchant_id: int
    programme_id: int
    api_key_id: int | None
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return domain.grants(self.scopes, scope)


@dataclass(frozen=True)
class CreatedMerchant:
    programme_id: int
    merchant_id: int
    webhook_secret: str


def create_programme(
    session: Session,
    *,
    name: str,
    now: datetime,
    currency: str = "EUR",
    settings: dict[str, Any] | None = None,
) -> Programme:
    if not is_currency(currency):
        raise InvalidInput(f"unknown currency {currency!r}", field="currency")
    programme = Programme(name=name, currency=currency, settings=settings or {}, created_at=now)
    ProgrammeRepository(session).add(programme)
    from fidele.events import bus  # late: bus handlers of other domains may import tenancy

    bus.programme_created(session, programme, now)
    return programme


def create_merchant(
    session: Session,
    *,
    name: str,
    now: datetime,
    server_secret: str,
    programme_id: int | None = None,
    currency: str = "EUR",
) -> CreatedMerchant:
    """Create a merchant, in a new programme of its own unless ``programme_id`` joins one."""
    if programme_id is None:
        programme = create_programme(session, name=name, now=now, currency=currency)
    else:
        found = ProgrammeRepository(session).get(programme_id)
        if found is None:
            raise NotFound(f"programme {programme_id} not found")
        programme = found
    merchant = Merchant(
        programme_id=programme.id, name=name, webhook_salt=secrets.token_hex(16), created_at=now
    )
    MerchantRepository(session).add(merchant)
    from fidele.events import bus  # late: bus handlers of other domains may import tenancy

    bus.merchant_created(session, merchant, now)
    return CreatedMerchant(
        programme.id, merchant.id, merchant_webhook_secret(merchant, server_secret)
    )


def merchant_webhook_secret(merchant: Merchant, server_secret: str) -> str:
    return domain.webhook_secret(server_secret, merchant.id, merchant.webhook_salt)


def rotate_webhook_secret(merchant: Merchant, server_secret: str) -> str:
    """A new webhook secret for ``merchant`` (a new salt): the old one stops verifying shop
    webhooks and signing deliveries at once. Returned once; only the salt is stored."""
    merchant.webhook_salt = secrets.token_hex(16)
    return merchant_webhook_secret(merchant, server_secret)


def webhook_secrets(
    session: Session, merchant_ids: Sequence[int], server_secret: str
) -> dict[int, str]:
    """The webhook secrets of several merchants in one query (the outbox signs a batch of
    deliveries at a time); merchants that do not exist are absent."""
    return {
        m.id: merchant_webhook_secret(m, server_secret)
        for m in MerchantRepository(session).by_ids(merchant_ids)
    }


def set_regional(
    session: Session, programme_id: int, *, locale: str, currency: str, timezone: str
) -> Programme:
    """The locale (``fr_FR``), currency (ISO 4217) and timezone (``Europe/Paris``) in which the
    programme's money and dates are shown; amounts already recorded keep their own currency."""
    programme = ProgrammeRepository(session).get(programme_id)
    if programme is None:
        raise NotFound(f"programme {programme_id} not found")
    checks = (
        ("locale", domain.is_locale(locale)),
        ("currency", is_currency(currency)),
        ("timezone", domain.is_timezone(timezone)),
    )
    for name, ok in checks:
        if not ok:
            raise InvalidInput(f"unknown {name}", field=name)
    programme.currency = currency
    programme.settings = {**(programme.settings or {}), "locale": locale, "timezone": timezone}
    return programme


def get_merchant(session: Session, merchant_id: int) -> Merchant:
    merchant = MerchantRepository(session).get(merchant_id)
    if merchant is None:
        raise NotFound(f"merchant {merchant_id} not found")
    return merchant


def list_merchants(session: Session) -> Sequence[Merchant]:
    return MerchantRepository(session).list_all()


def create_api_key(
    session: Session,
    *,
    merchant_id: int,
    scopes: str | list[str],
    now: datetime,
    name: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; the clear key is returned once and never stored."""
    get_merchant(session, merchant_id)
    try:
        parsed = domain.parse_scopes(scopes)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="scopes") from exc
    prefix, key = domain.new_api_key()
    row = ApiKey(
        merchant_id=merchant_id,
        prefix=prefix,
        key_hash=domain.hash_key(key),
        scopes=",".join(parsed),
        name=name,
        created_at=now,
    )
    ApiKeyRepository(session).add(row)
    return row, key


def list_api_keys(session: Session, merchant_id: int) -> Sequence[ApiKey]:
    return ApiKeyRepository(session).for_merchant(merchant_id)


def revoke_api_key(session: Session, *, prefix: str, now: datetime) -> ApiKey:
    row = ApiKeyRepository(session).by_prefix(prefix.removeprefix("fdl_").split("_")[0])
    if row is None:
        raise NotFound(f"API key {prefix} not found")
    if row.revoked_at is None:
        row.revoked_at = now
    return row


# Valid keys are remembered per process for a short while (every request authenticates): a key
# revoked through this process is refused at once (the flush empties the cache), one revoked by
# another process (a second worker, the CLI) within CALLER_TTL_SECONDS. Only keys that
# authenticated are kept, under their hash, so unknown keys cannot fill the memory.
CALLER_TTL_SECONDS = 2.0
_callers: ProcessCache[Caller | None] = ProcessCache(
    "api_keys",
    CALLER_TTL_SECONDS,
    lambda objects: any(isinstance(o, ApiKey | Merchant) for o in objects),
)


def authenticate(session: Session, key: str) -> Caller:
    caller = _callers.get(session, domain.hash_key(key), lambda: _authenticate(session, key))
    if caller is None:
        raise Unauthorized("invalid or revoked API key")
    return caller


def cached_caller(session: Session, key: str) -> Caller | None:
    """The caller of ``key`` if this process authenticated it within the TTL, without I/O."""
    return _callers.peek(session, domain.hash_key(key))


def _authenticate(session: Session, key: str) -> Caller | None:
    prefix = domain.split_key(key)
    found = ApiKeyRepository(session).with_programme(prefix) if prefix else None
    if found is None:
        return None
    row, programme_id = found
    if row.revoked_at is not None or not domain.key_matches(key, row.key_hash):
        return None
    return Caller(row.merchant_id, programme_id, row.id, row.scope_set)
