from __future__ import annotations

from fidele.errors import Conflict


class InsufficientPoints(Conflict):
    """Not enough available points; the answer carries ``balance`` and ``required``."""

    code = "insufficient_points"


class RewardUnavailable(Conflict):
    """Out of stock, limit reached, outside its window or tier: ``reason`` says which."""

    code = "reward_unavailable"


class VoucherNotUsable(Conflict):
    code = "voucher_not_usable"
