"""The HTTP application: ``create_app()`` wires settings, database, clock, errors and routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fidele import __version__
from fidele.db.engine import make_engine
from fidele.db.session import make_sessionmaker, read_only
from fidele.deps import OneHopRoute
from fidele.errors import FideleError
from fidele.events import bus
from fidele.kit.clock import Clock, SystemClock
from fidele.kit.plugins import load_everything, optional_import
from fidele.kit.schemas import STORABLE_JSON, STORABLE_JSON_SCHEMA
from fidele.settings import Settings, get_settings

log = logging.getLogger("fidele.app")
HEALTH_TIMEOUT_SECONDS = 5.0

# Each domain's router; a module that does not exist yet is simply not mounted.
ROUTERS = (
    "fidele.customers.api",
    "fidele.orders.api",
    "fidele.events.api",
    "fidele.ingest.webhooks",
    "fidele.ingest.api",
    "fidele.loyalty.api",
    "fidele.promotions.api",
    "fidele.analytics.api",
    "fidele.dashboard.routes",  # the back office's pages (HTML, not in the OpenAPI document)
    "fidele.messaging.api",
    "fidele.messaging.measure_api",
    "fidele.segments.api",
    "fidele.campaigns.api",
    "fidele.storefront.api",  # the shop's customers (a signed token, not an API key)
    "fidele.feedback.api",  # surveys, reviews, and the /s/ and /r/ pages of their links
    "fidele.dashboard.feedback_pages",  # page 7, Feedback
    "fidele.feedback.complaints_api",
    "fidele.feedback.delivery_api",
    "fidele.dashboard.complaints_pages",  # /feedback/complaints (HTML)
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


class _BodyTooLarge(HTTPException):
    """Raised while the app reads a streamed (chunked) body past the limit. An HTTPException,
    because FastAPI turns any other error of a body read into a 400 "error parsing the body"
    and passes HTTPExceptions through: the app's handler answers the 413
    (``_install_http_error_handler``)."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    await _too_large_response(limit)(scope, receive, send)


def _too_large_response(limit: int) -> JSONResponse:
    body = {"error": "payload_too_large", "detail": f"request body exceeds {limit} bytes"}
    return JSONResponse(body, status_code=413)


def _validation_fields(exc: RequestValidationError) -> list[dict[str, Any]]:
    fields = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        fields.append(
            {"field": ".".join(loc), "message": err.get("msg", ""), "type": err.get("type", "")}
        )
    return fields


# PostgreSQL SQLSTATEs of a wait that was cut short or lost: lock_timeout, statement
# cancelled, deadlock victim, serialization failure. The transaction rolled back: retry.
_BUSY_SQLSTATES = {"55P03", "57014", "40P01", "40001"}
_BUSY_MESSAGES = ("database is locked", "database table is locked", "database is busy")
RETRY_AFTER = {"busy": 1, "unavailable": 5}


def database_trouble(exc: BaseException) -> str | None:
    """``"busy"`` (a lock or connection wait ran out), ``"unavailable"`` (the database cannot
    be reached, or dropped the connection) or None (another error: a bug, not the database's
    state). Either way the request's transaction did not commit, so a retry is safe."""
    if isinstance(exc, PoolTimeout):
        return "busy"
    if isinstance(exc, DBAPIError):
        orig: BaseException = exc.orig
    elif type(exc).__module__.split(".")[0] in ("psycopg", "sqlite3"):
        orig = exc  # the driver's own error, raised past SQLAlchemy (a pool connect)
        exc = DBAPIError(None, None, orig)
    else:
        return None
    if getattr(orig, "sqlstate", None) in _BUSY_SQLSTATES:
        return "busy"
    if any(m in str(orig).lower() for m in _BUSY_MESSAGES):
        return "busy"
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return "unavailable"
    # The driver's "connection is closed" / "server closed the connection".
    if any(c.__name__ in ("InterfaceError", "OperationalError") for c in type(orig).__mro__):
        return "unavailable"
    return None


def _unavailable(kind: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"error": kind, "detail": detail},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER[kind])},
    )


_INTERNAL = {"error": "internal_error", "detail": "an unexpected error occurred; see the logs"}


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

    _install_http_error_handler(app)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database(_: Request, exc: Exception) -> JSONResponse:
        kind = database_trouble(exc)
        if kind is not None:
            log.warning("database %s: %s", kind, str(getattr(exc, "orig", exc)).splitlines()[0])
        if kind == "busy":
            return _unavailable(kind, "the database is busy; retry the request")
        if kind == "unavailable":
            return _unavailable(kind, "the database is unreachable; retry the request")
        log.error("database error", exc_info=exc)
        return JSONResponse(_INTERNAL, status_code=500)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if database_trouble(exc) is not None:  # a driver error SQLAlchemy did not wrap
            return await _database(request, exc)
        # Starlette logs the exception after this answer: the client gets the JSON shape.
        return JSONResponse(_INTERNAL, status_code=500)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        # A uniqueness race lost to a concurrent request: retrying gets the idempotent answer.
        return JSONResponse(
            {"error": "conflict", "detail": "concurrent write conflict; retry the request"},
            status_code=409,
        )


