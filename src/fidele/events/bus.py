"""In-transaction event dispatch.

Appending an event to the log publishes it to the handlers other domains subscribed (loyalty
awards pending points, promotions issue next-order coupons, ...). Handlers run in the same
transaction as the write, so ``POST /v1/orders`` returns with its points already visible, and a
failed handler rolls the whole request back. The same handlers rebuild state in a replay."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from fidele.kit.plugins import domain_modules

if TYPE_CHECKING:
    from fidele.events.models import Event
    from fidele.tenancy.models import Merchant, Programme

EventHandler = Callable[[Session, "Event", datetime], None]
ProgrammeHandler = Callable[[Session, "Programme", datetime], None]
MerchantHandler = Callable[[Session, "Merchant", datetime], None]

_event_handlers: dict[str, list[EventHandler]] = defaultdict(list)
_programme_handlers: list[ProgrammeHandler] = []
_merchant_handlers: list[MerchantHandler] = []
# (session, events, now) before a batch of events is dispatched one by one: may read what the
# per-event handlers need for the whole batch at once; returns a cleanup (or None) called
# once the batch is dispatched (or failed).
BatchHandler = Callable[[Session, Sequence["Event"], datetime], Callable[[], None] | None]
_batch_handlers: list[BatchHandler] = []
# (session, programme id, event type, customer id, now), called before the event is numbered.
AppendGuard = Callable[[Session, int, str, int, datetime], None]
_append_guards: list[AppendGuard] = []
_loaded = False


def on_event(*types: str) -> Callable[[EventHandler], EventHandler]:
    """Subscribe to event types (``"*"`` for all)."""

    def register(fn: EventHandler) -> EventHandler:
        for t in types:
            if fn not in _event_handlers[t]:
                _event_handlers[t].append(fn)
        return fn

    return register


def before_batch(fn: BatchHandler) -> BatchHandler:
    """Subscribe to a batch of events about to be dispatched (``dispatch_many``): a domain
    whose handler reads per customer can read the batch's customers in one query first."""
    if fn not in _batch_handlers:
        _batch_handlers.append(fn)
    return fn


def on_programme_created(fn: ProgrammeHandler) -> ProgrammeHandler:
    if fn not in _programme_handlers:
        _programme_handlers.append(fn)
    return fn


def on_merchant_created(fn: MerchantHandler) -> MerchantHandler:
    """Subscribe to a new merchant (segments installs its built-in segments)."""
    if fn not in _merchant_handlers:
        _merchant_handlers.append(fn)
    return fn


def before_append(fn: AppendGuard) -> AppendGuard:
    """Subscribe to the moment before a customer's event is inserted (numbered). A domain
    whose state is per customer (loyalty's member) locks it here: events of one customer then
    get their ids in the order their handlers run, so a replay in id order redoes what was
    done live even when two of them were written concurrently."""
    if fn not in _append_guards:
        _append_guards.append(fn)
    return fn


def guard_append(
    session: Session, programme_id: int, event_type: str, customer_id: int, now: datetime
) -> None:
    load_handlers()
    for fn in _append_guards:
        fn(session, programme_id, event_type, customer_id, now)


def load_handlers() -> None:
    """Import every domain's ``handlers`` module once, so subscriptions are registered."""
    global _loaded
    if _loaded:
        return
    domain_modules("handlers")
    _loaded = True


def dispatch(session: Session, event: Event, now: datetime) -> None:
    load_handlers()
    for handler in (*_event_handlers.get(event.type, ()), *_event_handlers.get("*", ())):
        handler(session, event, now)


def dispatch_many(session: Session, events: Sequence[Event], now: datetime) -> None:
    """``dispatch`` each event in order, the batch handlers called first."""
    load_handlers()
    cleanups = [c for fn in _batch_handlers if (c := fn(session, events, now)) is not None]
    try:
        for event in events:
            dispatch(session, event, now)
    finally:
        for cleanup in cleanups:
            cleanup()


def programme_created(session: Session, programme: Programme, now: datetime) -> None:
    load_handlers()
    for handler in _programme_handlers:
        handler(session, programme, now)


def merchant_created(session: Session, merchant: Merchant, now: datetime) -> None:
    load_handlers()
    for handler in _merchant_handlers:
        handler(session, merchant, now)


def handler_count(event_type: str) -> int:
    load_handlers()
    return len(_event_handlers.get(event_type, ())) + len(_event_handlers.get("*", ()))
