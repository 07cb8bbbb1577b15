"""``fidele import``: stream a file in batches, validate each record with the API's rules, write
each batch in its own transaction, and send refused records to a rejects file.

Idempotent on natural keys (merchant + order id / customer id) and resumable: every committed
batch stays; killed mid-way, the same command run again skips what is there (an order already
stored with the same body is "unchanged") and completes, with no duplicates. This module is an
edge like a CLI command: it owns the per-batch transactions."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers import service as customers
from fidele.customers.schemas import CustomerIn
from fidele.db.session import transaction
from fidele.errors import FideleError, InvalidInput
from fidele.feedback.delivery_schemas import DeliveryIn
from fidele.ingest.connectors import service as connectors
from fidele.ingest.connectors.shop import delivery_in
from fidele.ingest.importers import bulk, formats
from fidele.ingest.importers.reader import Group, batches, columns
from fidele.kit.clock import Clock
from fidele.orders import service as orders_service
from fidele.orders.schemas import OrderIn, RefundIn, StatusIn
from fidele.tenancy.service import Caller

Progress = Callable[[int], None]  # called with the number of records done in a batch


@dataclass
class Summary:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Options:
    kind: str  # "orders" | "customers"
    fmt: str = "auto"
    batch_size: int = 1000
    rejects: Path | None = None
    timezone: str | None = None  # for zone-less times of shop exports


def reason_of(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
    if isinstance(exc, FideleError):
        fields = exc.extra.get("fields") or []
        return "; ".join(f"{f['field']}: {f['message']}" for f in fields) or exc.detail
    return f"{type(exc).__name__}: {exc}"


class Rejects:
    """The rejects file: the refused rows as read, plus a ``reject_reason`` column."""

    def __init__(self, out: IO[str] | None, cols: list[str]) -> None:
        self.writer = (
            csv.DictWriter(out, fieldnames=[*cols, "reject_reason"], extrasaction="ignore")
            if out
            else None
        )
        if self.writer:
            self.writer.writeheader()
        self.out = out

    def add(self, group: Group, reason: str) -> None:
        if self.writer is None:
            return
        for row in group.rows:
            self.writer.writerow({**{k: _cell(v) for k, v in row.items()}, "reject_reason": reason})

    def flush(self) -> None:
        if self.out:
            self.out.flush()


def _cell(value: Any) -> Any:
    return value if isinstance(value, str | int | float) or value is None else str(value)


@contextmanager
def _rejects(path: Path | None, cols: list[str]) -> Iterator[Rejects]:
    if path is None:
        yield Rejects(None, cols)
        return
    with path.open("w", newline="", encoding="utf-8") as out:
        yield Rejects(out, cols)


def run(
    factory: sessionmaker[Session],
    caller: Caller,
    path: Path,
    opts: Options,
    clock: Clock,
    progress: Progress | None = None,
) -> Summary:
    """Import ``path`` for ``caller``'s merchant; see the module docstring."""
    cols = columns(path)
    fmt = formats.detect(cols) if opts.fmt == "auto" else opts.fmt
    if fmt not in formats.FORMATS:
        raise InvalidInput(
            f"format must be auto or one of {', '.join(formats.FORMATS)}", field="format"
        )
    key = formats.order_key(fmt) if opts.kind == "orders" else None
    tz = ZoneInfo(opts.timezone) if opts.timezone else None
    summary = Summary()
    with _rejects(opts.rejects, cols) as rejects:
        for groups in batches(path, key, opts.batch_size):
            summary.read += len(groups)
            with transaction(factory) as session:
                if opts.kind == "orders":
                    _orders_batch(session, caller, groups, fmt, tz, clock, summary, rejects)
                else:
                    _customers_batch(session, caller, groups, clock, summary, rejects)
            rejects.flush()
            summary.batches += 1
            if progress:
                progress(len(groups))
    return summary


