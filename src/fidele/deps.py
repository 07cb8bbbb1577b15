"""FastAPI dependencies: the request's transaction, its clock and its caller.

Every endpoint that touches the database runs in ONE trip to the thread pool: session,
authentication, the endpoint's work and the commit (see :class:`OneHopRoute`). A request that
held a transaction (SQLite's write lock, PostgreSQL row locks) while queueing for a second
thread starved the pool as soon as more requests than threads wanted the same rows: the
threads all waited on locks held by requests that waited for a thread."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import wraps
from typing import Annotated, Any, TypeVar, get_type_hints

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fidele.db.session import transaction
from fidele.errors import Forbidden, Unauthorized
from fidele.kit.clock import Clock
from fidele.settings import Settings
from fidele.tenancy.service import Caller, authenticate, cached_caller


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the endpoint returns, rolled back on error.

    Only reached by routes outside :class:`OneHopRoute`, which resolves ``SessionDep`` itself."""
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


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    return key


async def _bearer_key(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The API key, or 401 before the body is even validated (as a missing key always was);
    the bearer scheme is declared so the docs' Authorize button sends the key."""
    return _bearer(request)


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

    check.fidele_scope = scope  # type: ignore[attr-defined]  # read by one_hop
    return check


T = TypeVar("T")
Work = Callable[[Session, Caller, datetime], T]


async def in_one_hop(
    request: Request, scope: str | None, work: Work[T], *, readonly: bool = False
) -> T:
    """A whole request in one trip to the thread pool: what ``SessionDep`` + ``WriteCaller`` +
    ``NowDep`` give, without a transaction that spans several hops (four per request
    otherwise: session in, endpoint, response validation, session out).

    Same guarantees: 401/403 before any work, one transaction committed before the response
    is sent (a failed commit is an error response), rolled back on any error. ``scope`` None:
    no API key (the caller passed to ``work`` is then None). ``readonly``: the transaction
    does not write (SQLite then takes no write lock: a deferred BEGIN)."""
    key = _bearer(request) if scope is not None else None
    state = request.app.state
    factory = state.sessionmaker
    if readonly:
        factory = getattr(state, "read_sessionmaker", factory)
    now = state.clock.now()

    def run() -> T:
        with transaction(factory) as session:
            caller: Any = None
            if key is not None and scope is not None:
                caller = _allowed(cached_caller(session, key) or authenticate(session, key), scope)
                request.state.caller = caller
            return work(session, caller, now)

    return await run_in_threadpool(run)


ReadCaller = Annotated[Caller, Depends(_scoped("read"))]
WriteCaller = Annotated[Caller, Depends(_scoped("write"))]
AdminCaller = Annotated[Caller, Depends(_scoped("admin"))]

# An endpoint whose GET writes (a code made on first sight) takes SQLite's write lock upfront.
WRITES_ON_READ = "fidele_writes_on_read"


def writes(endpoint: Callable[..., T]) -> Callable[..., T]:
    """Mark a GET endpoint that may write, so it does not run in a read-only transaction."""
    setattr(endpoint, WRITES_ON_READ, True)
    return endpoint


def _depends_on(hint: Any) -> Any:
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, DependsParam):
            return meta.dependency
    return None


def one_hop(endpoint: Callable[..., Any], *, readonly: bool = False) -> Callable[..., Any]:
    """``endpoint`` (sync, declaring ``SessionDep`` and/or ``Read/Write/AdminCaller``) as an
    async endpoint running it through :func:`in_one_hop`; others are returned unchanged.

    The other parameters (path, query, body, ``Response``, ``NowDep``...) stay FastAPI's, so
    the OpenAPI description and validation do not change."""
    hints = get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    session_name = caller_name = request_name = None
    scope: str | None = None
    params = []
    for p in signature.parameters.values():
        hint = hints.get(p.name, p.annotation)
        dependency = _depends_on(hint)
        if dependency is get_session:
            session_name = p.name
            continue
        if hasattr(dependency, "fidele_scope"):
            caller_name, scope = p.name, dependency.fidele_scope
            continue
        if hint is Request:
            request_name = p.name
        params.append(p.replace(annotation=hint, kind=inspect.Parameter.KEYWORD_ONLY))
    if session_name is None and caller_name is None:
        return endpoint
    if inspect.iscoroutinefunction(endpoint):
        raise TypeError(f"{endpoint.__name__}: an endpoint using SessionDep must be sync")
    own_request = request_name is None
    if own_request:
        request_name = "fidele_request"
        params.append(
            inspect.Parameter(request_name, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        )
    if scope is not None:  # a missing key is a 401 before the body is validated
        params.append(
            inspect.Parameter(
                "fidele_key",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[str, Depends(_bearer_key)],
            )
        )

    @wraps(endpoint)
    async def run(**kwargs: Any) -> Any:
        kwargs.pop("fidele_key", None)
        request = kwargs.pop(request_name) if own_request else kwargs[request_name]

        def work(session: Session, caller: Caller, _now: datetime) -> Any:
            if session_name is not None:
                kwargs[session_name] = session
            if caller_name is not None:
                kwargs[caller_name] = caller
            return endpoint(**kwargs)

        return await in_one_hop(request, scope, work, readonly=readonly)

    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=hints.get("return", signature.return_annotation)
    )
    return run


class OneHopRoute(APIRoute):
    """The route class of every router: endpoints declaring ``SessionDep`` run in one
    thread-pool hop (see :func:`one_hop`); GET requests in a read-only transaction unless the
    endpoint is marked with :func:`writes`."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ("GET",)}
        readonly = methods <= {"GET", "HEAD"} and not getattr(endpoint, WRITES_ON_READ, False)
        super().__init__(path, one_hop(endpoint, readonly=readonly), **kwargs)


ERRORS = {
    401: {"description": "Missing, invalid or revoked API key"},
    403: {"description": "The key lacks the needed scope"},
    422: {"description": "Invalid input; `fields` names each bad field"},
    503: {"description": "The database is busy or unreachable; retry after `Retry-After`"},
}
