"""Delivery of the send ledger, exactly once.

A message goes through these steps, each its own committed transaction:

1. **claim** (a batch): queued rows due now, taken with ``FOR UPDATE SKIP LOCKED`` so several
   workers claim disjoint batches; the claim is a lease (``claimed_until``), the status stays
   ``queued``. A worker that dies here loses nothing: the lease lapses and another worker
   claims the rows. The merchant's throttle gives each claimed message its time slot.
2. **prepare**: consent, suppression and the complaint flag are checked again (a consent
   withdrawn since the message was decided skips it), the template is rendered.
3. **sending**: the row is marked ``sending`` and committed, then the transport is called
   (SMTP, file, webhook). The marks of a process's mail threads are group-committed
   (:class:`SendingMarks`): a thread's mark is still committed before its SMTP transaction
   starts, and only a message about to be sent is marked, but the marks that arrive while a
   commit is under way share the next one.
4. **record**: ``sent``, ``failed`` (permanent refusal, retries exhausted), or back to
   ``queued`` with a backoff (temporary failure: certainly not accepted).

A worker killed between 3 and 4 (after the SMTP server accepted the message, before the
record) leaves a ``sending`` row. When its lease lapses, ``expire_claims`` records it as
``unknown`` (reason ``interrupted``), and it is **not** sent again: a duplicate is worse than
a message to check (the ledger lists them; an operator may requeue one). At most
``messaging_concurrency`` messages per killed worker can end so, the ones in flight."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, text, update
from sqlalchemy.orm import Session, sessionmaker

from fidele.db.session import read_only, transaction
from fidele.kit.clock import Clock
from fidele.kit.types import UTCDateTime
from fidele.messaging import context as contexts
from fidele.messaging import domain, templates, tracking
from fidele.messaging.consent import address_of
from fidele.messaging.models import MessageSend
from fidele.messaging.repository import BatchRepository, PolicyRepository, SendRepository
from fidele.messaging.service import WEBHOOK_CHANNELS, links_for
from fidele.messaging.transports import (
    Outgoing,
    Permanent,
    Temporary,
    Transports,
    Uncertain,
    webhook_body,
)
from fidele.settings import Settings, get_settings

log = logging.getLogger("fidele.messaging")
THROTTLE_HORIZON = timedelta(seconds=1)  # how far ahead a claim books a merchant's slots


@dataclass
class Claim:
    id: int
    merchant_id: int
    delay: float  # seconds after the claim before the merchant's throttle lets it go


@dataclass
class Prepared:
    claim: Claim
    outgoing: Outgoing | None  # None: finished at preparation (skipped, failed)
    raw: bytes = b""
    attempts: int = 1


@dataclass
class Result:
    id: int
    status: str  # sent | failed | skipped | queued (retry) | unknown
    reason: str | None = None
    error: str | None = None
    at: datetime | None = None
    retry_at: datetime | None = None
    to: str | None = None
    locale: str | None = None


# --- 1. claim ---------------------------------------------------------------------------


def claim(
    factory: sessionmaker[Session], now: datetime, limit: int, lease: timedelta
) -> list[Claim]:
    with transaction(factory) as session:
        repo = SendRepository(session)
        rows = repo.due_ids(now, limit)
        if not rows:
            return []
        by_merchant: dict[int, list[int]] = defaultdict(list)
        for send_id, merchant_id in rows:
            by_merchant[merchant_id].append(send_id)
        claims: list[Claim] = []
        for merchant_id, mine in by_merchant.items():
            claims += _throttled(session, merchant_id, mine, now)
        repo.lease([c.id for c in claims], now + lease)
        return claims


def _throttled(session: Session, merchant_id: int, rows: list[int], now: datetime) -> list[Claim]:
    """The merchant's messages that its rate (messages per second, shared by every worker
    through ``messaging_policies.next_slot_at``) lets go within the next second, each with
    its delay; the others stay queued for a later claim."""
    from fidele.messaging.service import get_policy

    rate = get_policy(session, merchant_id).rate_per_second
    if not rate:
        return [Claim(send_id, merchant_id, 0.0) for send_id in rows]
    policy = PolicyRepository(session).lock_or_create(merchant_id, now)
    start = max(policy.next_slot_at or now, now)
    step = 1.0 / rate
    out = []
    for n, send_id in enumerate(rows):
        slot = start + timedelta(seconds=n * step)
        if slot > now + THROTTLE_HORIZON:
            break
        out.append(Claim(send_id, merchant_id, (slot - now).total_seconds()))
    policy.next_slot_at = start + timedelta(seconds=len(out) * step)
    return out


# --- 2. prepare -------------------------------------------------------------------------


def prepare(
    factory: sessionmaker[Session], claims: list[Claim], now: datetime, settings: Settings
) -> tuple[list[Prepared], list[Result]]:
    """Check and render a batch (a query per kind of fact, not per message)."""
    ready: list[Prepared] = []
    done: list[Result] = []
    by_id = {c.id: c for c in claims}
    with transaction(factory) as session:
        repo = BatchRepository(session)
        rows = repo.sends(list(by_id))
        customers = repo.customers({r.customer_id for r in rows})
        tpls = repo.templates({r.template_id for r in rows if r.template_id})
        merchants = {r.merchant_id for r in rows}
        policies = {m: domain.policy_from(p.document) for m, p in repo.policies(merchants).items()}
        names = repo.merchant_names(merchants)
        consents = repo.consents(set(customers))
        addresses = {a for r in rows if (a := _address(customers.get(r.customer_id), r.channel))}
        suppressed = repo.suppressions(merchants, addresses)
        complaints = repo.complaints(set(customers))
        for row in rows:
            policy = policies.get(row.merchant_id) or domain.Policy()
            customer = customers[row.customer_id]
            address = _address(customer, row.channel)
            reason = domain.ineligible_reason(
                topic=row.topic,
                erased=customer.erased_at is not None,
                has_address=address is not None,
                channel_ready=row.channel not in WEBHOOK_CHANNELS or bool(policy.webhook_url),
                suppression=suppressed.get((row.merchant_id, row.channel, address or "")),
                consented=(row.customer_id, row.topic, row.channel) in consents,
                complaint_open=row.customer_id in complaints,
            )
            if reason is not None:
                done.append(Result(row.id, "skipped", reason, at=now))
                continue
            try:
                out = _render(
                    session,
                    row,
                    customer,
                    tpls[row.template_id],
                    policy,
                    names,
                    address,
                    now,
                    settings,
                )  # type: ignore[index, arg-type]
            except templates.TemplateError as exc:
                done.append(Result(row.id, "failed", "template_error", exc.detail, at=now))
                continue
            raw = webhook_body(out) if row.channel != "email" else out.mime(now)
            ready.append(Prepared(by_id[row.id], out, raw, row.attempts + 1))
    return ready, done


def _address(customer: Any, channel: str) -> str | None:
    return None if customer is None else address_of(customer, channel)


def _render(
    session: Session,
    row: MessageSend,
    customer: Any,
    tpl: Any,
    policy: domain.Policy,
    names: dict[int, str],
    address: str,
    now: datetime,
    settings: Settings,
) -> Outgoing:
    links = links_for(row.merchant_id, customer.id, row.topic)
    ctx = contexts.build(
        session,
        customer,
        uses=templates.names_used(tpl.id, tpl.version, tpl.variants),
        links=links,
        message={"id": row.id, "topic": row.topic, "key": row.key},
        extra=row.context,
        now=now,
        shop_name=names.get(row.merchant_id),
    )
    rendered = templates.render(
        template_id=tpl.id,
        version=tpl.version,
        variants=tpl.variants,
        strict=tpl.strict,
        locale=customer.locale,
        default_locale=policy.default_locale,
        context=ctx,
    )
    host = urlsplit(settings.public_url).hostname or "localhost"
    marketing = row.topic != domain.TRANSACTIONAL
    html, text = rendered.html, rendered.text
    headers: dict[str, str] = {}
    if marketing:
        html, text = _visible_unsubscribe(html, text, links["unsubscribe"], rendered.locale)
        headers["List-Unsubscribe"] = f"<{links['unsubscribe']}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if row.channel == "email" and html is not None:  # open pixel, signed click redirects
        html = tracking.instrument_html(
            html,
            public_url=settings.public_url,
            secret=settings.secret_key,
            merchant_id=row.merchant_id,
            customer_id=customer.id,
            send_id=row.id,
        )
    payload: dict[str, Any] = {}
    if row.channel != "email":
        from fidele.tenancy import service as tenancy
        from fidele.webhooks.service import sign

        merchant = tenancy.get_merchant(session, row.merchant_id)
        payload = {
            "webhook_url": policy.webhook_url,
            "customer": contexts.customer_part(customer),
            "locale": rendered.locale,
            "links": links,
        }
    out = Outgoing(
        send_id=row.id,
        merchant_id=row.merchant_id,
        channel=row.channel,
        topic=row.topic,
        to=address if row.channel == "email" else (customer.email or address),
        sender=policy.mail_from or settings.mail_from,
        subject=rendered.subject,
        html=html,
        text=text,
        message_id=domain.message_id(row.id, row.merchant_id, host),
        headers=headers,
        payload=payload,
    )
    out.payload["locale"] = rendered.locale
    if row.channel != "email":
        secret = tenancy.merchant_webhook_secret(merchant, settings.secret_key)
        out.payload["signature"] = sign(secret, webhook_body(out))
    return out


FOOTER = {
    "fr": "Se désabonner",
    "en": "Unsubscribe",
}


def _visible_unsubscribe(
    html: str | None, text: str | None, url: str, locale: str
) -> tuple[str | None, str | None]:
    """Every marketing email shows an unsubscribe link; one is added at the end of each part
    whose template did not place ``links.unsubscribe`` itself."""
    label = FOOTER.get(locale.split("-")[0].lower(), FOOTER["en"])
    if html is not None and url not in html:
        link = f'<p style="font-size:12px;color:#666"><a href="{url}">{label}</a></p>'
        html = html.replace("</body>", link + "</body>", 1) if "</body>" in html else html + link
    if text is not None and url not in text:
        text = f"{text.rstrip()}\n\n{label}: {url}\n"
    return html, text


# --- 3. sending, 4. record --------------------------------------------------------------


# Prebuilt statements (building and compiling an UPDATE costs ~1 ms of CPU; this runs for
# every message).
_MARK_ONE = text(
    "UPDATE message_sends SET status = 'sending', message_id = :mid, claimed_until = :until "
    "WHERE id = :id AND status = 'queued'"
).bindparams(bindparam("until", type_=UTCDateTime()))
_MARK_MANY = text(
    "UPDATE message_sends SET status = 'sending', claimed_until = :until "
    "WHERE id IN :ids AND status = 'queued' RETURNING id"
).bindparams(bindparam("ids", expanding=True), bindparam("until", type_=UTCDateTime()))
_SET_MESSAGE_ID = text("UPDATE message_sends SET message_id = :mid WHERE id = :id")


def mark_sending(
    factory: sessionmaker[Session], marks: dict[int, str], lease_until: datetime
) -> set[int]:
    """Mark ``{ledger id: Message-ID}`` ``sending`` in one committed transaction, before
    their transport is called: a crash from here on leaves such a row ``sending`` (then
    ``unknown``), never ``queued``. Returns the ids marked (a row whose claim lapsed and that
    another worker took is not)."""
    if not marks:
        return set()
    with transaction(factory) as session:
        conn = session.connection()
        if len(marks) == 1:
            ((send_id, mid),) = marks.items()
            done = conn.execute(_MARK_ONE, {"mid": mid, "until": lease_until, "id": send_id})
            return {send_id} if done.rowcount == 1 else set()  # type: ignore[attr-defined]
        taken = set(conn.execute(_MARK_MANY, {"ids": list(marks), "until": lease_until}).scalars())
        if taken:
            conn.execute(_SET_MESSAGE_ID, [{"mid": marks[i], "id": i} for i in taken])
        return taken


@dataclass
class _Mark:
    send_id: int
    message_id: str
    until: datetime
    done: bool = False
    ok: bool = False
    error: BaseException | None = None


class SendingMarks:
    """Group commit of the ``sending`` marks of one process's mail threads. Each thread asks
    for its message to be marked and waits until that is committed, then sends it: a message
    is marked only when it is about to be sent (at most one per thread, as with a commit per
    message), but the marks that arrive while a commit is under way go together in the next
    one, which saves a transaction (and a WAL flush) per message."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self._cond = threading.Condition()
        self._waiting: list[_Mark] = []
        self._committing = False

    def mark(self, send_id: int, message_id: str, until: datetime) -> bool:
        """True once the row is committed ``sending``; False if another worker took it."""
        mine = _Mark(send_id, message_id, until)
        with self._cond:
            self._waiting.append(mine)
            while self._committing and not mine.done:
                self._cond.wait()
            if not mine.done:  # nobody is committing: this thread commits what is waiting
                self._committing = True
                batch, self._waiting = self._waiting, []
        if not mine.done:
            try:
                until = max(m.until for m in batch)
                taken = mark_sending(self.factory, {m.send_id: m.message_id for m in batch}, until)
                for m in batch:
                    m.ok = m.send_id in taken
            except BaseException as exc:
                for m in batch:
                    m.error = exc
                raise
            finally:
                with self._cond:
                    for m in batch:
                        m.done = True
                    self._committing = False
                    self._cond.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.ok


