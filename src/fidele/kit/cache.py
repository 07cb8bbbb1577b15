"""Per-process read caches for data every request reads first and that rarely changes.

A ``ProcessCache`` holds values per bind (engine, or the connection a test binds its sessions
to, so two databases never share one) and per key, for ``ttl`` seconds. Freshness, which
callers may rely on:
- a change made through this process empties the cache when it is flushed (``touches`` says
  which flushed objects matter) and again when its transaction commits or rolls back; a reader
  that started before the change never stores what it read (generation check), and a session
  that wrote such data bypasses the cache until its transaction ends;
- a change made by another process (a second `fidele serve` worker, a CLI run) is seen within
  ``ttl`` seconds.
Cached values are shared between threads: store immutable values or detached copies. A
``None`` from the loader is returned but never stored (a cache of failed lookups would let
anyone fill the memory)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.orm import Session

V = TypeVar("V")


def monotonic() -> float:
    """The cache's clock (a module function so tests can move it)."""
    return time.monotonic()


class ProcessCache(Generic[V]):
    def __init__(self, name: str, ttl: float, touches: Callable[[Sequence[object]], bool]) -> None:
        self.ttl = ttl
        self._wrote = f"{name}_cache_wrote"
        self._touches = touches
        self._lock = threading.Lock()
        self._by_bind: WeakKeyDictionary[Any, dict[Hashable, tuple[float, V]]] = WeakKeyDictionary()
        self._generation = 0
        event.listen(Session, "after_flush", self._after_flush)
        event.listen(Session, "after_commit", self._after_end)
        event.listen(Session, "after_rollback", self._after_end)

    def peek(self, session: Session, key: Hashable) -> V | None:
        """The cached value when fresh, else None; never any I/O."""
        if session.info.get(self._wrote):
            return None
        with self._lock:
            entry = self._by_bind.get(session.get_bind(), {}).get(key)
        return entry[1] if entry is not None and entry[0] > monotonic() else None

    def get(self, session: Session, key: Hashable, load: Callable[[], V]) -> V:
        """The cached value when fresh, else ``load()`` (stored unless a change overtook it)."""
        if session.info.get(self._wrote):
            return load()
        bind = session.get_bind()
        with self._lock:
            entry = self._by_bind.get(bind, {}).get(key)
            generation = self._generation
        if entry is not None and entry[0] > monotonic():
            return entry[1]
        value = load()
        if value is None:
            return value
        with self._lock:
            if generation == self._generation:  # no change flushed while we read
                self._by_bind.setdefault(bind, {})[key] = (monotonic() + self.ttl, value)
        return value

    def get_many(
        self,
        session: Session,
        keys: Iterable[Hashable],
        load: Callable[[list[Hashable]], Mapping[Hashable, V]],
    ) -> dict[Hashable, V]:
        """The fresh cached values of ``keys``, the others read by one ``load(missing)`` call
        (stored unless a change overtook it; keys it does not return are absent)."""
        wanted = list(dict.fromkeys(keys))
        if session.info.get(self._wrote):
            return dict(load(wanted)) if wanted else {}
        bind = session.get_bind()
        found: dict[Hashable, V] = {}
        with self._lock:
            entries = self._by_bind.get(bind, {})
            generation = self._generation
            now = monotonic()
            for key in wanted:
                entry = entries.get(key)
                if entry is not None and entry[0] > now:
                    found[key] = entry[1]
        missing = [key for key in wanted if key not in found]
        if not missing:
            return found
        loaded = {key: value for key, value in load(missing).items() if value is not None}
        with self._lock:
            if generation == self._generation:  # no change flushed while we read
                expires = monotonic() + self.ttl
                stored = self._by_bind.setdefault(bind, {})
                for key, value in loaded.items():
                    stored[key] = (expires, value)
        return found | loaded

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._by_bind.clear()

    def _after_flush(self, session: Session, _context: Any) -> None:
        if self._touches(list(chain(session.new, session.dirty, session.deleted))):
            session.info[self._wrote] = True
            self.clear()

    def _after_end(self, session: Session) -> None:
        if session.info.pop(self._wrote, False):
            self.clear()


_MEMOS = "transaction_memos"


def memo(session: Session, name: str) -> dict[Any, Any]:
    """A dict that lives as long as the session's current transaction: for what one unit of
    work reads several times and nobody else changes under it in a way it must see (the scale
    in force, the member it just created). Emptied at commit and at any rollback, a
    savepoint's included (what it remembered may have been undone)."""
    memos: dict[str, dict[Any, Any]] = session.info.setdefault(_MEMOS, {})
    return memos.setdefault(name, {})


def forget(session: Session) -> None:
    """Empty the transaction's memos now: for a caller that bulk-deletes rows a memo may hold
    (the loyalty replay wipes members and accounts before replaying the log)."""
    session.info.pop(_MEMOS, None)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, *_: Any) -> None:
    forget(session)
