"""The outbox's ``webhook`` channel. Discovered by ``fidele.kit.plugins.load_everything`` in every
process kind, so a stock ``fidele worker`` delivers webhooks without importing the API."""

from __future__ import annotations

from fidele.outbox.service import sender
from fidele.webhooks.service import send

sender("webhook")(send)
