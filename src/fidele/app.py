"""The HTTP application: ``create_app()`` wires settings, database, clock, errors and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fidele import __version__
from fidele.db.engine import make_engine
from fidele.db.session import make_sessionmaker
from fidele.errors import FideleError
from fidele.events import bus
from fidele.kit.clock import Clock, SystemClock
from fidele.kit.plugins import load_everything, optional_import
from fidele.settings import Settings, get_settings

# Each domain's router; a module that does not exist yet is simply not mounted.
ROUTERS = (
    "fidele.customers.api",
    "fidele.orders.api",
    "fidele.events.api",
    "fidele.events.webhooks",
    "fidele.loyalty.api",
    "fidele.promotions.api",
    "fidele.analytics.api",
)


class BodyLimit:
    """Refuse request bodies over the limit with a 413, before any parsing (pure ASGI)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(scope, receive, send, self.limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(scope, receive, send, self.limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    body = {"error": "payload_too_large", "detail": f"request body exceeds {limit} bytes"}
    await JSONResponse(body, status_code=413)(scope, receive, send)


def _validation_fields(exc: RequestValidationError) -> list[dict[str, Any]]:
    fields = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        fields.append(
            {"field": ".".join(loc), "message": err.get("msg", ""), "type": err.get("type", "")}
        )
    return fields


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FideleError)
    async def _fidele(_: Request, exc: FideleError) -> JSONResponse:
        headers = (
            {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else None
        )
        return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _validation_fields(exc)
        names = ", ".join(f["field"] for f in fields)
        return JSONResponse(
            {"error": "validation_error", "detail": f"invalid input: {names}", "fields": fields},
            status_code=422,
        )

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        # The database refused a value (out of range for its column): the input was bad.
        return JSONResponse(
            {
                "error": "validation_error",
                "detail": "a value is out of range",
                "fields": [{"field": "-", "message": str(exc.orig).splitlines()[0][:200]}],
            },
            status_code=422,
        )

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # SQLite's driver raises this for integers beyond 64 bits (path parameters, ...).
        return JSONResponse(
            {
                "error": "validation_error",
                "detail": "an integer is out of range",
                "fields": [{"field": "-", "message": str(exc)[:200]}],
            },
            status_code=422,
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        # A uniqueness race lost to a concurrent request: retrying gets the idempotent answer.
        return JSONResponse(
            {"error": "conflict", "detail": "concurrent write conflict; retry the request"},
            status_code=409,
        )


def _ping(engine: Engine) -> None:
    """``SELECT 1`` outside any transaction: on SQLite a transaction begins with BEGIN
    IMMEDIATE and would queue behind a long writer, so a busy database looked unreachable."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    except Exception as exc:  # the driver's own error class: report it as unreachable
        raise OperationalError("SELECT 1", {}, exc) from exc
    finally:
        raw.close()


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    sessionmaker: Any = None,
    start_worker: bool | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url, pool_size=settings.db_pool_size)
    run_worker = settings.embedded_worker if start_worker is None else start_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner = None
        if run_worker:
            from fidele.worker.runner import BackgroundRunner

            runner = BackgroundRunner(engine, app.state.clock, settings)
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()

    app = FastAPI(
        title="fidele",
        version=__version__,
        lifespan=lifespan,
        description="Loyalty and retention engine for online shops. Authenticate with "
        "`Authorization: Bearer <API key>`. Money is integer minor units; times are ISO 8601 "
        "with a timezone.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker or make_sessionmaker(engine)
    app.state.clock = clock or SystemClock()
    _install_error_handlers(app)
    bus.load_handlers()
    load_everything()  # the senders and jobs too: the same set as every `fidele worker`

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        try:
            _ping(engine)
        except OperationalError as exc:
            return JSONResponse(
                {"status": "error", "database": "unreachable", "detail": str(exc.orig)[:200]},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "database": "ok", "version": __version__})

    for name in ROUTERS:
        module = optional_import(name)
        if module is not None:
            app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
