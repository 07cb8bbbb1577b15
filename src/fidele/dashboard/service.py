"""Dashboard accounts and the activity log. Never commits: the request or the CLI command owns
the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.dashboard import domain
from fidele.dashboard.models import DashboardActivity, DashboardUser
from fidele.dashboard.repository import ActivityRepository, UserRepository
from fidele.errors import InvalidInput, NotFound, StateConflict
from fidele.tenancy.service import Caller, get_merchant


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    local, _, host = value.partition("@")
    if not local or "." not in host or " " in value or len(value) > 320:
        raise InvalidInput(f"{email!r} is not an email address", field="email")
    return value


def _valid(check: Any, value: str, field: str) -> str:
    try:
        return str(check(value))
    except ValueError as exc:
        raise InvalidInput(str(exc), field=field) from exc


def create_user(
    session: Session, *, merchant_id: int, email: str, password: str, role: str, now: datetime
) -> DashboardUser:
    get_merchant(session, merchant_id)
    address = normalise_email(email)
    _valid(domain.check_role, role, "role")
    _valid(domain.check_password, password, "password")
    repo = UserRepository(session)
    if repo.by_email(address) is not None:
        raise StateConflict(f"a user {address} already exists", field="email")
    user = DashboardUser(
        merchant_id=merchant_id,
        email=address,
        password_hash=domain.hash_password(password),
        role=role,
        created_at=now,
        password_changed_at=now,
    )
    return repo.add(user)


def authenticate(session: Session, email: str, password: str) -> DashboardUser | None:
    """The enabled user with this email and password, else None (same answer either way)."""
    try:
        address = normalise_email(email)
    except InvalidInput:
        return None
    user = UserRepository(session).by_email(address)
    if user is None or user.disabled_at is not None:
        domain.hash_password(password)  # the same time spent whether the user exists or not
        return None
    return user if domain.password_matches(user.password_hash, password) else None


def get_user(session: Session, user_id: int) -> DashboardUser | None:
    return UserRepository(session).get(user_id)


def caller_of(user: DashboardUser, programme_id: int) -> Caller:
    """The user as a caller of the services: their merchant, and the scopes of their role."""
    return Caller(user.merchant_id, programme_id, None, domain.ROLES[user.role])


def change_password(
    session: Session, user: DashboardUser, *, current: str, new: str, now: datetime
) -> None:
    if not domain.password_matches(user.password_hash, current):
        raise InvalidInput("the current password is wrong", field="current")
    _valid(domain.check_password, new, "new")
    user.password_hash = domain.hash_password(new)
    user.password_changed_at = now


def users_of(session: Session, merchant_id: int) -> Sequence[DashboardUser]:
    return UserRepository(session).for_merchant(merchant_id)


def _member(session: Session, merchant_id: int, user_id: int) -> DashboardUser:
    user = UserRepository(session).get(user_id)
    if user is None or user.merchant_id != merchant_id:
        raise NotFound(f"user {user_id} not found")
    return user


def set_role(
    session: Session, merchant_id: int, user_id: int, role: str, *, by: DashboardUser
) -> DashboardUser:
    """Change a user's role; an admin cannot demote themself (a shop keeps an admin)."""
    _valid(domain.check_role, role, "role")
    user = _member(session, merchant_id, user_id)
    if user.id == by.id and role != "admin":
        raise StateConflict("you cannot remove your own admin role", field="role")
    user.role = role
    return user


def set_enabled(
    session: Session,
    merchant_id: int,
    user_id: int,
    enabled: bool,
    *,
    by: DashboardUser,
    now: datetime,
) -> DashboardUser:
    user = _member(session, merchant_id, user_id)
    if user.id == by.id and not enabled:
        raise StateConflict("you cannot disable your own account", field="user")
    user.disabled_at = None if enabled else (user.disabled_at or now)
    return user


def set_language(user: DashboardUser, language: str) -> None:
    user.language = language


def record(
    session: Session,
    user: DashboardUser,
    *,
    action: str,
    page: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> DashboardActivity:
    """Append a change made in the dashboard to the activity log."""
    row = DashboardActivity(
        merchant_id=user.merchant_id,
        user_id=user.id,
        user_email=user.email,
        action=action,
        page=page[:200],
        detail=detail or {},
        at=now,
    )
    return ActivityRepository(session).add(row, flush=False)


def activity(
    session: Session, merchant_id: int, *, before_id: int | None = None, limit: int = 50
) -> Sequence[DashboardActivity]:
    return ActivityRepository(session).latest(merchant_id, before_id=before_id, limit=limit)


def demo_login(session: Session, merchant_id: int, seed: int, now: datetime) -> tuple[str, str]:
    """``(email, password)`` of the demo shop's admin: created on the first run, given a new
    random password on each run (only its hash is stored, so it cannot be shown again)."""
    import secrets

    email = f"admin@demo-{seed}.fidele.test"
    password = secrets.token_urlsafe(12)
    user = UserRepository(session).by_email(email)
    if user is None:
        create_user(
            session, merchant_id=merchant_id, email=email, password=password, role="admin", now=now
        )
    else:
        user.password_hash = domain.hash_password(password)
        user.password_changed_at = now
    return email, password
