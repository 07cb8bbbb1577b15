"""FastAPI dependencies: the request's transaction, its clock and its caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fidele.db.session import transaction
from fidele.errors import Forbidden, Unauthorized
from fidele.kit.clock import Clock
from fidele.settings import Settings
from fidele.tenancy.service import Caller, authenticate, cached_caller


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the endpoint returns, rolled back on error."""
    with transaction(request.app.state.sessionmaker) as session:
        yield session


# Dependencies that do no I/O are ``async def``: FastAPI runs a sync dependency in its thread
# pool, a hop that costs more than the dependency itself on every request.


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


async def get_now(clock: Annotated[Clock, Depends(get_clock)]) -> datetime:
    return clock.now()


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# scope="function": the transaction commits when the endpoint returns and BEFORE the response is
# sent, so a failed commit is an error response, never a 2xx for work that was rolled back.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
NowDep = Annotated[datetime, Depends(get_now)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


# Declares the API key in the OpenAPI document (the docs' Authorize button, "Try it out" sends
# the key). auto_error=False: a missing key still gets fidele's 401 `{"error", "detail"}` from
# `_bearer`, not FastAPI's own error.
BEARER = "bearer"
bearer_scheme = HTTPBearer(
    scheme_name=BEARER,
    description="An API key, from `fidele apikey create`: `Authorization: Bearer fdl_...`",
    auto_error=False,
)
# For endpoints that authenticate inside `in_one_hop` rather than through a dependency.
BEARER_SECURITY = {"security": [{BEARER: []}]}


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    return key


async def _caller(
    request: Request,
    session: SessionDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    """The key's caller: from this process's short-lived cache without leaving the event loop
    when it authenticated recently, else read from the database in the thread pool."""
    key = _bearer(request)
    caller = cached_caller(session, key) or await run_in_threadpool(authenticate, session, key)
    request.state.caller = caller
    return caller


def _allowed(caller: Caller, scope: str) -> Caller:
    if not caller.can(scope):
        raise Forbidden(f"this API key lacks the {scope!r} scope")
    return caller


def _scoped(scope: str):  # type: ignore[no-untyped-def]
    async def check(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
        return _allowed(caller, scope)

    return check


T = TypeVar("T")
Work = Callable[[Session, Caller, datetime], T]


async def in_one_hop(request: Request, scope: str, work: Work[T]) -> T:
    """A whole request in one trip to the thread pool, for the hottest endpoints (checkout
    evaluate): what ``SessionDep`` + ``WriteCaller`` + ``NowDep`` give, without FastAPI
    resolving a graph of dependencies and hopping threads for each sync one (four hops per
    request otherwise: session in, endpoint, response validation, session out).

    Same guarantees: 401/403 before any work, one transaction committed before the response
    is sent (a failed commit is an error response), rolled back on any error. The endpoint
    itself must be ``async def`` (then FastAPI also validates the response on the loop)."""
    key = _bearer(request)
    factory = request.app.state.sessionmaker
    now = request.app.state.clock.now()

    def run() -> T:
        with transaction(factory) as session:
            caller = _allowed(cached_caller(session, key) or authenticate(session, key), scope)
            request.state.caller = caller
            return work(session, caller, now)

    return await run_in_threadpool(run)


ReadCaller = Annotated[Caller, Depends(_scoped("read"))]
WriteCaller = Annotated[Caller, Depends(_scoped("write"))]
AdminCaller = Annotated[Caller, Depends(_scoped("admin"))]

ERRORS = {
    401: {"description": "Missing, invalid or revoked API key"},
    403: {"description": "The key lacks the needed scope"},
    422: {"description": "Invalid input; `fields` names each bad field"},
}