def _orders_batch(
    session: Session,
    caller: Caller,
    groups: list[Group],
    fmt: str,
    tz: ZoneInfo | None,
    clock: Clock,
    summary: Summary,
    rejects: Rejects,
) -> None:
    valid: dict[str, tuple[OrderIn, Group]] = {}
    for group in groups:
        try:
            order = OrderIn.model_validate(formats.ORDER_MAPPERS[fmt](group.rows, tz))
            delivery = formats.delivery(group.rows, tz)  # refused before the order is written
            if delivery is not None:
                DeliveryIn.model_validate(delivery)
        except (ValidationError, FideleError, ValueError, KeyError, TypeError) as exc:
            _reject(summary, rejects, group, reason_of(exc))
            continue
        if order.id in valid:  # the same id twice in one batch: the first stands
            _reject(summary, rejects, group, f"order {order.id!r} appears twice in the file")
            continue
        valid[order.id] = (order, group)
    written = bulk.write_orders(session, caller, [o for o, _ in valid.values()], clock.now())
    cols = groups[0].rows[0].keys() if groups else ()
    if fmt == "shopify" or any(c in cols for c in (*formats.DELIVERY_TIMES, "carrier")):
        for order_id in [*written.created, *written.unchanged]:
            try:
                with session.begin_nested():
                    _follow_up(session, caller, order_id, valid[order_id][1], fmt, tz, clock)
            except (ValidationError, FideleError, ValueError) as exc:
                for done in (written.created, written.unchanged):
                    if order_id in done:
                        done.remove(order_id)
                written.conflicts[order_id] = (
                    f"order written, its later state not: {reason_of(exc)}"
                )
    summary.created += len(written.created)
    summary.unchanged += len(written.unchanged)
    for order_id, reason in written.conflicts.items():
        _reject(summary, rejects, valid[order_id][1], reason)


def _follow_up(
    session: Session,
    caller: Caller,
    order_id: str,
    group: Group,
    fmt: str,
    tz: ZoneInfo | None,
    clock: Clock,
) -> None:
    """Apply what the export says happened after the order (cancelled, refunded, delivered)
    through the orders and delivery services, as the API and the connectors would. All are
    idempotent (a status already reached, a refund by its id, a delivery judged once), so
    importing the same file again changes nothing and finishes what a failed run left
    undone."""
    if fmt == "shopify":
        for step in formats.shopify_followups(group.rows, tz):
            if "refund" in step:
                refund = RefundIn.model_validate(step["refund"])
                orders_service.refund(
                    session, caller, order_id, refund, clock.now(), source="import"
                )
            else:
                status = StatusIn.model_validate(step)
                orders_service.set_status(
                    session, caller, order_id, status, clock.now(), source="import"
                )

    found = formats.delivery(group.rows, tz)
    if found is not None:
        data = DeliveryIn.model_validate(found)
        delivered = None
        if data.delivered_at is not None:
            delivered = StatusIn(status="delivered", occurred_at=data.delivered_at)
        shop = delivery_in(data.promised_at, data.delivered_at, data.carrier)
        connectors.deliver(session, caller, order_id, shop, delivered, clock.now(), "import")


def _customers_batch(
    session: Session,
    caller: Caller,
    groups: list[Group],
    clock: Clock,
    summary: Summary,
    rejects: Rejects,
) -> None:
    now = clock.now()
    for group in groups:
        try:
            ext, body = formats.customer(group.rows[0])
            data = CustomerIn.model_validate(body)
            with session.begin_nested():
                customer, created = customers.upsert(
                    session, caller, ext, data, now, source="import"
                )
        except (ValidationError, FideleError, ValueError, KeyError, TypeError) as exc:
            _reject(summary, rejects, group, reason_of(exc))
            continue
        if created:
            summary.created += 1
        elif customer.updated_at == now:
            summary.updated += 1
        else:
            summary.unchanged += 1


def _reject(summary: Summary, rejects: Rejects, group: Group, reason: str) -> None:
    summary.rejected += 1
    rejects.add(group, f"row {group.first_row}: {reason}")
