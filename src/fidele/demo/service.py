"""Builds the demo shop: a merchant, customers with French and English names, a catalogue, and
two years of orders whose repeat behaviour follows the BG/NBD process (most customers buy once,
some become regulars), with deliveries, refunds, newsletter signups and reviews.

Everything goes through the same services as the API, in time order, with a clock that follows
the story, so loyalty points, tiers and expiry come out as they would have in a real shop.
The same seed gives the same shop."""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers import service as customers
from fidele.customers.schemas import CustomerIn
from fidele.db.session import transaction
from fidele.demo import data
from fidele.events import service as events
from fidele.orders import service as orders
from fidele.orders.schemas import OrderIn, RefundIn, StatusIn
from fidele.tenancy import service as tenancy
from fidele.tenancy.models import Programme
from fidele.tenancy.service import Caller

Step = tuple[datetime, int, Callable[[Session, Caller, datetime], Any]]
BATCH = 250


@dataclass
class DemoShop:
    programme_id: int
    merchant_id: int
    api_key: str
    created: bool
    counts: dict[str, int] = field(default_factory=dict)


def programme_name(seed: int) -> str:
    return f"Maison Fidèle demo (seed {seed})"


def find_existing(session: Session, seed: int) -> Programme | None:
    stmt = select(Programme).where(Programme.name == programme_name(seed))
    return session.execute(stmt).scalars().first()


def build(
    factory: sessionmaker[Session],
    *,
    seed: int,
    n_customers: int,
    now: datetime,
    server_secret: str,
    progress: Callable[[int, int], None] | None = None,
) -> DemoShop:
    """Create the demo shop (or reuse the one this seed already built) and return a fresh key."""
    with transaction(factory) as session:
        existing = find_existing(session, seed)
        if existing is not None:
            merchant = tenancy.MerchantRepository(session).in_programme(existing.id)[0]
            _, key = tenancy.create_api_key(
                session, merchant_id=merchant.id, scopes="read,write,admin", now=now, name="demo"
            )
            return DemoShop(existing.id, merchant.id, key, created=False)
        made = tenancy.create_merchant(
            session,
            name=programme_name(seed),
            now=now - timedelta(days=731),
            server_secret=server_secret,
        )
        _, key = tenancy.create_api_key(
            session, merchant_id=made.merchant_id, scopes="read,write,admin", now=now, name="demo"
        )
    caller = Caller(made.merchant_id, made.programme_id, None, frozenset({"admin"}))
    steps = sorted(_story(seed, n_customers, now), key=lambda s: (s[0], s[1]))
    counts = _play(factory, caller, steps, progress)
    return DemoShop(made.programme_id, made.merchant_id, key, created=True, counts=counts)