def transmit(
    factory: sessionmaker[Session],
    transports: Transports,
    item: Prepared,
    clock: Clock,
    lease: timedelta,
    started: float,
    marks: SendingMarks | None = None,
) -> Result:
    out = item.outgoing
    assert out is not None
    wait_for = started + item.claim.delay - time.monotonic()
    if wait_for > 0:  # the merchant's throttle slot
        time.sleep(wait_for)
    now = clock.now()
    marks = marks or SendingMarks(factory)
    try:
        marked = marks.mark(out.send_id, out.message_id, now + lease)
    except Exception:  # the database is unreachable: not sent; the claim lapses, it is retried
        log.exception("messaging: marking a message sending failed")
        return Result(out.send_id, "lost")
    if not marked:
        return Result(out.send_id, "lost")  # the claim lapsed and another worker took it
    try:
        transports.for_channel(out.channel).deliver(out, item.raw)
    except Temporary as exc:
        if item.attempts >= domain.MAX_ATTEMPTS:
            return Result(out.send_id, "failed", "retries_exhausted", str(exc)[:1000], clock.now())
        retry = clock.now() + domain.backoff(item.attempts)
        return Result(out.send_id, "queued", None, str(exc)[:1000], retry_at=retry)
    except Permanent as exc:
        return Result(out.send_id, "failed", "refused", str(exc)[:1000], clock.now())
    except Uncertain as exc:
        return Result(out.send_id, "unknown", "uncertain", str(exc)[:1000], clock.now())
    return Result(
        out.send_id, "sent", None, None, clock.now(), to=out.to, locale=out.payload.get("locale")
    )


