"""The storefront: what a shop's customer may see and do with a token the shop signed.

Every rule is the loyalty and promotions domains' (balances, tiers, rewards and redemption,
referral); this module only picks what a customer may see, words it, and checks the token.
A shopper acts as a caller with NO scope: nothing a merchant key can do is reachable here.
None of these functions commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.customers.models import Customer
from fidele.errors import InvalidInput, NotFound, Unauthorized
from fidele.kit.cache import ProcessCache
from fidele.loyalty import members, rewards
from fidele.loyalty import service as loyalty
from fidele.loyalty.models import Redemption
from fidele.loyalty.repository import LoyaltyRepository
from fidele.promotions import coupons, referrals
from fidele.storefront import domain
from fidele.storefront.models import StorefrontSettings
from fidele.storefront.repository import StorefrontRepository
from fidele.storefront.schemas import Look, SettingsIn
from fidele.tenancy import service as tenancy
from fidele.tenancy.service import Caller

HISTORY_PAGE = 1000


@dataclass(frozen=True)
class Shopper:
    """A customer signed in on the shop, as its token says."""

    caller: Caller
    customer: Customer
    claims: domain.Claims


def _caller(session: Session, merchant_id: int) -> Caller:
    merchant = tenancy.get_merchant(session, merchant_id)
    return Caller(merchant.id, merchant.programme_id, None, frozenset())


# -- settings, secret, tokens


def settings_row(session: Session, merchant_id: int, now: datetime) -> StorefrontSettings:
    """The merchant's storefront settings, created with the defaults on first use."""
    repo = StorefrontRepository(session)
    row = repo.get(merchant_id)
    if row is None:
        tenancy.get_merchant(session, merchant_id)
        row = repo.add(
            StorefrontSettings(
                merchant_id=merchant_id, origins=[], look=Look().model_dump(), updated_at=now
            )
        )
    return row


def look_of(row: StorefrontSettings | None) -> Look:
    return Look(**(row.look if row is not None else {}))


def view_settings(session: Session, merchant_id: int) -> dict[str, Any]:
    tenancy.get_merchant(session, merchant_id)
    row = StorefrontRepository(session).get(merchant_id)
    return {
        "merchant_id": merchant_id,
        "origins": list(row.origins) if row else [],
        "look": look_of(row),
        "has_secret": bool(row and row.secret_salt),
    }


def update_settings(
    session: Session, merchant_id: int, data: SettingsIn, now: datetime
) -> dict[str, Any]:
    row = settings_row(session, merchant_id, now)
    row.origins = list(data.origins)
    row.look = data.look.model_dump()
    row.updated_at = now
    session.flush()
    return view_settings(session, merchant_id)


def rotate_secret(session: Session, merchant_id: int, server_secret: str, now: datetime) -> str:
    """A new storefront secret (the old one stops verifying at once); shown once."""
    row = settings_row(session, merchant_id, now)
    row.secret_salt = domain.new_salt()
    row.updated_at = now
    session.flush()
    return domain.derive_secret(server_secret, merchant_id, row.secret_salt)


def _secret(row: StorefrontSettings | None, server_secret: str) -> str | None:
    if row is None or not row.secret_salt:
        return None
    return domain.derive_secret(server_secret, row.merchant_id, row.secret_salt)


def mint_token(
    session: Session,
    merchant_id: int,
    customer: str,
    *,
    minutes: int,
    server_secret: str,
    now: datetime,
) -> str:
    """A token as the shop's backend signs one (for tests and the demo). A merchant without
    a secret gets one (print it with ``fidele storefront secret``, which rotates it)."""
    if not 1 <= minutes <= domain.MAX_TOKEN_MINUTES:
        raise InvalidInput(f"minutes must be 1-{domain.MAX_TOKEN_MINUTES}", field="minutes")
    if not customer or len(customer) > 255:
        raise InvalidInput("a customer id is 1-255 characters", field="customer")
    row = settings_row(session, merchant_id, now)
    secret = _secret(row, server_secret)
    if secret is None:
        secret = rotate_secret(session, merchant_id, server_secret, now)
    expires = int((now + timedelta(minutes=minutes)).timestamp())
    return domain.sign(secret, merchant_id, customer, expires)


