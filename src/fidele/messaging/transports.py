"""How a rendered message leaves: SMTP (``FIDELE_SMTP_URL``), ``.eml`` files (development
default, ``FIDELE_MESSAGES_DIR``) or the merchant's messaging webhook (SMS/push providers),
signed like fidele's outgoing webhooks.

A transport raises :class:`Temporary` when the message was certainly not accepted and may be
tried again later (SMTP 4xx, connection refused), :class:`Permanent` when it was refused for
good (SMTP 5xx), and :class:`Uncertain` when it may have been accepted (the connection died
after the message's data was sent): such a message is never sent again automatically."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fidele.settings import Settings

# Test hook (tests/messaging/test_exactly_once.py): seconds the worker sleeps right after the
# SMTP server accepted a message and before the outcome is recorded, so a test can kill it
# at the worst moment.
PAUSE_AFTER_ACCEPT = "FIDELE_MESSAGING_TEST_PAUSE_AFTER_ACCEPT"


class Temporary(Exception):
    """Worth retrying later (a 4xx answer, a connection refused or cut before acceptance)."""


class Permanent(Exception):
    """Never worth retrying (a 5xx answer): the message is recorded failed."""


class Uncertain(Exception):
    """The server may have accepted the message: recorded, never sent again."""


@dataclass
class Outgoing:
    send_id: int
    merchant_id: int
    channel: str
    topic: str
    to: str
    sender: str
    subject: str
    html: str | None
    text: str | None
    message_id: str
    headers: dict[str, str] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)  # extra fields for the webhook

    def mime(self, now: Any) -> bytes:
        """The RFC 5322 message, CRLF line ends: ``multipart/alternative`` (text, then HTML)
        or a single part, quoted-printable UTF-8. Built by hand: the stdlib's
        ``EmailMessage`` spent ~5 ms of CPU per message in its header registry."""
        head = [
            ("From", _address(self.sender)),
            ("To", self.to),
            ("Subject", _header(self.subject)),
            ("Message-ID", self.message_id),
            ("Date", format_datetime(now)),
            ("MIME-Version", "1.0"),
            *((name, _header(value)) for name, value in self.headers.items()),
        ]
        parts = [
            (kind, body)
            for kind, body in (("plain", self.text), ("html", self.html))
            if body is not None
        ]
        lines = [f"{name}: {value}" for name, value in head]
        if len(parts) == 1:
            kind, body = parts[0]
            lines += _part_head(kind)
            return ("\r\n".join(lines) + "\r\n\r\n").encode() + _qp(body)
        boundary = f"=_fidele_{self.send_id}_{abs(hash(self.message_id)) % 10**12}"
        lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        out = ("\r\n".join(lines) + "\r\n\r\n").encode()
        for kind, body in parts:
            out += f"--{boundary}\r\n".encode()
            out += ("\r\n".join(_part_head(kind)) + "\r\n\r\n").encode() + _qp(body) + b"\r\n"
        return out + f"--{boundary}--\r\n".encode()


@lru_cache(maxsize=1024)
def _address(value: str) -> str:
    """``Name <addr>`` with a non-ASCII name encoded (RFC 2047), the address left as it is."""
    name, addr = parseaddr(" ".join(value.split()))
    return formataddr((name, addr), charset="utf-8") if addr else _header(value)


def _header(value: str) -> str:
    """One line (no header injection); non-ASCII as RFC 2047 base64 encoded-words of at
    most 75 characters, split between characters (the stdlib's Header.encode cost ~1 ms)."""
    value = " ".join(value.split())
    if value.isascii() and len(value) < 900:
        return value
    words, chunk = [], ""
    for char in value:
        if len((chunk + char).encode()) > 45:  # 45 bytes -> 60 base64 chars + 12 of framing
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words if w)


def _part_head(kind: str) -> list[str]:
    return [
        f'Content-Type: text/{kind}; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
    ]


