"""Every figure loyalty stores besides the ledger, recomputed from its source.

The ledger's own check (cached balances against entries) does not see a counter kept on a
member or a reward drifting from the rows it counts. :func:`verify` recomputes each one:
members' ``lifetime_earned`` (from the lots, less clawbacks) and ``lifetime_spent`` (from the
redemptions' and burns' consumptions not given back), what the lots hold against the member's
pending and available balances, rewards' ``issued`` (from active redemptions) and the budget
and cap counters (from the awards kept and the refusals)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from fidele.loyalty import domain
from fidele.loyalty.repository import LoyaltyRepository


@dataclass(frozen=True)
class Drift:
    """A stored ``figure`` of ``subject`` that differs from what its source gives."""

    figure: str
    subject: str
    stored: int
    expected: int


def verify(session: Session) -> list[Drift]:
    """Every derived figure that differs from its source (empty: all agree)."""
    repo = LoyaltyRepository(session)
    return [*_members(repo), *_rewards(repo), *_counters(repo)]


def _members(repo: LoyaltyRepository) -> list[Drift]:
    earned, spent = repo.earned_by_member(), repo.spent_by_member()
    held = repo.remaining_by_member()
    out = []
    for member_id, lifetime_earned, lifetime_spent, available, pending in repo.member_figures():
        subject = f"member {member_id}"
        figures = [
            ("lifetime_earned", lifetime_earned, earned.get(member_id, 0)),
            ("lifetime_spent", lifetime_spent, spent.get(member_id, 0)),
            ("available_lots", available or 0, held.get((member_id, "available"), 0)),
            ("pending_lots", pending or 0, held.get((member_id, "pending"), 0)),
        ]
        out += [Drift(f, subject, s, e) for f, s, e in figures if s != e]
    return out


def _rewards(repo: LoyaltyRepository) -> list[Drift]:
    return [
        Drift("issued", f"reward {reward_id}", issued, active)
        for reward_id, issued, active in repo.reward_figures()
        if issued != active
    ]


def _counters(repo: LoyaltyRepository) -> list[Drift]:
    counters = repo.counters()
    by_programme: dict[int, dict[str, int]] = defaultdict(dict)
    for c in counters:
        by_programme[c.programme_id][c.key] = c.value
    out = []
    for programme_id, stored in by_programme.items():
        expected = _expected_counters(repo, programme_id, stored)
        out += [
            Drift("counter", f"programme {programme_id} {key}", value, expected.get(key, 0))
            for key, value in stored.items()
            if value != expected.get(key, 0)
        ]
    return out


def _expected_counters(
    repo: LoyaltyRepository, programme_id: int, keys: Iterable[str]
) -> dict[str, int]:
    """``budget:{rule}:{period}:m{member}|all``: points the rule's awards kept (order lots'
    awards, action lots); ``cap:{rule}:{period}:m{member}``: the rule's action lots plus those
    its budget refused after the cap was taken. Periods are counted for day, month and total,
    for the counters stored (``keys``, which name the budgeted rules whose awards to read)."""
    out: dict[str, int] = defaultdict(int)

    def add(kind: str, rule: str, member_id: int, at: datetime, amount: int) -> None:
        for period in ("day", "month", "total"):
            key = f"{kind}:{rule}:{domain.period_key(period, at)}"
            out[f"{key}:m{member_id}"] += amount
            if kind == "budget":
                out[f"{key}:all"] += amount

    rules = sorted({k.split(":")[1] for k in keys if k.startswith("budget:")})
    for member_id, source, reason, points, earned_at, detail in repo.awards(programme_id, rules):
        if source.startswith("order:"):
            for award in detail or []:
                if award.get("points", 0) > 0:
                    add("budget", award["rule"], member_id, earned_at, award["points"])
        elif source.startswith("event:"):
            if points > 0:
                add("budget", reason, member_id, earned_at, points)
            add("cap", reason, member_id, earned_at, 1)
    for refusal in repo.refusals(programme_id):
        if refusal.reason == "budget spent" and refusal.source_key.startswith("event:"):
            add("cap", refusal.rule_id, refusal.member_id, refusal.created_at, 1)
    return out