def authenticate(
    session: Session,
    token: str,
    *,
    server_secret: str,
    now: datetime,
    merchant_id: int | None = None,
) -> Shopper:
    """The shopper of a customer token; 401 for a merchant API key, a forged, expired or
    unreadable token, or one for another merchant than ``merchant_id`` (the widget's)."""
    if token.startswith("fdl_"):
        raise Unauthorized("merchant API keys are not accepted here: send a customer token")
    try:
        claims = domain.peek(token)
        if merchant_id is not None and claims.merchant_id != merchant_id:
            raise domain.BadToken("the token is for another merchant")
        secret = _secret(StorefrontRepository(session).get(claims.merchant_id), server_secret)
        if secret is None:
            raise domain.BadToken("invalid token signature")
        domain.verify(token, secret, now)
    except domain.BadToken as exc:
        raise Unauthorized(str(exc)) from exc
    caller = _caller(session, claims.merchant_id)
    customer = customers.find(session, caller, claims.customer)
    if customer is None or customer.erased_at is not None:
        raise NotFound("this customer is not known to the programme yet")
    return Shopper(caller, customer, claims)


# -- what the customer sees


def _expiring(
    session: Session, customer: Customer, now: datetime, lang: str
) -> dict[str, Any] | None:
    """Points that expire within the programme's notice period, and the first date."""
    member = loyalty.member_of(session, customer)
    if member is None:
        return None
    days = members.scale_at(session, customer.programme_id, now).settings.expiring_notice_days
    lots = [
        (p, at)
        for p, at in LoyaltyRepository(session).expiring(member.id, now + timedelta(days=days))
        if at > now
    ]
    if not lots:
        return None
    first = min(at for _, at in lots)
    total = sum(p for p, _ in lots)
    return {
        "points": total,
        "first_at": first,
        "text": domain.say(lang, "expiring", n=total, date=first.date().isoformat()),
    }


def me(session: Session, shopper: Shopper, now: datetime, lang: str) -> dict[str, Any]:
    summary = loyalty.summary(session, shopper.customer, now)
    value, currency = loyalty.point_value(session, shopper.caller.programme_id)
    return {
        "customer_id": shopper.customer.external_id,
        "available": summary["available"],
        "pending": summary["pending"],
        "currency": currency,
        "point_value": value,
        "tier": summary["tier"],
        "tier_text": domain.tier_words(summary["tier"], lang),
        "tier_percent": domain.tier_percent(summary["tier"]),
        "expiring": _expiring(session, shopper.customer, now, lang),
        "membership": summary["membership"],
    }


def _eligible(session: Session, shopper: Shopper, now: datetime) -> list[Any]:
    """Live rewards this customer may redeem, by loyalty's own check (tier, membership,
    stock, per-customer limit); all live rewards for a customer who never earned."""
    live = rewards.visible_rewards(session, shopper.caller, now)
    member = loyalty.member_of(session, shopper.customer)
    if member is None:
        return live
    return [r for r in live if rewards.unavailable_reason(session, member, r, now) is None]


def reward_list(
    session: Session, shopper: Shopper, now: datetime, lang: str
) -> list[dict[str, Any]]:
    available = loyalty.available_points(session, shopper.customer, now)
    rows = [
        {"id": r.id, "name": r.name, "kind": r.kind, "value": r.value, "points_cost": r.points_cost}
        for r in _eligible(session, shopper, now)
    ]
    return [
        {
            **r,
            "text": domain.say(lang, "affordable")
            if r["affordable"]
            else domain.say(lang, "to_go", n=r["points_to_go"]),
        }
        for r in domain.order_rewards(rows, available)
    ]


def _redemption(session: Session, shopper: Shopper, row: Redemption, lang: str) -> dict[str, Any]:
    voucher = LoyaltyRepository(session).voucher_of(row.id)
    reward = rewards.get_reward(session, shopper.caller, row.reward_id)
    how = {
        "en": "Paste this code at checkout.",
        "fr": "Collez ce code au moment de payer.",
    }[domain.language(lang)]
    return {
        "id": row.id,
        "reward_id": row.reward_id,
        "reward": reward.name,
        "points": row.points,
        "code": rewards.pretty(voucher.code) if voucher else None,
        "status": voucher.status if voucher else row.status,
        "created_at": row.created_at,
        "how_to_use": how,
    }


