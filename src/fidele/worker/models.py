from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base


class JobLease(Base):
    """One row per scheduled job: who runs it now and when it last ran. A conditional UPDATE on
    this row is the lock, so several worker processes never run the same job at once."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(100), default=None)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    last_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_result: Mapped[str | None] = mapped_column(String(500), default=None)
