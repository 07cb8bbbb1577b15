from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fidele.db.session import make_sessionmaker, transaction
from fidele.kit.clock import FrozenClock
from fidele.ledger import service as ledger
from fidele.ledger.errors import InsufficientBalance, UnbalancedPosting
from tests.fixtures.factories import Tenant, make_tenant


def _accounts(session: Session, t: Tenant, now):  # type: ignore[no-untyped-def]
    src = ledger.account(
        session,
        programme_id=t.programme_id,
        kind="issued",
        unit="PTS",
        now=now,
        allow_negative=True,
    )
    dst = ledger.account(
        session, programme_id=t.programme_id, kind="wallet", unit="PTS", now=now, ref="x"
    )
    return src, dst


def test_post_is_balanced_and_idempotent(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    src, dst = _accounts(session, tenant, clock.now())
    p1, created = ledger.transfer(
        session,
        programme_id=tenant.programme_id,
        source_key="k1",
        reason="earn",
        debit=src,
        credit=dst,
        amount=50,
        now=clock.now(),
    )
    p2, again = ledger.transfer(
        session,
        programme_id=tenant.programme_id,
        source_key="k1",
        reason="earn",
        debit=src,
        credit=dst,
        amount=50,
        now=clock.now(),
    )
    assert created and not again and p1.id == p2.id
    session.refresh(dst)
    assert dst.balance == 50
    assert ledger.verify(session).ok


def test_overdraft_is_refused_and_nothing_written(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    src, dst = _accounts(session, tenant, clock.now())
    ledger.transfer(
        session,
        programme_id=tenant.programme_id,
        source_key="in",
        reason="earn",
        debit=src,
        credit=dst,
        amount=10,
        now=clock.now(),
    )
    with pytest.raises(InsufficientBalance):
        ledger.transfer(
            session,
            programme_id=tenant.programme_id,
            source_key="out",
            reason="spend",
            debit=dst,
            credit=src,
            amount=11,
            now=clock.now(),
        )
    session.refresh(dst)
    assert dst.balance == 10 and ledger.verify(session).ok


def test_unbalanced_or_mixed_legs_are_programming_errors(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    src, dst = _accounts(session, tenant, clock.now())
    eur = ledger.account(
        session, programme_id=tenant.programme_id, kind="gift", unit="EUR", now=clock.now()
    )
    with pytest.raises(UnbalancedPosting):
        ledger.post(
            session,
            programme_id=tenant.programme_id,
            source_key="u",
            reason="x",
            legs=[ledger.Leg(src, -5), ledger.Leg(dst, 4)],
            now=clock.now(),
        )
    with pytest.raises(UnbalancedPosting):
        ledger.post(
            session,
            programme_id=tenant.programme_id,
            source_key="m",
            reason="x",
            legs=[ledger.Leg(src, -5), ledger.Leg(eur, 5)],
            now=clock.now(),
        )


def test_parallel_debits_never_overdraw(committed_engine: Engine, clock: FrozenClock) -> None:
    """50 threads, each with its own connection, try to spend 1 of a balance of 10."""
    factory = make_sessionmaker(committed_engine)
    with transaction(factory) as s:
        t = make_tenant(s, clock.now())
        src, dst = _accounts(s, t, clock.now())
        ledger.transfer(
            s,
            programme_id=t.programme_id,
            source_key="seed",
            reason="earn",
            debit=src,
            credit=dst,
            amount=10,
            now=clock.now(),
        )
        ids = (src.id, dst.id)
    barrier = threading.Barrier(50)
    outcomes: list[str] = []

    def spend(i: int) -> None:
        barrier.wait()
        try:
            with transaction(factory) as s:
                a_src = s.get(type(src), ids[0])
                a_dst = s.get(type(dst), ids[1])
                ledger.transfer(
                    s,
                    programme_id=t.programme_id,
                    source_key=f"spend-{i}",
                    reason="spend",
                    debit=a_dst,
                    credit=a_src,
                    amount=1,
                    now=clock.now(),
                )
            outcomes.append("ok")
        except InsufficientBalance:
            outcomes.append("refused")

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(50)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert outcomes.count("ok") == 10 and outcomes.count("refused") == 40
    with transaction(factory) as s:
        assert s.get(type(dst), ids[1]).balance == 0
        assert ledger.verify(s).ok


def test_unrefusable_posting_twice_posts_once(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    """Credit-only legs skip the savepoint; ``fresh`` skips the lookup, so the second call
    reaches the INSERT and its ON CONFLICT, which must return the first posting."""
    src, dst = _accounts(session, tenant, clock.now())
    kw = dict(programme_id=tenant.programme_id, source_key="k", reason="earn", now=clock.now())
    p1, created = ledger.transfer(session, debit=src, credit=dst, amount=5, fresh=True, **kw)
    p2, again = ledger.transfer(session, debit=src, credit=dst, amount=5, fresh=True, **kw)
    assert created and not again and p1.id == p2.id
    session.refresh(dst)
    assert dst.balance == 5 and ledger.verify(session).ok


def test_parallel_unrefusable_twins_post_once(committed_engine: Engine, clock: FrozenClock) -> None:
    """8 connections post the same source at once, without savepoints: one posting."""
    factory = make_sessionmaker(committed_engine)
    with transaction(factory) as s:
        t = make_tenant(s, clock.now())
        src, dst = _accounts(s, t, clock.now())
        ids = (src.id, dst.id)
    barrier = threading.Barrier(8)
    created: list[bool] = []

    def post() -> None:
        barrier.wait()
        with transaction(factory) as s:
            _, made = ledger.transfer(
                s,
                programme_id=t.programme_id,
                source_key="twin",
                reason="earn",
                debit=s.get(type(src), ids[0]),
                credit=s.get(type(dst), ids[1]),
                amount=7,
                now=clock.now(),
                fresh=True,
            )
        created.append(made)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(created) == [False] * 7 + [True]
    with transaction(factory) as s:
        assert s.get(type(dst), ids[1]).balance == 7
        assert ledger.verify(s).ok