def redeem(
    session: Session, shopper: Shopper, reward_id: int, key: str, now: datetime, lang: str
) -> tuple[dict[str, Any], bool]:
    """Redeem through loyalty's own rule (balance, tier, stock, limits); the key is scoped to
    the customer, so two customers' keys never meet."""
    scoped = f"storefront:{shopper.customer.id}:{key}"
    row, created = rewards.redeem(session, shopper.caller, shopper.customer, reward_id, scoped, now)
    return _redemption(session, shopper, row, lang), created


def history(session: Session, shopper: Shopper, lang: str, limit: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    after = 0
    while True:
        page = loyalty.statement(session, shopper.customer, after_id=after, limit=HISTORY_PAGE)
        lines.extend(page)
        if len(page) < HISTORY_PAGE:
            break
        after = page[-1]["id"]
    return domain.readable_lines(lines, lang, limit)


def referral(session: Session, shopper: Shopper, now: datetime) -> dict[str, Any]:
    out = referrals.view(session, shopper.caller, shopper.customer.external_id, now)
    config = coupons.config(session, shopper.caller.merchant_id).referral
    return {
        "code": out.code,
        "link": out.link,
        "friends_joined": sum(n for s, n in out.stats.items() if s in ("pending", "rewarded")),
        "rewards_earned": out.stats.get("rewarded", 0),
        "reward": {
            "kind": config.reward_kind,
            "value": config.reward_value,
            "friend_kind": config.welcome_kind,
            "friend_value": config.welcome_value,
        },
    }


def activities(
    session: Session, programme_id: int, now: datetime, lang: str
) -> list[dict[str, Any]]:
    """Ways to earn, from the programme's own earning rules (only those live now)."""
    scale = members.scale_at(session, programme_id, now)
    s = scale.settings
    out = []
    if s.points_per_unit:
        text = domain.say(lang, "earn_order", n=s.points_per_unit, unit=s.currency)
        out.append({"kind": "order", "label": text, "points": s.points_per_unit, "text": text})
    for rule in scale.rules:
        if not rule.live(now) or rule.type == "multiplier":
            continue
        points = getattr(rule, "points", 0)
        if not points:
            continue
        kind = rule.event_type if rule.type == "action" else rule.type
        out.append({"kind": kind, "label": domain.action_label(kind, lang), "points": points})
    return out


def program(session: Session, merchant_id: int, now: datetime, lang: str) -> dict[str, Any]:
    """What anyone may read: how to earn, the rewards, the tiers, how to join."""
    caller = _caller(session, merchant_id)
    merchant = tenancy.get_merchant(session, merchant_id)
    scale = members.scale_at(session, caller.programme_id, now)
    look = look_of(StorefrontRepository(session).get(merchant_id))
    live = rewards.visible_rewards(session, caller, now)
    return {
        "merchant_id": merchant_id,
        "name": merchant.name,
        "currency": scale.settings.currency,
        "look": look,
        "earn": activities(session, caller.programme_id, now, lang),
        "rewards": [
            {"id": r.id, "name": r.name, "points_cost": r.points_cost, "tiers": list(r.tiers)}
            for r in sorted(live, key=lambda r: (r.points_cost, r.id))
        ],
        "tiers": [
            {"name": t.name, "metric": t.threshold.metric, "threshold": t.threshold.value}
            for t in scale.tiers.levels
        ],
        "signup": domain.say(lang, "signup"),
        "signup_url": look.signup_url,
    }


# -- origins, read on every storefront request (CORS): cached per process for a few seconds

_origins: ProcessCache[tuple[str, ...]] = ProcessCache(
    "storefront_origins",
    5.0,
    lambda objects: any(isinstance(o, StorefrontSettings) for o in objects),
)


def declared_origins(session: Session, merchant_id: int) -> tuple[str, ...]:
    def load() -> tuple[str, ...]:
        row = StorefrontRepository(session).get(merchant_id)
        return tuple(row.origins) if row is not None else ()

    return _origins.get(session, merchant_id, load)


def demo_page(session: Session, server_secret: str, now: datetime) -> dict[str, Any] | None:
    """The demo shop's merchant, customer and a fresh token (None: no demo was built)."""
    row = StorefrontRepository(session).demo_merchant()
    if row is None or row.demo_customer is None:
        return None
    token = mint_token(
        session,
        row.merchant_id,
        row.demo_customer,
        minutes=60,
        server_secret=server_secret,
        now=now,
    )
    return {
        "merchant_id": row.merchant_id,
        "customer": row.demo_customer,
        "token": token,
        "look": look_of(row),
    }