_RECORD = (
    update(MessageSend.__table__)  # type: ignore[arg-type]
    .where(
        MessageSend.__table__.c.id == bindparam("rid"),
        # a literal list, not IN (an expanding parameter cannot go with executemany)
        text("message_sends.status IN ('queued', 'sending', 'unknown')"),
    )
    .values(
        status=bindparam("st"),
        reason=bindparam("rs"),
        last_error=bindparam("err"),
        sent_at=bindparam("sat"),
        next_attempt_at=bindparam("nat"),
        claimed_until=None,
        attempts=MessageSend.__table__.c.attempts + bindparam("inc"),
        to_address=bindparam("to"),
        locale=bindparam("loc"),
    )
)


def record(factory: sessionmaker[Session], results: list[Result], now: datetime) -> int:
    """Write a batch of outcomes in one transaction; returns how many were sent."""
    results = [r for r in results if r.status != "lost"]
    if not results:
        return 0
    params = [
        {
            "rid": r.id,
            "st": r.status,
            "rs": r.reason,
            "err": r.error,
            "sat": r.at if r.status == "sent" else None,
            "nat": r.retry_at,
            "inc": 0 if r.status == "skipped" else 1,
            "to": r.to,
            "loc": r.locale,
        }
        for r in results
    ]
    with transaction(factory) as session:
        session.connection().execute(_RECORD, params)
    return sum(1 for r in results if r.status == "sent")


