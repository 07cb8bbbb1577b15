"""What checkout needs from the loyalty domain, behind a small Protocol.

:class:`DefaultLoyalty` imports ``fidele.loyalty.service`` lazily; when it does not exist the
shop has "no loyalty programme": no points, no tier, no membership, vouchers unknown, and a cart
asking to burn points is refused. Tests pass a fake port."""

from __future__ import annotations

import importlib
from datetime import datetime
from types import ModuleType
from typing import Any, Protocol

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.errors import InvalidInput
from fidele.tenancy.service import Caller


class LoyaltyPort(Protocol):
    @property
    def installed(self) -> bool: ...

    def available_points(self, session: Session, customer: Customer, now: datetime) -> int: ...

    def burn_points(
        self,
        session: Session,
        *,
        customer: Customer,
        points: int,
        source_key: str,
        now: datetime,
        merchant_id: int,
    ) -> None: ...

    def refund_burn(self, session: Session, *, source_key: str, now: datetime) -> None: ...

    def point_value(self, session: Session, programme_id: int) -> tuple[int, str]: ...

    def customer_tier(self, session: Session, customer: Customer, now: datetime) -> Any: ...

    def active_membership(self, session: Session, customer: Customer, now: datetime) -> Any: ...

    def simulate_order_points(
        self,
        session: Session,
        caller: Caller,
        *,
        customer: Customer | None,
        lines: list[dict[str, Any]],
        shipping: int,
        discounts: int,
        currency: str,
        now: datetime,
    ) -> int: ...

    def find_voucher(self, session: Session, programme_id: int, code: str) -> Any: ...

    def voucher_owner(self, session: Session, voucher: Any) -> int | None: ...

    def use_voucher(
        self, session: Session, voucher: Any, *, order_ref: str, now: datetime
    ) -> None: ...

    def release_voucher(
        self, session: Session, voucher: Any, *, order_ref: str, now: datetime
    ) -> None: ...

    def award_points(
        self,
        session: Session,
        *,
        customer: Customer,
        points: int,
        reason: str,
        key: str,
        now: datetime,
    ) -> None: ...


class NoLoyalty(InvalidInput):
    code = "no_loyalty_programme"


class DefaultLoyalty:
    """The real loyalty domain when installed, else "no loyalty programme"."""

    def __init__(self, module_name: str = "fidele.loyalty.service") -> None:
        self._name = module_name
        self._module: ModuleType | None = None
        self._looked = False

    @property
    def mod(self) -> ModuleType | None:
        if not self._looked:
            try:
                self._module = importlib.import_module(self._name)
            except ModuleNotFoundError as exc:
                if exc.name not in (self._name, self._name.rsplit(".", 1)[0]):
                    raise
            self._looked = True
        return self._module

    @property
    def installed(self) -> bool:
        return self.mod is not None

    def available_points(self, session: Session, customer: Customer, now: datetime) -> int:
        return 0 if self.mod is None else int(self.mod.available_points(session, customer, now))

    def burn_points(self, session: Session, **kw: Any) -> None:
        if self.mod is None:
            raise NoLoyalty(
                "this shop has no loyalty programme: points cannot be burned", field="points"
            )
        self.mod.burn_points(session, **kw)

    def refund_burn(self, session: Session, *, source_key: str, now: datetime) -> None:
        if self.mod is not None:
            self.mod.refund_burn(session, source_key=source_key, now=now)

    def point_value(self, session: Session, programme_id: int) -> tuple[int, str]:
        if self.mod is None:
            return 0, ""
        value, currency = self.mod.point_value(session, programme_id)
        return int(value), str(currency)

    def customer_tier(self, session: Session, customer: Customer, now: datetime) -> Any:
        return None if self.mod is None else self.mod.customer_tier(session, customer, now)

    def active_membership(self, session: Session, customer: Customer, now: datetime) -> Any:
        return None if self.mod is None else self.mod.active_membership(session, customer, now)

    def simulate_order_points(self, session: Session, caller: Caller, **kw: Any) -> int:
        if self.mod is None or kw.get("customer") is None:
            return 0
        return int(self.mod.simulate_order_points(session, caller, **kw))

    def find_voucher(self, session: Session, programme_id: int, code: str) -> Any:
        return None if self.mod is None else self.mod.find_voucher(session, programme_id, code)

    def voucher_owner(self, session: Session, voucher: Any) -> int | None:
        return None if self.mod is None else int(self.mod.voucher_owner(session, voucher))

    def use_voucher(self, session: Session, voucher: Any, *, order_ref: str, now: datetime) -> None:
        if self.mod is not None:
            self.mod.use_voucher(session, voucher, order_ref=order_ref, now=now)

    def release_voucher(
        self, session: Session, voucher: Any, *, order_ref: str, now: datetime
    ) -> None:
        if self.mod is not None:
            self.mod.release_voucher(session, voucher, order_ref=order_ref, now=now)

    def award_points(self, session: Session, **kw: Any) -> None:
        if self.mod is None:
            raise NoLoyalty("this shop has no loyalty programme: points cannot be awarded")
        self.mod.award_points(session, **kw)


default_loyalty = DefaultLoyalty()
