"""CORS for ``/storefront/v1/``: only the merchant's declared shop origins may call it from a
browser. The merchant is the ``merchant`` query parameter (a preflight carries no token), else
the one the token names. A page of this server itself (the demo shop) is same-origin."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fidele.db.session import transaction
from fidele.storefront import domain, service

PATH = "/storefront/v1/"
METHODS = "GET, POST, OPTIONS"
HEADERS = "Authorization, Content-Type, Idempotency-Key"
MAX_AGE = "600"


class StorefrontCors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PATH):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or _same_origin(scope, headers, origin):
            await self.app(scope, receive, send)
            return
        allowed = await _allowed(scope, headers, origin)
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if not allowed:
            await _refuse(origin)(scope, receive, send)
        elif preflight:
            await _preflight(origin)(scope, receive, send)
        else:
            await self.app(scope, receive, _with_cors(send, origin))


def _same_origin(scope: Scope, headers: Headers, origin: str) -> bool:
    host = headers.get("host")
    return host is not None and origin == f"{scope.get('scheme', 'http')}://{host}"


def _merchant(scope: Scope, headers: Headers) -> int | None:
    raw = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("merchant", [""])[0]
    if raw.isdigit() and len(raw) < 16:
        return int(raw)
    _, _, token = headers.get("authorization", "").partition(" ")
    try:
        return domain.peek(token.strip()).merchant_id
    except domain.BadToken:
        return None


async def _allowed(scope: Scope, headers: Headers, origin: str) -> bool:
    merchant = _merchant(scope, headers)
    if merchant is None:
        return False
    state = scope["app"].state
    factory = getattr(state, "read_sessionmaker", state.sessionmaker)

    def read() -> tuple[str, ...]:
        with transaction(factory) as session:
            return service.declared_origins(session, merchant)

    return domain.origin_allowed(origin, await run_in_threadpool(read))


def _refuse(origin: str) -> Any:
    from starlette.responses import Response

    body = {"error": "forbidden", "detail": f"origin {origin} is not a declared shop origin"}
    return Response(
        json.dumps(body), status_code=403, media_type="application/json", headers={"Vary": "Origin"}
    )


def _preflight(origin: str) -> Any:
    from starlette.responses import Response

    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": METHODS,
            "Access-Control-Allow-Headers": HEADERS,
            "Access-Control-Max-Age": MAX_AGE,
            "Vary": "Origin",
        },
    )


def _with_cors(send: Send, origin: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            out = MutableHeaders(scope=message)
            out["Access-Control-Allow-Origin"] = origin
            out["Access-Control-Expose-Headers"] = "Retry-After"
            out.append("Vary", "Origin")
        await send(message)

    return wrapped