def expire_claims(session: Session, now: datetime) -> int:
    """``sending`` rows whose worker's lease lapsed become ``unknown`` (reason
    ``interrupted``): the transport may have accepted them, so they are not sent again."""
    repo = SendRepository(session)
    return repo.set_status(
        repo.expired_claims(now),
        "sending",
        status="unknown",
        reason="interrupted",
        claimed_until=None,
    )


# --- the loops ---------------------------------------------------------------------------


def lease_of(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.messaging_claim_seconds)


def deliver_due(
    factory: sessionmaker[Session],
    clock: Clock,
    *,
    settings: Settings | None = None,
    max_batches: int = 1000,
) -> int:
    """Deliver what is due now, batch after batch, until nothing is (the ``messaging.deliver``
    job of ``fidele worker --once`` / ``run-once``); returns how many were sent."""
    settings = settings or get_settings()
    transports = Transports(settings)
    lease = lease_of(settings)
    sent = 0
    try:
        with transaction(factory) as session:
            expire_claims(session, clock.now())
        for _ in range(max_batches):
            now = clock.now()
            claims = claim(factory, now, 50, lease)
            if not claims:
                break
            ready, results = prepare(factory, claims, now, settings)
            started = time.monotonic()
            results += [transmit(factory, transports, p, clock, lease, started) for p in ready]
            sent += record(factory, results, clock.now())
    finally:
        transports.close()
    return sent


