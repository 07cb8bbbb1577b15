"""Open and click tracking: signed tokens, the links of a rendered message rewritten through
them, and the record of each open and click.

A token carries its own facts (merchant, customer, ledger row and, for a click, the target
URL) and an HMAC-SHA256 of them under a key derived from ``FIDELE_SECRET_KEY``: the endpoints
need no lookup to trust it, a changed byte fails the check, and a click can only redirect to
a URL that fidele itself signed while rendering the message (no open redirect: a forged or
edited token is a 404, never a redirect)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.messaging.measure_repository import TrackingRepository

OPEN_PATH = "/v1/t/o/"
CLICK_PATH = "/v1/t/c/"
_SIG_BYTES = 16  # 128-bit tags: short links, far beyond guessing
# <a ... href="http(s)://..."> (quoted with " or '); other schemes (mailto:, tel:) stay as
# they are.
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'\s>]+)\2""", re.IGNORECASE)
PIXEL_GIF = base64.b64decode(b"R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"fidele/messaging/tracking/v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, payload: dict[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    tag = hmac.new(_key(secret), body.encode(), hashlib.sha256).digest()[:_SIG_BYTES]
    return f"{body}.{_b64(tag)}"


def verify(secret: str, token: str) -> dict[str, Any] | None:
    """The token's payload, or None when it was not made by this server or was altered."""
    body, _, tag = token.partition(".")
    if not body or not tag or len(token) > 8192:
        return None
    expected = hmac.new(_key(secret), body.encode(), hashlib.sha256).digest()[:_SIG_BYTES]
    try:
        if not hmac.compare_digest(_unb64(tag), expected):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, json.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


@dataclass(frozen=True)
class Mark:
    """What a tracking token says: which message (ledger row) of which customer."""

    kind: str  # "open" | "click"
    merchant_id: int
    customer_id: int
    send_id: int
    url: str = ""

    @classmethod
    def parse(cls, secret: str, token: str, kind: str) -> Mark | None:
        p = verify(secret, token)
        if p is None or p.get("k") != kind[0]:
            return None
        try:
            mark = cls(kind, int(p["m"]), int(p["c"]), int(p["s"]), str(p.get("u", "")))
        except (KeyError, TypeError, ValueError):
            return None
        if kind == "click" and not mark.url.startswith(("https://", "http://")):
            return None
        return mark


def open_url(
    public_url: str, secret: str, *, merchant_id: int, customer_id: int, send_id: int
) -> str:
    token = sign(secret, {"k": "o", "m": merchant_id, "c": customer_id, "s": send_id})
    return f"{public_url.rstrip('/')}{OPEN_PATH}{token}"


def click_url(
    public_url: str, secret: str, url: str, *, merchant_id: int, customer_id: int, send_id: int
) -> str:
    payload = {"k": "c", "m": merchant_id, "c": customer_id, "s": send_id, "u": url}
    return f"{public_url.rstrip('/')}{CLICK_PATH}{sign(secret, payload)}"


def instrument_html(
    body: str, *, public_url: str, secret: str, merchant_id: int, customer_id: int, send_id: int
) -> str:
    """The rendered HTML with every http(s) link sent through a signed click redirect and an
    open pixel before ``</body>``. Links to fidele itself (unsubscribe, preferences) are left
    untouched: they are signed already and must work without a redirect."""
    base = public_url.rstrip("/")
    ids = {"merchant_id": merchant_id, "customer_id": customer_id, "send_id": send_id}

    def rewrite(m: re.Match[str]) -> str:
        target = html.unescape(m.group(3))
        if target == base or target.startswith(base + "/"):
            return m.group(0)
        tracked = click_url(public_url, secret, target, **ids)
        return f"{m.group(1)}{m.group(2)}{tracked}{m.group(2)}"

    out = _HREF.sub(rewrite, body)
    pixel = (
        f'<img src="{open_url(public_url, secret, **ids)}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px" />'
    )
    index = out.lower().rfind("</body>")
    return out + pixel if index < 0 else out[:index] + pixel + out[index:]


def record(session: Session, mark: Mark, now: datetime) -> None:
    """Count an open or a click (repeats add to one row per message, kind and link)."""
    url_hash = hashlib.sha256(mark.url.encode()).hexdigest() if mark.url else ""
    TrackingRepository(session).touch(
        merchant_id=mark.merchant_id,
        customer_id=mark.customer_id,
        send_id=mark.send_id,
        kind=mark.kind,
        url=mark.url,
        url_hash=url_hash,
        now=now,
    )