def _qp(body: str) -> bytes:
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    return encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    user: str | None
    password: str | None
    tls: bool  # smtps://: TLS from the first byte
    starttls: bool  # smtp://...?starttls=true: upgrade after EHLO
    timeout: float
    ca_file: str | None = None  # PEM CAs trusted for the server's certificate (else the system's)

    @classmethod
    def parse(cls, url: str, timeout: float, ca_file: str | None = None) -> SmtpConfig:
        """``smtp://user:pass@host:port`` (``?starttls=true`` to upgrade; ``smtps://`` for TLS
        from the start); default ports 25 and 465. With TLS the server's certificate is
        verified, hostname included, against ``ca_file`` (``FIDELE_SMTP_CA_FILE``) if given,
        else the system's trusted CAs."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("FIDELE_SMTP_URL must look like smtp://user:pass@host:port")
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            starttls=query.get("starttls") in ("1", "true", "yes"),
            timeout=timeout,
            ca_file=ca_file or None,
        )

    def tls_context(self) -> ssl.SSLContext:
        """Certificate and hostname verified (the stdlib's defaults), against ``ca_file``."""
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise Temporary(f"FIDELE_SMTP_CA_FILE {self.ca_file!r} cannot be used: {exc}") from exc


class SmtpTransport:
    """One SMTP connection per delivering thread, kept open between messages."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open_conns: set[smtplib.SMTP] = set()  # every thread's, for close()
        self._tls: ssl.SSLContext | None = None  # one per process (loading CAs costs ~10 ms)

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = self.config.tls_context()
        return self._tls

    def _connection(self) -> tuple[smtplib.SMTP, bool]:
        """This thread's connection, and whether it was opened just now."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, False
        try:
            conn = self._open()
        except ssl.SSLCertVerificationError as exc:
            raise Temporary(
                f"SMTP server certificate not trusted ({exc.verify_message}): "
                "set FIDELE_SMTP_CA_FILE to the CA that signed it"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise Temporary(f"SMTP server does not offer STARTTLS: {exc}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise Temporary(f"SMTP login refused: {exc}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise Temporary(f"SMTP connection failed: {exc}") from exc
        self._local.conn = conn
        with self._lock:
            self._open_conns.add(conn)
        return conn, True

    def _open(self) -> smtplib.SMTP:
        c = self.config
        context = self._context() if c.tls or c.starttls else None
        if c.tls:
            conn = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout, context=context)
        else:
            conn = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        try:
            conn.ehlo()
            if c.starttls:
                conn.starttls(context=context)
                conn.ehlo()
            if c.user:
                conn.login(c.user, c.password or "")
        except BaseException:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                conn.close()
            raise
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            self._close(conn)

    def _close(self, conn: smtplib.SMTP) -> None:
        with self._lock:
            self._open_conns.discard(conn)
        with contextlib.suppress(OSError):  # a connection already gone needs no closing
            conn.close()

    def deliver(self, msg: Outgoing, raw: bytes) -> None:
        while True:
            conn, fresh = self._connection()
            try:
                code, reply = conn.mail(msg.sender)
                if code == 250:
                    code, reply = conn.rcpt(msg.to)
                if code not in (250, 251):
                    conn.rset()
                    _refused(code, reply)
                break
            except (OSError, smtplib.SMTPServerDisconnected) as exc:
                self._drop()  # nothing was sent yet: the message can be tried again
                if not fresh:  # a kept connection the server closed meanwhile: a new one
                    continue
                raise Temporary(f"SMTP connection lost: {exc}") from exc
        try:
            code, reply = conn.data(raw)
        except smtplib.SMTPDataError as exc:  # DATA itself refused: the content was not sent
            conn.rset()
            _refused(exc.smtp_code, exc.smtp_error)
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise Uncertain(f"connection lost while the message was sent: {exc}") from exc
        if code != 250:
            _refused(code, reply)
        pause = os.environ.get(PAUSE_AFTER_ACCEPT)
        if pause:
            time.sleep(float(pause))

    def close(self) -> None:
        """Every thread's connection (QUIT, then closed)."""
        self._local.conn = None
        with self._lock:
            conns, self._open_conns = list(self._open_conns), set()
        for conn in conns:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                conn.quit()
            with contextlib.suppress(OSError):
                conn.close()


def _refused(code: int, reply: bytes | str) -> None:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    if 400 <= code < 500:
        raise Temporary(f"SMTP {code} {text}")
    raise Permanent(f"SMTP {code} {text}")


class FileTransport:
    """Writes ``<dir>/<merchant id>/<ledger id>.eml`` (atomically: a reader never sees half a
    file, and a second write of the same message replaces it)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def deliver(self, msg: Outgoing, raw: bytes) -> None:
        folder = self.directory / str(msg.merchant_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{msg.send_id}.eml.tmp"
            tmp.write_bytes(raw)
            os.replace(tmp, folder / f"{msg.send_id}.eml")
        except OSError as exc:
            raise Temporary(f"cannot write the message file: {exc}") from exc

    def close(self) -> None:
        """Nothing held open between messages."""


class WebhookTransport:
    """POSTs the rendered message as JSON to the merchant's messaging webhook
    (``policy.webhook_url``), signed with the merchant's webhook secret like every outgoing
    webhook (``X-Fidele-Signature: sha256=<hex HMAC of the body>``); ``X-Fidele-Delivery`` is
    the ledger row's id, the same on every retry, for the receiver to deduplicate on."""

    def deliver(self, msg: Outgoing, raw: bytes) -> None:
        import httpx

        from fidele.webhooks import domain as hooks
        from fidele.webhooks.service import client

        url = msg.payload["webhook_url"]
        body = raw
        headers = {
            "Content-Type": "application/json",
            "X-Fidele-Signature": msg.payload["signature"],
            "X-Fidele-Topic": f"message.{msg.topic}",
            "X-Fidele-Delivery": str(msg.send_id),
        }
        try:
            from fidele.settings import get_settings

            target = hooks.check_url(url, allow_private=get_settings().private_webhooks_allowed)
            response = client().post(
                target.url,
                content=body,
                headers={**headers, "Host": target.host},
                extensions=target.extensions,
            )
        except hooks.UnsafeWebhookUrl as exc:
            raise Permanent(exc.detail) from exc
        except httpx.HTTPError as exc:
            raise Temporary(f"webhook unreachable: {exc}") from exc
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise Permanent(f"webhook answered {response.status_code}")
        if response.status_code >= 300:
            raise Temporary(f"webhook answered {response.status_code}")

    def close(self) -> None:
        """Nothing held open between messages (each POST uses the shared client)."""


def webhook_body(msg: Outgoing) -> bytes:
    data = {
        "id": msg.send_id,
        "message_id": msg.message_id,
        "channel": msg.channel,
        "topic": msg.topic,
        "to": msg.to,
        "subject": msg.subject,
        "text": msg.text,
        "html": msg.html,
        **{k: v for k, v in msg.payload.items() if k not in ("webhook_url", "signature")},
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


class Transports:
    """The transports of one delivering process: email over SMTP when ``smtp_url`` is set,
    to files otherwise; the other channels to the merchant's webhook."""

    def __init__(self, settings: Settings) -> None:
        self.email: SmtpTransport | FileTransport = (
            SmtpTransport(
                SmtpConfig.parse(
                    settings.smtp_url, settings.smtp_timeout_seconds, settings.smtp_ca_file
                )
            )
            if settings.smtp_url
            else FileTransport(settings.messages_dir)
        )
        self.webhook = WebhookTransport()

    def for_channel(self, channel: str) -> SmtpTransport | FileTransport | WebhookTransport:
        return self.email if channel == "email" else self.webhook

    def close(self) -> None:
        self.email.close()