class MessagingLoop:
    """A daemon thread delivering the ledger continuously (in every ``fidele worker`` and
    the embedded worker of ``fidele serve``): a batch is claimed and prepared while the
    previous one is being sent by ``concurrency`` threads (one SMTP connection each)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        clock: Clock,
        *,
        concurrency: int,
        idle_seconds: float,
        settings: Settings | None = None,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.concurrency = max(1, concurrency)
        self.idle_seconds = idle_seconds
        self.settings = settings or get_settings()
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="fidele-messaging", daemon=True)
        self._expired_at = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def run(self) -> None:
        transports = Transports(self.settings)
        marks = SendingMarks(self.factory)
        lease = lease_of(self.settings)
        batch = self.concurrency * 8
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="fidele-mail") as pool:
            inflight: set[Future[Result]] = set()
            finished: list[Result] = []
            last_record = time.monotonic()
            while not self._stop.is_set():
                self._expire()
                if len(inflight) <= batch // 2:
                    free = batch - len(inflight)
                    ready, done = self._safe(lambda: self._claim(lease, free), ([], []))  # noqa: B023
                    finished += done
                    started = time.monotonic()
                    inflight |= {
                        pool.submit(
                            transmit, self.factory, transports, p, self.clock, lease, started, marks
                        )
                        for p in ready
                    }
                if not inflight and not finished:
                    self._stop.wait(self.idle_seconds * random.uniform(0.5, 1.5))
                    continue
                if inflight:
                    done_now, inflight = wait(
                        inflight, timeout=self.idle_seconds, return_when=FIRST_COMPLETED
                    )
                    finished += [f.result() for f in done_now]
                if finished and (
                    len(finished) >= batch // 2
                    or not inflight
                    or time.monotonic() - last_record > 0.25
                ):
                    self._record(finished)
                    finished, last_record = [], time.monotonic()
            finished += [f.result() for f in wait(inflight).done]
            self._record(finished)
        transports.close()

    def _claim(self, lease: timedelta, free: int) -> tuple[list[Prepared], list[Result]]:
        now = self.clock.now()
        claims = claim(self.factory, now, max(free, 1), lease)
        if not claims:
            return [], []
        return prepare(self.factory, claims, now, self.settings)

    def _record(self, results: list[Result]) -> None:
        if results:
            self.sent += self._safe(lambda: record(self.factory, results, self.clock.now()), 0)

    def _expire(self) -> None:
        if time.monotonic() - self._expired_at < 10:
            return
        self._expired_at = time.monotonic()

        def run() -> int:
            now = self.clock.now()
            with transaction(read_only(self.factory)) as session:
                if not SendRepository(session).expired_claims(now):
                    return 0
            with transaction(self.factory) as session:
                return expire_claims(session, now)

        self._safe(run, 0)

    def _safe(self, fn: Callable[[], Any], default: Any) -> Any:
        try:
            return fn()
        except Exception:  # the database is unreachable: log, wait, try again
            log.exception("messaging delivery step failed")
            self._stop.wait(self.idle_seconds)
            return default


# --- preview ---------------------------------------------------------------------------


def preview(
    session: Session,
    *,
    merchant_id: int,
    template: str,
    customer: Any,
    context: dict[str, Any],
    now: datetime,
    settings: Settings | None = None,
) -> Outgoing:
    """The message ``template`` would be for ``customer`` now, rendered exactly as the
    delivery renders it (headers, inlined CSS, unsubscribe link), without sending it nor
    writing anything."""
    from fidele.errors import NotFound
    from fidele.messaging.repository import TemplateRepository
    from fidele.messaging.service import get_policy

    tpl = TemplateRepository(session).by_name(merchant_id, template)
    if tpl is None:
        raise NotFound(f"template {template!r} not found")
    row = MessageSend(
        id=0,
        merchant_id=merchant_id,
        customer_id=customer.id,
        key="preview",
        template_id=tpl.id,
        topic=tpl.topic,
        channel="email",
        context=context,
    )
    policy = get_policy(session, merchant_id)
    names = BatchRepository(session).merchant_names({merchant_id})
    address = customer.email or ""
    return _render(
        session, row, customer, tpl, policy, names, address, now, settings or get_settings()
    )
