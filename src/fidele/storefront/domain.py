"""Pure rules of the storefront: the customer token, shop origins, the order of rewards and
the plain words the widget shows (English and French). No I/O."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

SECRET_PREFIX = "sfsec_"
MAX_TOKEN_MINUTES = 24 * 60
LANGUAGES = ("en", "fr")


class BadToken(ValueError):
    """A token that does not verify; the message says why (never which part of the secret)."""


@dataclass(frozen=True)
class Claims:
    merchant_id: int
    customer: str
    expires: int  # Unix seconds


# -- the secret and the token


def new_salt() -> str:
    return secrets.token_hex(16)


def derive_secret(server_secret: str, merchant_id: int, salt: str) -> str:
    """The merchant's storefront secret: derived, never stored (rotating = a new salt)."""
    digest = hmac.new(
        server_secret.encode(), f"storefront:{merchant_id}:{salt}".encode(), hashlib.sha256
    )
    return SECRET_PREFIX + digest.hexdigest()[:48]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def sign(secret: str, merchant_id: int, customer: str, expires: int) -> str:
    """``base64url(JSON {"m", "c", "exp"}) "." base64url(HMAC-SHA256(secret, first part))``,
    base64url without padding: what the README's Python, PHP and JavaScript examples make."""
    body = json.dumps({"m": merchant_id, "c": customer, "exp": expires}, separators=(",", ":"))
    payload = _b64(body.encode())
    return f"{payload}.{_mac(secret, payload)}"


def peek(token: str) -> Claims:
    """The claims of a token, NOT verified: only to know whose secret verifies it."""
    payload, dot, _ = token.partition(".")
    if not dot or not payload:
        raise BadToken("not a storefront token")
    try:
        data = json.loads(_unb64(payload))
        claims = Claims(int(data["m"]), str(data["c"]), int(data["exp"]))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BadToken("not a storefront token") from exc
    if isinstance(data["m"], bool) or not claims.customer:
        raise BadToken("not a storefront token")
    return claims


def verify(token: str, secret: str, now: datetime) -> Claims:
    """The token's claims if it was signed with ``secret`` (constant-time comparison) and has
    not expired at ``now``; else :class:`BadToken`."""
    claims = peek(token)
    payload, _, mac = token.partition(".")
    if not hmac.compare_digest(_mac(secret, payload).encode(), mac.encode()):
        raise BadToken("invalid token signature")
    if claims.expires <= int(now.timestamp()):
        raise BadToken("the token has expired")
    return claims


# -- origins


def normalise_origin(raw: str) -> str:
    """``https://shop.example`` from what a merchant types (no path, lower case, no default
    port); ValueError when it is not an http(s) origin."""
    text = raw.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{raw!r} is not an origin like https://shop.example")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{raw!r} is not an origin: no path, query or credentials")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{raw!r} has an invalid port") from exc
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def origin_allowed(origin: str, declared: Sequence[str]) -> bool:
    try:
        return normalise_origin(origin) in declared
    except ValueError:
        return False


# -- rewards and words

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "to_go": "{n} points to go",
        "affordable": "You can redeem it now",
        "next_tier": "{n} {unit} to reach {tier}",
        "top_tier": "You are at the top tier, {tier}",
        "points": "points",
        "spent": "spent",
        "orders": "orders",
        "expiring": "{n} points expire by {date}",
        "earn_order": "{n} points per {unit} spent",
        "signup": "Join the programme: create an account and earn points on every order.",
    },
    "fr": {
        "to_go": "Encore {n} points",
        "affordable": "Vous pouvez l'échanger maintenant",
        "next_tier": "{n} {unit} pour atteindre {tier}",
        "top_tier": "Vous êtes au palier le plus haut, {tier}",
        "points": "points",
        "spent": "dépensés",
        "orders": "commandes",
        "expiring": "{n} points expirent d'ici le {date}",
        "earn_order": "{n} points par {unit} dépensé",
        "signup": "Rejoignez le programme : créez un compte et gagnez des points "
        "à chaque commande.",
    },
}

