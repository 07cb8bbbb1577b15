"""One error hierarchy. Each error has a stable ``code`` and an HTTP status; the HTTP layer renders
``{"error": code, "detail": message, ...extra}``, the CLI and worker print the message."""

from __future__ import annotations

from typing import Any


class FideleError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}


class NotFound(FideleError):
    code = "not_found"
    http_status = 404


class Conflict(FideleError):
    code = "conflict"
    http_status = 409


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


class InvalidInput(FideleError):
    """Input that parses but breaks a rule; ``fields`` names the culprits."""

    code = "validation_error"
    http_status = 422

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        if field is not None:
            extra.setdefault("fields", [{"field": field, "message": detail}])
        super().__init__(detail, **extra)


class StateConflict(InvalidInput):
    """Well-formed input that the current state refuses (more points than the balance, a
    refund past what remains paid, a code that exists): 409 like any conflict with state, as
    no schema can tell it beforehand; ``fields`` still names the field."""

    code = "conflict"
    http_status = 409


class Unauthorized(FideleError):
    code = "unauthorized"
    http_status = 401


class Forbidden(FideleError):
    code = "forbidden"
    http_status = 403


class PayloadTooLarge(FideleError):
    code = "payload_too_large"
    http_status = 413


class RateLimited(FideleError):
    code = "rate_limited"
    http_status = 429
