"""The outbox's ``email`` channel in development: emails are logged, not sent (a deployment
registers its own sender for ``email`` in a module named by ``FIDELE_EXTRA_MODULES``)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from fidele.outbox.models import OutboxMessage
from fidele.outbox.service import sender

log = logging.getLogger("fidele.outbox")


@sender("email")
def log_email(_: Session, msg: OutboxMessage) -> None:
    """Development sender: emails are logged, not sent (a real sender replaces this)."""
    log.info("email %s to %s", msg.topic, msg.payload.get("to"))
