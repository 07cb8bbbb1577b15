"""All SQL of surveys and reviews."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from fidele.customers.models import Customer
from fidele.feedback.models import Review, Survey, SurveyAnswer
from fidele.kit.repository import RepositoryBase
from fidele.orders.models import Order, OrderLine
from fidele.segments.models import SegmentMember


class SurveyRepository(RepositoryBase[Survey]):
    model = Survey

    def find(self, merchant_id: int, survey_id: int) -> Survey | None:
        row = self.session.get(Survey, survey_id)
        return row if row is not None and row.merchant_id == merchant_id else None

    def by_code(self, merchant_id: int, code: str) -> Survey | None:
        stmt = select(Survey).where(Survey.merchant_id == merchant_id, Survey.code == code)
        return self.one_or_none(stmt)

    def of_merchant(self, merchant_id: int) -> Sequence[Survey]:
        return self.all(select(Survey).where(Survey.merchant_id == merchant_id).order_by(Survey.id))

    def codes(self, merchant_id: int) -> set[str]:
        stmt = select(Survey.code).where(Survey.merchant_id == merchant_id)
        return set(self.session.execute(stmt).scalars())


class AnswerRepository(RepositoryBase[SurveyAnswer]):
    model = SurveyAnswer

    def find(self, survey_id: int, customer_id: int, occasion: str) -> SurveyAnswer | None:
        stmt = select(SurveyAnswer).where(
            SurveyAnswer.survey_id == survey_id,
            SurveyAnswer.customer_id == customer_id,
            SurveyAnswer.occasion == occasion,
        )
        return self.one_or_none(stmt)

    def _of(self, survey_id: int, segment_id: int | None) -> Select[Any]:
        stmt = select(SurveyAnswer).where(SurveyAnswer.survey_id == survey_id)
        if segment_id is not None:
            members = select(SegmentMember.customer_id).where(
                SegmentMember.segment_id == segment_id
            )
            stmt = stmt.where(SurveyAnswer.customer_id.in_(members))
        return stmt

    def results_rows(
        self, survey_id: int, segment_id: int | None
    ) -> Sequence[tuple[int | None, datetime, dict[str, Any]]]:
        """(score, answered_at, answers) of every answer (of the segment's customers)."""
        inner = self._of(survey_id, segment_id).subquery()
        stmt = select(inner.c.score, inner.c.answered_at, inner.c.answers)
        return [tuple(r) for r in self.session.execute(stmt)]  # type: ignore[misc]

    def latest_with_customers(
        self, survey_id: int, segment_id: int | None, limit: int, *, commented: bool = False
    ) -> Sequence[tuple[SurveyAnswer, str]]:
        """The latest answers (with a comment, if ``commented``) and their customer's id."""
        stmt = self._of(survey_id, segment_id)
        if commented:
            stmt = stmt.where(SurveyAnswer.comment.is_not(None))
        stmt = (
            stmt.add_columns(Customer.external_id)
            .join(Customer, Customer.id == SurveyAnswer.customer_id)
            .order_by(SurveyAnswer.updated_at.desc(), SurveyAnswer.id.desc())
            .limit(limit)
        )
        return [(a, ext) for a, ext in self.session.execute(stmt)]

    def latest_of_merchant(self, merchant_id: int, limit: int) -> Sequence[Any]:
        """The merchant's latest answers: (answer, survey code, survey kind, customer id)."""
        stmt = (
            select(SurveyAnswer, Survey.code, Survey.kind, Customer.external_id)
            .join(Survey, Survey.id == SurveyAnswer.survey_id)
            .join(Customer, Customer.id == SurveyAnswer.customer_id)
            .where(SurveyAnswer.merchant_id == merchant_id)
            .order_by(SurveyAnswer.updated_at.desc(), SurveyAnswer.id.desc())
            .limit(limit)
        )
        return list(self.session.execute(stmt))

    def of_customer(self, customer_id: int) -> Sequence[SurveyAnswer]:
        stmt = select(SurveyAnswer).where(SurveyAnswer.customer_id == customer_id)
        return self.all(stmt.order_by(SurveyAnswer.id))

    def latest_of_customer(self, merchant_id: int, customer_id: int, limit: int) -> Sequence[Any]:
        """One customer's latest answers (the last given first): (answer, survey)."""
        stmt = (
            select(SurveyAnswer, Survey)
            .join(Survey, Survey.id == SurveyAnswer.survey_id)
            .where(SurveyAnswer.merchant_id == merchant_id, SurveyAnswer.customer_id == customer_id)
            .order_by(SurveyAnswer.updated_at.desc(), SurveyAnswer.id.desc())
            .limit(limit)
        )
        return list(self.session.execute(stmt))


class ReviewRepository(RepositoryBase[Review]):
    model = Review

    def find(self, order_id: int, product_id: str) -> Review | None:
        stmt = select(Review).where(Review.order_id == order_id, Review.product_id == product_id)
        return self.one_or_none(stmt)

    def of_order(self, order_id: int) -> Sequence[Review]:
        return self.all(select(Review).where(Review.order_id == order_id).order_by(Review.id))

    def count_of_order(self, order_id: int) -> int:
        stmt = select(func.count()).where(Review.order_id == order_id)
        return int(self.session.execute(stmt).scalar_one())

    def export(
        self, merchant_id: int, *, after_id: int, limit: int, since: datetime | None
    ) -> Sequence[tuple[Review, str, str]]:
        """Reviews in id order after ``after_id``, with the customer's and order's ids."""
        stmt = (
            select(Review, Customer.external_id, Order.external_id)
            .join(Customer, Customer.id == Review.customer_id)
            .join(Order, Order.id == Review.order_id)
            .where(Review.merchant_id == merchant_id, Review.id > after_id)
            .order_by(Review.id)
            .limit(limit)
        )
        if since is not None:
            stmt = stmt.where(Review.updated_at >= since)
        return [(r, c, o) for r, c, o in self.session.execute(stmt)]

    def of_customer(self, customer_id: int) -> Sequence[Review]:
        return self.all(select(Review).where(Review.customer_id == customer_id).order_by(Review.id))

    def latest_of_customer(self, merchant_id: int, customer_id: int, limit: int) -> Sequence[Any]:
        """One customer's latest reviews: (review, the order's own id)."""
        stmt = (
            select(Review, Order.external_id)
            .join(Order, Order.id == Review.order_id)
            .where(Review.merchant_id == merchant_id, Review.customer_id == customer_id)
            .order_by(Review.posted_at.desc(), Review.id.desc())
            .limit(limit)
        )
        return list(self.session.execute(stmt))


class OrderReadRepository(RepositoryBase[Order]):
    """The orders a review link names (read only)."""

    model = Order

    def by_external_id(self, merchant_id: int, external_id: str) -> Order | None:
        stmt = select(Order).where(
            Order.merchant_id == merchant_id, Order.external_id == external_id
        )
        return self.one_or_none(stmt)

    def products(self, order_id: int) -> list[tuple[str, str | None]]:
        """(product id, name) of the order's product lines, each product once, in line order."""
        stmt = (
            select(OrderLine.product_id, OrderLine.name)
            .where(OrderLine.order_id == order_id, OrderLine.kind == "product")
            .order_by(OrderLine.line_no)
        )
        seen: dict[str, str | None] = {}
        for product_id, name in self.session.execute(stmt):
            seen.setdefault(product_id, name)
        return list(seen.items())
