"""The demo shop's story as data: two years of a shop whose repeat behaviour follows the BG/NBD
process (most customers buy once, some become regulars), with sign-ups, deliveries,
cancellations, refunds, newsletter subscriptions and reviews, each step with its time.

The story is played either in bulk (:mod:`fidele.demo.bulk`, the demo's path) or step by step
through the online services (:mod:`fidele.demo.online`, the reference); both read the same
steps. The same seed gives the same steps."""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from fidele.customers.schemas import CustomerIn
from fidele.demo import data
from fidele.orders.schemas import OrderIn


class Step(NamedTuple):
    """One thing that happens in the shop. ``kind`` and its ``args``:

    - ``customers``: (customer id, CustomerIn)
    - ``orders``: (OrderIn,)
    - ``shipped`` / ``delivered`` / ``cancelled``: (order id,)
    - ``refunds``: (order id, partial)
    - an action event type (``newsletter_subscribed``, ``review_posted``): (customer id,
      idempotency sequence, properties)
    """

    at: datetime
    seq: int
    kind: str
    args: tuple[Any, ...]


STATUSES = ("shipped", "delivered", "cancelled")


def steps(seed: int, n_customers: int, now: datetime) -> list[Step]:
    """The whole story in the order it happens (time, then sequence)."""
    return sorted(_story(seed, n_customers, now), key=lambda s: (s.at, s.seq))


def counts(story: list[Step]) -> dict[str, int]:
    """How many steps of each kind, in order of first appearance (what the demo reports)."""
    return dict(Counter(s.kind for s in story))


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
            yield Step(at - timedelta(minutes=rng.randint(5, 90)), seq, "customers", (cid, profile))
            if profile.consent.email_marketing:  # type: ignore[union-attr]
                seq += 1
                yield Step(at - timedelta(minutes=2), seq, "newsletter_subscribed", (cid, seq, {}))
        seq += 1
        yield from _order_story(rng, cid, at, int(amount), now, seq)
        seq += 10


def _order_story(
    rng: random.Random, cid: str, at: datetime, amount: int, now: datetime, seq: int
) -> Iterator[Step]:
    oid = f"D{seq:08d}"
    yield Step(at, seq, "orders", (_order(rng, oid, cid, at, amount),))
    shipped = at + timedelta(hours=rng.randint(18, 60))
    delivered = shipped + timedelta(days=rng.randint(1, 4))
    if rng.random() < 0.02:
        yield Step(at + timedelta(hours=2), seq + 1, "cancelled", (oid,))
        return
    if shipped < now:
        yield Step(shipped, seq + 1, "shipped", (oid,))
    if delivered < now:
        yield Step(delivered, seq + 2, "delivered", (oid,))
        if rng.random() < 0.05:
            when = delivered + timedelta(days=rng.randint(2, 12))
            if when < now:
                yield Step(when, seq + 3, "refunds", (oid, rng.random() < 0.5))
        if rng.random() < 0.2:
            when = delivered + timedelta(days=rng.randint(3, 15))
            if when < now:
                props = {"order_id": oid, "stars": rng.choice([3, 4, 5, 5])}
                yield Step(when, seq + 4, "review_posted", (cid, seq + 4, props))


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