def _play(
    factory: sessionmaker[Session],
    caller: Caller,
    steps: list[Step],
    progress: Callable[[int, int], None] | None,
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for start in range(0, len(steps), BATCH):
        with transaction(factory) as session:
            for at, _, action in steps[start : start + BATCH]:
                kind = action(session, caller, at)
                counts[kind] = counts.get(kind, 0) + 1
        if progress:
            progress(min(start + BATCH, len(steps)), len(steps))
    return counts


def _story(seed: int, n_customers: int, now: datetime) -> Iterator[Step]:
    from fidele.analytics.generate import simulate_bgnbd_gg

    start = (now - timedelta(days=730)).date()
    tx = simulate_bgnbd_gg(n_customers, start=start, days=730, seed=seed)
    rng = random.Random(seed)
    seq = 0
    seen: set[str] = set()
    for cid, at, amount in tx.select("customer_id", "date", "amount").iter_rows():
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        if cid not in seen:
            seen.add(cid)
            profile = _profile(rng, cid)
            seq += 1
            yield at - timedelta(minutes=rng.randint(5, 90)), seq, _upsert(cid, profile)
            if profile.consent.email_marketing:  # type: ignore[union-attr]
                seq += 1
                yield at - timedelta(minutes=2), seq, _event(cid, "newsletter_subscribed", seq)
        seq += 1
        yield from _order_story(rng, cid, at, int(amount), now, seq)
        seq += 10


def _order_story(
    rng: random.Random, cid: str, at: datetime, amount: int, now: datetime, seq: int
) -> Iterator[Step]:
    oid = f"D{seq:08d}"
    body = _order(rng, oid, cid, at, amount)
    yield at, seq, lambda s, c, t: _place(s, c, t, body)
    shipped = at + timedelta(hours=rng.randint(18, 60))
    delivered = shipped + timedelta(days=rng.randint(1, 4))
    if rng.random() < 0.02:
        yield at + timedelta(hours=2), seq + 1, _status(oid, "cancelled")
        return
    if shipped < now:
        yield shipped, seq + 1, _status(oid, "shipped")
    if delivered < now:
        yield delivered, seq + 2, _status(oid, "delivered")
        if rng.random() < 0.05:
            when = delivered + timedelta(days=rng.randint(2, 12))
            if when < now:
                yield when, seq + 3, _refund(oid, rng.random() < 0.5)
        if rng.random() < 0.2:
            when = delivered + timedelta(days=rng.randint(3, 15))
            if when < now:
                yield (
                    when,
                    seq + 4,
                    _event(
                        cid,
                        "review_posted",
                        seq + 4,
                        {"order_id": oid, "stars": rng.choice([3, 4, 5, 5])},
                    ),
                )


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _profile(rng: random.Random, cid: str) -> CustomerIn:
    locale, country, tz, _ = rng.choices(data.LOCALES, weights=[x[3] for x in data.LOCALES])[0]
    french = locale.startswith("fr")
    first = rng.choice(data.FIRST_FR if french else data.FIRST_EN)
    last = rng.choice(data.LAST_FR if french else data.LAST_EN)
    email = f"{_ascii(first)}.{_ascii(last)}.{cid[-5:]}@{rng.choice(data.EMAIL_DOMAINS)}"
    birthday = date(rng.randint(1950, 2006), rng.randint(1, 12), rng.randint(1, 28))
    return CustomerIn.model_validate(
        {
            "email": email,
            "first_name": first,
            "last_name": last,
            "birthday": birthday,
            "locale": locale,
            "country": country,
            "timezone": tz,
            "consent": {"email_marketing": rng.random() < 0.45, "source": "checkout"},
        }
    )


def _order(rng: random.Random, oid: str, cid: str, at: datetime, amount: int) -> OrderIn:
    picks = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        category, products = rng.choice(data.CATALOGUE)
        name, price = rng.choice(products)
        picks.append((category, name, price))
    base = sum(p for _, _, p in picks)
    qty = max(1, min(5, round(amount / base)))
    lines = [
        {
            "product_id": f"sku-{_ascii(name).replace(' ', '-')}",
            "name": name,
            "category": category,
            "quantity": qty,
            "unit_price": price,
        }
        for category, name, price in picks
    ]
    subtotal = base * qty
    shipping = 0 if subtotal >= 5000 else 490
    return OrderIn.model_validate(
        {
            "id": oid,
            "customer_id": cid,
            "placed_at": at,
            "currency": "EUR",
            "lines": lines,
            "shipping": shipping,
            "discounts": 0,
            "total": subtotal + shipping,
            "channel": rng.choice(("web", "web", "web", "app")),
        }
    )


def _upsert(cid: str, profile: CustomerIn) -> Callable[[Session, Caller, datetime], str]:
    def run(s: Session, c: Caller, t: datetime) -> str:
        customers.upsert(s, c, cid, profile, t, source="demo")
        return "customers"

    return run


def _place(s: Session, c: Caller, t: datetime, body: OrderIn) -> str:
    orders.create(s, c, body, t, source="demo")
    return "orders"


def _status(oid: str, status: str) -> Callable[[Session, Caller, datetime], str]:
    def run(s: Session, c: Caller, t: datetime) -> str:
        orders.set_status(s, c, oid, StatusIn(status=status, occurred_at=t), t)  # type: ignore[arg-type]
        return status

    return run


def _refund(oid: str, partial: bool) -> Callable[[Session, Caller, datetime], str]:
    def run(s: Session, c: Caller, t: datetime) -> str:
        order = orders.get(s, c, oid)
        amount = max(1, order.total // 2) if partial else None
        orders.refund(s, c, oid, RefundIn(id=f"R-{oid}", amount=amount, occurred_at=t), t)
        return "refunds"

    return run


def _event(
    cid: str, kind: str, seq: int, props: dict[str, Any] | None = None
) -> Callable[[Session, Caller, datetime], str]:
    def run(s: Session, c: Caller, t: datetime) -> str:
        customer = customers.get_or_create(s, c, cid, t, source="demo")
        events.record(
            s,
            c,
            type=kind,
            occurred_at=t,
            now=t,
            source="demo",
            payload={"type": kind, "customer_id": cid, "properties": props or {}},
            customer_id=customer.id,
            idempotency_key=f"demo:{seq}",
        )
        return kind

    return run
