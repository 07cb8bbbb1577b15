"""HTTP endpoints of the measurement side of messaging: open pixel and click redirect (public,
signed tokens), broadcasts and their stats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from fastapi.responses import RedirectResponse

from fidele.deps import ERRORS, NowDep, OneHopRoute, SessionDep, SettingsDep, writes
from fidele.errors import NotFound
from fidele.messaging import tracking

router = APIRouter(responses=ERRORS, route_class=OneHopRoute)

Token = Annotated[str, Path(description="A signed tracking token")]
NO_STORE = {"Cache-Control": "no-store, private", "Pragma": "no-cache"}


@router.get(
    "/v1/t/o/{token}",
    tags=["tracking"],
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}}, 404: {"description": "Unknown token"}},
)
@writes
def open_pixel(token: Token, session: SessionDep, settings: SettingsDep, now: NowDep) -> Response:
    """The open pixel of a sent message (a 1x1 GIF); records the open. No API key: the token
    is signed by the server."""
    mark = tracking.Mark.parse(settings.secret_key, token, "open")
    if mark is None:
        raise NotFound("unknown tracking token")
    tracking.record(session, mark, now)
    return Response(tracking.PIXEL_GIF, media_type="image/gif", headers=NO_STORE)


@router.get(
    "/v1/t/c/{token}",
    tags=["tracking"],
    response_class=RedirectResponse,
    status_code=302,
    responses={
        302: {"description": "To the link of the message"},
        404: {"description": "Unknown token"},
    },
)
@writes
def click_redirect(
    token: Token, session: SessionDep, settings: SettingsDep, now: NowDep
) -> RedirectResponse:
    """A link of a sent message: records the click and redirects to the link's URL, which the
    token carries signed (a token not made by this server is a 404, never a redirect)."""
    mark = tracking.Mark.parse(settings.secret_key, token, "click")
    if mark is None:
        raise NotFound("unknown tracking token")
    tracking.record(session, mark, now)
    return RedirectResponse(mark.url, status_code=302, headers=NO_STORE)