# FastAPI's answer when a body cannot be read as text (not UTF-8): a body error like any other.
_UNPARSABLE = "There was an error parsing the body"
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def _install_http_error_handler(app: FastAPI) -> None:
    """Errors raised by the framework itself (routing, body reading) in the ``{"error",
    "detail"}`` shape of every other error, with the status the schema documents."""

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc, _BodyTooLarge):
            return _too_large_response(request.app.state.settings.max_body_bytes)
        if exc.status_code == 405:
            return _method_not_allowed(request)
        if exc.status_code == 400 and exc.detail == _UNPARSABLE:
            return _unparsable_body()
        detail = exc.detail
        if exc.status_code == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
            detail = f"nothing at {request.url.path} (the API is described at /docs)"
        return JSONResponse(
            {"error": _HTTP_CODES.get(exc.status_code, "http_error"), "detail": str(detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _method_not_allowed(request: Request) -> JSONResponse:
    """405 whose ``Allow`` lists every method of the path (Starlette names only those of the
    first route it matched: GET and PUT of one path are two routes). Each method is asked of
    the routes as a request would (``matches``), so path convertors count: GET
    /v1/coupons/batches is not taken for /v1/coupons/{coupon_id:int}."""
    routes = request.app.routes
    methods = [
        m
        for m in _METHODS
        if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)
    ]
    return JSONResponse(
        {
            "error": "method_not_allowed",
            "detail": f"{request.method} is not allowed on {request.url.path}",
        },
        status_code=405,
        headers={"Allow": ", ".join(methods)},
    )


def _unparsable_body() -> JSONResponse:
    return JSONResponse(
        {
            "error": "validation_error",
            "detail": "invalid input: body is not UTF-8 JSON",
            "fields": [{"field": "body", "message": "not UTF-8 JSON", "type": "json_invalid"}],
        },
        status_code=422,
    )


def _ping(engine: Engine) -> None:
    """``SELECT 1`` outside any transaction: on SQLite a transaction begins with BEGIN
    IMMEDIATE and would queue behind a long writer, so a busy database looked unreachable."""
    try:
        # Inside the try: the pool raises the driver's own error when it cannot connect.
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        finally:
            raw.close()
    except SQLAlchemyError:
        raise
    except Exception as exc:  # the driver's own error class: report it as unreachable
        raise OperationalError("SELECT 1", {}, exc) from exc


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    sessionmaker: Any = None,
    start_worker: bool | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        lock_timeout=settings.db_lock_timeout_seconds,
        pool_timeout=settings.db_pool_timeout_seconds,
    )
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

    # FastAPIOffline serves the docs pages' scripts and styles from the installed package (the
    # default pages load them from a CDN, so /docs was blank offline).
    app = FastAPIOffline(
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
    # GET requests read in a deferred transaction (SQLite: no write lock, see db.engine).
    app.state.read_sessionmaker = read_only(app.state.sessionmaker)
    app.router.route_class = OneHopRoute
    app.state.clock = clock or SystemClock()
    _install_error_handlers(app)
    bus.load_handlers()
    load_everything()  # the senders and jobs too: the same set as every `fidele worker`

    # response_model: the document keeps describing the JSON; a browser's page is a Response,
    # returned as it is
    @app.get(
        "/",
        tags=["health"],
        summary="The service, its version and links",
        response_model=dict[str, Any],
    )
    async def index(request: Request) -> Any:
        """The service's name, version and where to go next. A browser (``Accept:
        text/html``) gets the dashboard's overview instead."""
        if _wants_html(request):
            from fidele.dashboard.routes import overview

            return await overview(request)
        return {
            "name": "fidele",
            "version": __version__,
            "links": {
                "docs": "/docs",
                "redoc": "/redoc",
                "openapi": "/openapi.json",
                "health": "/healthz",
            },
        }

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        # Its own few threads and a deadline: a health check must answer, and say 503, even
        # when the request threads are all busy or a connection attempt hangs.
        if not hasattr(app.state, "health_limiter"):
            app.state.health_limiter = anyio.CapacityLimiter(2)
        try:
            with anyio.fail_after(HEALTH_TIMEOUT_SECONDS):
                await anyio.to_thread.run_sync(
                    _ping, engine, limiter=app.state.health_limiter, abandon_on_cancel=True
                )
        except (SQLAlchemyError, TimeoutError, OSError) as exc:
            detail = str(getattr(exc, "orig", None) or exc or "no answer in time")[:200]
            return JSONResponse(
                {"status": "error", "database": "unreachable", "detail": detail},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER["unavailable"])},
            )
        return JSONResponse({"status": "ok", "database": "ok", "version": __version__})

    for name in ROUTERS:
        module = optional_import(name)
        if module is not None:
            app.include_router(module.router)
    _mount_dashboard_assets(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    cors = optional_import("fidele.storefront.cors")
    if cors is not None:  # only the merchants' declared shop origins, on /storefront/v1/
        app.add_middleware(cors.StorefrontCors)
    _define_storable_json(app)
    return app


def _wants_html(request: Request) -> bool:
    """A browser asks for HTML first; API clients send ``application/json`` or ``*/*``."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept.split(",")[0]


def _mount_dashboard_assets(app: FastAPI) -> None:
    from starlette.staticfiles import StaticFiles

    from fidele.dashboard.web import STATIC

    app.mount("/assets", StaticFiles(directory=STATIC), name="dashboard-assets")


def _document_body_limit(document: dict[str, Any]) -> None:
    """Every operation that takes a body may answer 413: the limit is on bytes
    (``FIDELE_MAX_BODY_BYTES``), which no JSON Schema of the body can express."""
    too_large = {
        "description": "The request body is over the server's limit (FIDELE_MAX_BODY_BYTES, "
        "1 MiB by default): payload_too_large."
    }
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation.setdefault("responses", {}).setdefault("413", too_large)


def _define_storable_json(app: FastAPI) -> None:
    """Add to the OpenAPI document the (recursive) schema of free-form JSON values, which the
    request models' schemas refer to (``fidele.kit.schemas.STORABLE_JSON``)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas[STORABLE_JSON] = STORABLE_JSON_SCHEMA
            _document_body_limit(document)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
