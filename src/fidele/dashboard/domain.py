"""Pure rules of the dashboard's accounts: roles, password hashing, signed session cookies,
CSRF tokens and the login throttle. No I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# role -> the API scopes its pages act with (the services check the same scopes as the API)
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin"}),
    "marketer": frozenset({"write"}),
    "read-only": frozenset({"read"}),
}
MIN_PASSWORD = 10
SESSION_SECONDS = 12 * 3600
_hasher = PasswordHasher()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password must have at least {MIN_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def fingerprint(password_hash: str) -> str:
    """A short digest of the stored hash, carried by sessions: a new password ends them."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SessionData:
    user_id: int
    fingerprint: str
    csrf: str
    expires: int


def _sign(secret: str, purpose: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), purpose.encode() + b"\0" + body, hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_session(secret: str, user_id: int, fp: str, now: float) -> str:
    data = {"u": user_id, "f": fp, "c": secrets.token_urlsafe(24), "e": int(now) + SESSION_SECONDS}
    body = json.dumps(data, separators=(",", ":")).encode()
    return f"{_b64(body)}.{_sign(secret, 'session', body)}"


def decode_session(secret: str, cookie: str | None, now: float) -> SessionData | None:
    """The session of a cookie whose signature holds and that has not expired, else None."""
    if not cookie or "." not in cookie:
        return None
    body_text, _, signature = cookie.partition(".")
    try:
        body = _unb64(body_text)
    except ValueError:
        return None
    if not hmac.compare_digest(signature, _sign(secret, "session", body)):
        return None
    try:
        data = json.loads(body)
        found = SessionData(int(data["u"]), str(data["f"]), str(data["c"]), int(data["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    return found if found.expires > now else None


def new_token() -> str:
    return secrets.token_urlsafe(24)


def tokens_match(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


class LoginThrottle:
    """At most ``limit`` failed logins per ``window`` seconds per email and per client address;
    past that, logins are refused without checking the password until the window slides.
    Kept in the process (several server processes each count their own failures)."""

    def __init__(self, limit: int = 5, window: float = 900.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, keys: list[str], now: float | None = None) -> int:
        """Seconds to wait before the next try (0: allowed)."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        with self._lock:
            for key in keys:
                seen = self._recent(key, now)
                if len(seen) >= self.limit:
                    wait = max(wait, seen[0] + self.window - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        seen = self._failures.setdefault(key, deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        return seen
