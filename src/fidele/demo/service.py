"""Builds the demo shop: a merchant, customers with French and English names, a catalogue, and
two years of orders (:mod:`fidele.demo.story`).

The story is written in bulk (:mod:`fidele.demo.bulk`), then loyalty rebuilds points, tiers
and expiry as of now from the event log with its replay, all in one transaction: a build that
fails leaves no half shop behind. :func:`settle` then runs the scheduled jobs once, so the
server's embedded worker starts with nothing heavy to do. The result equals playing the story
step by step through the online services (:mod:`fidele.demo.online`, kept as the reference and
compared in ``tests/demo``). The same seed gives the same shop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fidele.campaigns import templates
from fidele.db.session import transaction
from fidele.demo import bulk, online, story
from fidele.kit.clock import Clock
from fidele.loyalty import replay
from fidele.storefront import demo as storefront
from fidele.tenancy import service as tenancy
from fidele.tenancy.models import Programme
from fidele.tenancy.service import Caller
from fidele.worker.runner import JobRun, drain_loops, run_due

Progress = Callable[[str, int, int], None]  # (what, done, total)


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


def _quiet(what: str, done: int, total: int) -> None:
    """No progress report."""


def build(
    factory: sessionmaker[Session],
    *,
    seed: int,
    n_customers: int,
    now: datetime,
    server_secret: str,
    progress: Progress | None = None,
    reference: bool = False,
) -> DemoShop:
    """Create the demo shop (or reuse the one this seed already built) and return a fresh key.

    ``reference`` plays the story step by step through the online services instead (minutes
    for thousands of customers): what the bulk build is compared with."""
    report = progress or _quiet
    with transaction(factory) as session:
        existing = find_existing(session, seed)
        if existing is not None:
            merchant = tenancy.MerchantRepository(session).in_programme(existing.id)[0]
            _, key = tenancy.create_api_key(
                session, merchant_id=merchant.id, scopes="read,write,admin", now=now, name="demo"
            )
            return DemoShop(existing.id, merchant.id, key, created=False)
    report("story", 0, n_customers)
    steps = story.steps(seed, n_customers, now)
    with transaction(factory) as session:
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
        if not reference:
            bulk.write(session, caller, steps, report)
            _replay(session, made.programme_id, now, report)
    if reference:
        online.play(factory, caller, steps, lambda done, total: report("steps", done, total))
    shop = DemoShop(made.programme_id, made.merchant_id, key, created=True)
    shop.counts = story.counts(steps)
    with transaction(factory) as session:
        journeys = templates.install_all(session, caller, now, activate=True)
        # a few rewards and a demo customer for the storefront page (/storefront/demo)
        storefront.prepare(session, caller, now, server_secret)
    shop.counts["journeys"] = len(journeys)
    return shop


def _replay(session: Session, programme_id: int, now: datetime, report: Progress) -> None:
    total = replay.event_count(session, programme_id)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        report("loyalty", done, total)

    report("loyalty", 0, total)
    replay.replay(session, programme_id, now, progress=advance)


def settle(factory: sessionmaker[Session], clock: Clock) -> list[JobRun]:
    """Run every scheduled job once (each in its own transaction), then the continuous work
    they made due (the journeys' first steps), so the first round of the server's embedded
    worker finds nothing due but the frequent, cheap jobs."""
    return run_due(factory, clock) + drain_loops(factory, clock)
