"""The SQL of the dashboard's segments and journeys pages that no domain service answers:
where the customers of a flow stand (step, exit reason) and which flows messaged this month."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidele.campaigns.models import Enrollment
from fidele.kit.repository import RepositoryBase
from fidele.messaging.models import MessageSend


class JourneyCounts(RepositoryBase[Enrollment]):
    model = Enrollment

    def entered(self, merchant_id: int, flow_id: int) -> int:
        return int(
            self.session.execute(
                select(func.count()).where(
                    Enrollment.merchant_id == merchant_id, Enrollment.flow_id == flow_id
                )
            ).scalar_one()
        )

    def at_step(self, merchant_id: int, flow_id: int) -> dict[str, int]:
        """Customers still in the flow, by the step they are at."""
        stmt = (
            select(Enrollment.step, func.count())
            .where(
                Enrollment.merchant_id == merchant_id,
                Enrollment.flow_id == flow_id,
                Enrollment.status == "active",
            )
            .group_by(Enrollment.step)
            .order_by(Enrollment.step)
        )
        return {str(step): int(n) for step, n in self.session.execute(stmt).all()}

    def ended_by_reason(self, merchant_id: int, flow_id: int) -> dict[tuple[str, str], int]:
        """Customers who left the flow, by ``(status, exit reason)``."""
        stmt = (
            select(Enrollment.status, Enrollment.exit_reason, func.count())
            .where(
                Enrollment.merchant_id == merchant_id,
                Enrollment.flow_id == flow_id,
                Enrollment.status != "active",
            )
            .group_by(Enrollment.status, Enrollment.exit_reason)
            .order_by(Enrollment.status, Enrollment.exit_reason)
        )
        return {(str(s), str(r or "")): int(n) for s, r, n in self.session.execute(stmt).all()}


def flows_with_messages_since(session: Session, merchant_id: int, since: datetime) -> set[int]:
    """The flows that decided a message since ``since`` (the others have nothing to compare)."""
    stmt = (
        select(MessageSend.flow_id)
        .where(
            MessageSend.merchant_id == merchant_id,
            MessageSend.flow_id.is_not(None),
            MessageSend.created_at >= since,
        )
        .distinct()
    )
    return {int(i) for i in session.execute(stmt).scalars()}
