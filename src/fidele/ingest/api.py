"""``GET /v1/connectors/discrepancies``: per connector, the orders whose figures did not add up."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from fidele.deps import ERRORS, OneHopRoute, ReadCaller, SessionDep
from fidele.orders import service as orders

router = APIRouter(
    prefix="/v1/connectors", tags=["webhooks"], responses=ERRORS, route_class=OneHopRoute
)


class Discrepancy(BaseModel):
    source: str
    orders: int
    adjustment_abs_total: int


@router.get("/discrepancies", response_model=list[Discrepancy])
def discrepancies(caller: ReadCaller, session: SessionDep) -> list[Discrepancy]:
    """Read scope. Orders per source (``shopify``, ``woocommerce``, ``prestashop``, ``api``,
    ``import``) whose lines - discounts + shipping + tax differ from the total the shop sent;
    each such order shows the difference as its ``adjustment``."""
    return [Discrepancy(**row) for row in orders.discrepancies(session, caller)]
