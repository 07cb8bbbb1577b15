"""Survey and review links in message templates::

    {{ survey_link('nps') }}                 the nps survey, this message's occasion
    {{ survey_link('csat', occasion='order-42') }}
    {{ review_link() }}                      the order of the journey (order.delivered)

The occasion defaults to the one the journey's trigger event names (``survey_occasion``,
e.g. ``complaint:12`` for ``complaint.resolved``: one answer per complaint), else the
journey's enrollment (``flow:<enrollment>``: the reminders of one journey share one answer),
else the message's own key. Links are signed for the message's customer and expire after the
survey's ``link_days``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import pass_context
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context
from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.feedback.repository import OrderReadRepository, SurveyRepository
from fidele.messaging.context import provider
from fidele.orders.models import Order


def _occasion(context: Context) -> str:
    named = context.get("survey_occasion")
    if isinstance(named, str) and named:
        return named
    key = str((context.get("message") or {}).get("key") or "message")
    if key.startswith("flow:") and key.count(":") >= 2:
        return key.rsplit(":", 1)[0]
    return key


@provider("survey_link")
def survey_link_helper(session: Session, customer: Customer, now: datetime) -> Any:
    from fidele.feedback import service
    from fidele.settings import get_settings

    @pass_context
    def survey_link(
        context: Context, code: str = "nps", occasion: str | None = None, days: int | None = None
    ) -> str:
        survey = SurveyRepository(session).by_code(customer.merchant_id, str(code))
        if survey is None:
            raise TemplateRuntimeError(f"survey_link: no survey with code {code!r}")
        settings = get_settings()
        url, _ = service.survey_link(
            survey,
            customer,
            str(occasion or _occasion(context)),
            now,
            secret=settings.secret_key,
            public_url=settings.public_url,
            days=days,
        )
        return url

    return survey_link


@provider("review_link")
def review_link_helper(session: Session, customer: Customer, now: datetime) -> Any:
    from fidele.feedback import service
    from fidele.settings import get_settings

    @pass_context
    def review_link(context: Context, order: str | None = None) -> str:
        repo = OrderReadRepository(session)
        found: Order | None
        if order is not None:
            found = repo.by_external_id(customer.merchant_id, str(order))
        else:
            order_id = context.get("order_id")
            found = session.get(Order, order_id) if isinstance(order_id, int) else None
        if found is None or found.customer_id != customer.id:
            raise TemplateRuntimeError("review_link: no order of this customer to review")
        settings = get_settings()
        url, _ = service.review_link(
            found, now, secret=settings.secret_key, public_url=settings.public_url
        )
        return url

    return review_link
