"""SQLite writers of one process queue in turn for the write lock, first come first served,
and give it back whichever way their transaction ends. (PostgreSQL has row locks and no such
queue: these tests are about SQLite files, whatever the suite's backend.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from fidele.db.engine import READONLY, FairLock, make_engine


def _until(predicate, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def test_the_lock_goes_to_waiters_in_the_order_they_came() -> None:
    lock = FairLock()
    assert lock.acquire(1)
    order: list[int] = []

    def writer(i: int) -> None:
        assert lock.acquire(5)
        order.append(i)
        lock.release()

    threads = []
    for i in range(6):
        t = threading.Thread(target=writer, args=(i,))
        t.start()
        threads.append(t)
        _until(lambda n=i + 1: len(lock._waiters) == n)
    lock.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4, 5]
    assert lock.acquire(0)  # free again once the last one gave it back


def test_a_waiter_that_times_out_leaves_the_line() -> None:
    lock = FairLock()
    assert lock.acquire(1)
    assert lock.acquire(0.05) is False
    assert not lock._waiters
    lock.release()
    assert lock.acquire(0)


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with make_engine(url).begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    return url


def _insert_in_thread(eng: Engine, n: int, done: list[object]) -> threading.Thread:
    def run() -> None:
        try:
            with eng.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            done.append(n)
        except OperationalError as exc:
            done.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t


def _rows(url: str) -> list[int]:
    with make_engine(url).connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT n FROM t ORDER BY rowid"))]


def test_writers_through_two_engines_on_one_file_queue_in_order(db: str) -> None:
    first, second = make_engine(db), make_engine(db)
    done: list[object] = []
    with first.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (0)"))
        threads = []
        for n in (1, 2, 3):
            threads.append(_insert_in_thread(second if n % 2 else first, n, done))
            time.sleep(0.1)  # each in line before the next
        assert done == []  # all waiting behind the open transaction
    for t in threads:
        t.join(10)
    assert done == [1, 2, 3]
    assert _rows(db) == [0, 1, 2, 3]


def test_a_writer_waiting_past_the_lock_timeout_is_told_the_database_is_locked(db: str) -> None:
    holder, waiter = make_engine(db), make_engine(db, lock_timeout=0.2)
    done: list[object] = []
    with holder.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        _insert_in_thread(waiter, 2, done).join(5)
    assert len(done) == 1 and "database is locked" in str(done[0])
    # Nothing of the refused writer remains in the line: the next one goes straight in.
    _insert_in_thread(waiter, 3, done).join(5)
    assert done[1:] == [3]
    assert _rows(db) == [1, 3]


@pytest.mark.parametrize("ending", ["commit", "rollback", "invalidate", "pool_reset"])
def test_the_lock_is_given_back_however_the_transaction_ends(db: str, ending: str) -> None:
    eng = make_engine(db, lock_timeout=2)
    conn = eng.connect()
    tx = conn.begin()
    conn.execute(text("INSERT INTO t VALUES (1)"))
    if ending == "commit":
        tx.commit()
    elif ending == "rollback":
        tx.rollback()
    elif ending == "invalidate":
        conn.invalidate()
    conn.close()  # "pool_reset": closed with the transaction open, the pool rolls it back
    done: list[object] = []
    _insert_in_thread(eng, 2, done).join(5)
    assert done == [2]
    assert _rows(db) == ([1, 2] if ending == "commit" else [2])


def test_a_savepoint_inside_a_write_does_not_queue_again(db: str) -> None:
    eng = make_engine(db, lock_timeout=0.5)
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        with conn.begin_nested():
            conn.execute(text("INSERT INTO t VALUES (2)"))
    assert _rows(db) == [1, 2]


def test_readers_do_not_wait_for_the_writers(db: str) -> None:
    eng = make_engine(db, lock_timeout=0.2)
    reader = eng.execution_options(**{READONLY: True})
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        with reader.connect() as read:
            assert read.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
