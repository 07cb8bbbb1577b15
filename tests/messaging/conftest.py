"""Factories of the messaging tests: customers with consent, templates, a loopback SMTP sink."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.customers.models import Customer
from fidele.customers.schemas import CustomerIn
from fidele.messaging import service
from tests.conftest import T0
from tests.fixtures.factories import Tenant

VARIANTS = {
    "en": {
        "subject": "Hello {{ customer.first_name }}",
        "html": "<html><head><style>p { color: #333 } .big { font-size: 20px }</style></head>"
        '<body><p class="big">Hi {{ customer.first_name }}, {{ shop.name }}</p>'
        '<p><a href="{{ links.unsubscribe }}">unsubscribe</a></p></body></html>',
        "text": "Hi {{ customer.first_name }} from {{ shop.name }}",
    },
    "fr": {
        "subject": "Bonjour {{ customer.first_name }}",
        "html": "<p>Bonjour {{ customer.first_name }}</p>",
        "text": "Bonjour {{ customer.first_name }}",
    },
}


def make_customer(
    session: Session,
    tenant: Tenant,
    ext: str = "c1",
    *,
    topics: tuple[str, ...] = ("newsletter", "lifecycle"),
    now: datetime = T0,
    **fields: object,
) -> Customer:
    data = CustomerIn.model_validate(
        {"email": f"{ext}@example.com", "first_name": ext.upper(), **fields}
    )
    customer = customers.upsert(session, tenant.caller, ext, data, now)[0]
    for topic in topics:
        service.set_consent(
            session,
            merchant_id=tenant.merchant_id,
            customer_id=customer.id,
            topic=topic,
            channel="email",
            granted=True,
            source="test",
            now=now,
        )
    return customer


def make_template(
    session: Session, tenant: Tenant, name: str = "hello", topic: str = "lifecycle", variants=None
) -> int:  # type: ignore[no-untyped-def]
    return service.ensure_template(
        session,
        merchant_id=tenant.merchant_id,
        name=name,
        topic=topic,
        variants=variants or VARIANTS,
        now=T0,
    )


@dataclass
class Sink:
    """An aiosmtpd server on loopback that keeps what it receives."""

    host: str
    port: int
    messages: list[bytes] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # rcpt -> SMTP status line
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        with self.lock:
            self.messages.append(envelope.content)
        return "250 Message accepted for delivery"


@pytest.fixture
def sink() -> Iterator[Sink]:
    from tests.fixtures.console import free_port

    port = free_port()
    handler = Sink("127.0.0.1", port)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()
