"""The SMTP transport keeps one connection per delivering thread between messages; one the
server closed meanwhile is replaced at once (the message is not put off for a retry), and
``close`` ends every thread's."""

from __future__ import annotations

import threading
import time

from aiosmtpd.controller import Controller

from fidele.messaging.transports import Outgoing, SmtpConfig, SmtpTransport
from tests.conftest import T0
from tests.messaging.conftest import Sink


def _message(n: int) -> Outgoing:
    return Outgoing(
        send_id=n,
        merchant_id=1,
        channel="email",
        topic="lifecycle",
        to=f"c{n}@example.com",
        sender="Shop <shop@example.com>",
        subject=f"Message {n}",
        html=None,
        text=f"Hello {n}",
        message_id=f"<{n}@test>",
    )


def _send(transport: SmtpTransport, n: int) -> None:
    msg = _message(n)
    transport.deliver(msg, msg.mime(T0))


def test_a_connection_closed_by_the_server_is_replaced() -> None:
    from tests.fixtures.console import free_port

    sink = Sink("127.0.0.1", free_port())
    # a server that hangs up on a client idle for 0.3 s (as relays do after a while)
    controller = Controller(sink, hostname=sink.host, port=sink.port, timeout=0.3)
    controller.start()
    transport = SmtpTransport(SmtpConfig.parse(sink.url, 5))
    try:
        _send(transport, 1)
        _send(transport, 2)
        (kept,) = transport._open_conns  # the same connection for both
        time.sleep(1.0)
        _send(transport, 3)  # no Temporary: a new connection at once
        assert len(sink.messages) == 3
        assert kept not in transport._open_conns and len(transport._open_conns) == 1
    finally:
        transport.close()
        controller.stop()
    assert transport._open_conns == set()


def test_close_ends_every_threads_connection(sink: Sink) -> None:
    transport = SmtpTransport(SmtpConfig.parse(sink.url, 5))
    threads = [threading.Thread(target=_send, args=(transport, n)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conns = list(transport._open_conns)
    assert len(conns) == 3 and len(sink.messages) == 3
    transport.close()
    assert transport._open_conns == set()
    assert all(c.sock is None for c in conns)  # QUIT sent and closed
