from __future__ import annotations

from fidele.errors import Conflict


class InsufficientBalance(Conflict):
    code = "insufficient_balance"


class UnbalancedPosting(ValueError):
    """A programming error: legs that do not sum to zero or mix units."""