ACTIONS: dict[str, dict[str, str]] = {
    "newsletter_subscribed": {
        "en": "Subscribe to the newsletter",
        "fr": "S'abonner à la newsletter",
    },
    "review_posted": {"en": "Write a review", "fr": "Écrire un avis"},
    "social_shared": {"en": "Share on social media", "fr": "Partager sur les réseaux sociaux"},
    "social_followed": {"en": "Follow us", "fr": "Nous suivre"},
    "account_created": {"en": "Create an account", "fr": "Créer un compte"},
    "birthday": {"en": "Your birthday", "fr": "Votre anniversaire"},
    "first_order": {"en": "Your first order", "fr": "Votre première commande"},
    "anniversary": {"en": "Each year with us", "fr": "Chaque année avec nous"},
}


def language(raw: str | None) -> str:
    """``fr`` for any French tag (fr, fr-CA...), else ``en``."""
    tag = (raw or "").strip().lower().replace("_", "-").split("-")[0]
    return tag if tag in LANGUAGES else "en"


def say(lang: str, key: str, **values: Any) -> str:
    return WORDS[language(lang)][key].format(**values)


def action_label(kind: str, lang: str) -> str:
    found = ACTIONS.get(kind)
    if found is not None:
        return found[language(lang)]
    return kind.replace("_", " ").capitalize()


def order_rewards(rewards: Sequence[dict[str, Any]], available: int) -> list[dict[str, Any]]:
    """Rewards the customer can afford first (cheapest first), then the others by how many
    points are missing; each with ``affordable`` and ``points_to_go``."""
    out = [
        {
            **r,
            "affordable": r["points_cost"] <= available,
            "points_to_go": max(r["points_cost"] - available, 0),
        }
        for r in rewards
    ]
    return sorted(
        out, key=lambda r: (not r["affordable"], r["points_to_go"], r["points_cost"], r["id"])
    )


def tier_words(tier: dict[str, Any] | None, lang: str) -> str | None:
    """ "120 points to reach Silver", or the top tier's name; None without tiers."""
    if tier is None:
        return None
    nxt = tier.get("next")
    if nxt is None:
        return say(lang, "top_tier", tier=tier["name"])
    return say(
        lang, "next_tier", n=nxt["remaining"], unit=say(lang, nxt["metric"]), tier=nxt["name"]
    )


def tier_percent(tier: dict[str, Any] | None) -> int:
    """How far towards the next tier, 0-100 (100 at the top tier)."""
    if tier is None or tier.get("next") is None:
        return 100
    nxt = tier["next"]
    if nxt["threshold"] <= 0:
        return 100
    return max(0, min(100, nxt["progress"] * 100 // nxt["threshold"]))


REASONS: dict[str, dict[str, str]] = {
    "order": {"en": "Order", "fr": "Commande"},
    "release": {"en": "Points confirmed", "fr": "Points confirmés"},
    "redemption": {"en": "Reward redeemed", "fr": "Récompense échangée"},
    "restore": {"en": "Points given back", "fr": "Points restitués"},
    "expire": {"en": "Points expired", "fr": "Points expirés"},
    "adjustment": {"en": "Adjustment", "fr": "Ajustement"},
    "burn": {"en": "Paid with points", "fr": "Payé avec des points"},
    "clawback": {"en": "Order refunded", "fr": "Commande remboursée"},
    "clawback_debt": {"en": "Order refunded", "fr": "Commande remboursée"},
    "debt_settled": {"en": "Balance settled", "fr": "Solde régularisé"},
    "first-order": {"en": "First order bonus", "fr": "Bonus première commande"},
    "newsletter": {"en": "Newsletter", "fr": "Newsletter"},
    "review": {"en": "Review", "fr": "Avis"},
    "birthday": {"en": "Birthday", "fr": "Anniversaire"},
}


def reason_label(reason: str, lang: str) -> str:
    found = REASONS.get(reason)
    if found is not None:
        return found[language(lang)]
    return action_label(reason, lang)


def readable_lines(lines: Sequence[dict[str, Any]], lang: str, limit: int) -> list[dict[str, Any]]:
    """The statement as a customer reads it, newest first: movements of the available balance
    (a release is pending points confirmed), plus pending points as they are earned."""
    kept = [
        ln
        for ln in lines
        if ln["account"] == "available" or (ln["account"] == "pending" and ln["points"] > 0)
    ]
    kept.sort(key=lambda ln: (ln["at"], ln["id"]), reverse=True)
    return [
        {
            "id": ln["id"],
            "at": ln["at"],
            "points": ln["points"],
            "pending": ln["account"] == "pending",
            "label": reason_label(ln["reason"], lang),
        }
        for ln in kept[:limit]
    ]
