from __future__ import annotations

from fidele.errors import Conflict


class CouponNotRedeemable(Conflict):
    """A code that was valid at evaluate can no longer be used (limit reached meanwhile)."""

    code = "coupon_not_redeemable"


class SessionClosed(Conflict):
    code = "session_closed"


class SessionAlreadyConfirmed(Conflict):
    code = "session_already_confirmed"
