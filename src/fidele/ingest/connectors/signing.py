"""Webhook signatures and the secrets they are checked with.

Both Shopify (``X-Shopify-Hmac-Sha256``) and WooCommerce (``X-WC-Webhook-Signature``) send
base64(HMAC-SHA256(secret, raw body)). A webhook is accepted when it matches either the
merchant's derived webhook secret (printed by ``fidele merchant create``) or the platform secret
set with ``fidele merchant connector-secret`` (Shopify signs with its app's secret). Platform
secrets are stored Fernet-encrypted under a key derived from ``FIDELE_SECRET_KEY``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.orm import Session

from fidele.errors import InvalidInput
from fidele.events.models import ConnectorSecret
from fidele.events.repository import ConnectorSecretRepository
from fidele.tenancy.models import Merchant
from fidele.tenancy.service import merchant_webhook_secret

PLATFORMS = ("shopify", "woocommerce")


def signature(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)), the header value both platforms send."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def matches(secrets: list[str], body: bytes, header: str | None) -> bool:
    """True when ``header`` is the signature of ``body`` under one of ``secrets``. Every secret
    is compared in constant time, so timing says nothing about which (or how much) matched."""
    if not header:
        return False
    sent = header.strip().encode()
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(signature(secret, body).encode(), sent)
    return found


def _fernet(server_secret: str) -> Fernet:
    digest = hashlib.sha256(f"fidele:connector-secrets:{server_secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def set_platform_secret(
    session: Session,
    merchant: Merchant,
    platform: str,
    secret: str,
    *,
    server_secret: str,
    now: datetime,
) -> None:
    """Store (or replace) the platform's signing secret for ``merchant``, encrypted."""
    if platform not in PLATFORMS:
        raise InvalidInput(f"platform must be one of {', '.join(PLATFORMS)}", field="platform")
    if not secret.strip():
        raise InvalidInput("the secret is empty", field="secret")
    token = _fernet(server_secret).encrypt(secret.strip().encode()).decode()
    repo = ConnectorSecretRepository(session)
    row = repo.find(merchant.id, platform)
    if row is None:
        repo.add(
            ConnectorSecret(
                merchant_id=merchant.id, platform=platform, encrypted=token, updated_at=now
            )
        )
    else:
        row.encrypted, row.updated_at = token, now


def secrets_for(
    session: Session, merchant: Merchant, platform: str, server_secret: str
) -> list[str]:
    """Secrets a webhook of ``platform`` for ``merchant`` may be signed with."""
    found = [merchant_webhook_secret(merchant, server_secret)]
    row = ConnectorSecretRepository(session).find(merchant.id, platform)
    if row is not None:
        try:
            found.append(_fernet(server_secret).decrypt(row.encrypted.encode()).decode())
        except InvalidToken:
            pass  # FIDELE_SECRET_KEY changed since it was set: set the platform secret again
    return found
