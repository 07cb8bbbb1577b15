"""Feedback's subscriptions: a new merchant gets the built-in surveys (nps, csat) the
ready-made journeys link to. The complaints and delivery parts subscribe in their own
``*_handlers`` modules, imported here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

import fidele.feedback.templating  # noqa: F401  (survey_link/review_link for templates)
from fidele.events.bus import on_merchant_created
from fidele.feedback import service, siblings
from fidele.tenancy.models import Merchant


@on_merchant_created
def install_surveys(session: Session, merchant: Merchant, now: datetime) -> None:
    service.ensure_defaults(session, merchant.id, now)


siblings("handlers")
