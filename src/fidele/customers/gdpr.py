"""Registry through which each domain contributes to a person's export and erasure, so the
customers domain needs no knowledge of loyalty, promotions or campaigns.

A domain declares both in its own ``gdpr.py`` (discovered like ``handlers`` and ``tasks``)::

    @exporter("gift_cards")
    def export_cards(session, customer, now) -> list[dict]: ...

    @eraser
    def erase_cards(session, erasure: Erasure) -> None: ...

An eraser blanks or anonymises what its domain holds on the person and keeps ids and amounts,
so ledgers, totals and analytics stay right. It gets the identifiers the person had before the
customer row was blanked (``Erasure``), since copies elsewhere are found by them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from fidele.kit.plugins import domain_modules

if TYPE_CHECKING:
    from fidele.customers.models import Customer

ERASED = "[erased]"


@dataclass(frozen=True)
class Erasure:
    """The customer being erased (already blanked) and who they were before."""

    customer: Customer
    old_external_id: str
    old_email: str | None
    old_email_normalized: str | None
    now: datetime

    @property
    def emails(self) -> frozenset[str]:
        """The person's addresses as they may have been copied (as typed, lowered, normalised)."""
        found = {self.old_email, self.old_email_normalized}
        found |= {e.strip().lower() for e in found if e}
        return frozenset(e for e in found if e)


Exporter = Callable[[Session, "Customer", datetime], Any]
Eraser = Callable[[Session, Erasure], None]

exporters: dict[str, Exporter] = {}
erasers: list[Eraser] = []
_loaded = False


def exporter(section: str) -> Callable[[Exporter], Exporter]:
    def register(fn: Exporter) -> Exporter:
        exporters[section] = fn
        return fn

    return register


def eraser(fn: Eraser) -> Eraser:
    if fn not in erasers:
        erasers.append(fn)
    return fn


def load() -> None:
    """Import every domain's ``gdpr`` module once, so its exporters and erasers register."""
    global _loaded
    if not _loaded:
        domain_modules("gdpr")
        _loaded = True


def pseudonym(value: str) -> str:
    """A stable stand-in for an erased identifier kept in a unique column (same input, same
    output, so a uniqueness constraint still holds), which does not reveal it."""
    return "erased:" + hashlib.sha256(value.encode()).hexdigest()[:32]


def scrub(value: Any, keys: frozenset[str], replace: dict[str, str] | None = None) -> Any:
    """Blank ``keys`` at any depth of a JSON value and swap whole strings found in ``replace``
    (an old id for the anonymised one); amounts and other ids are kept."""
    replace = replace or {}
    if isinstance(value, dict):
        return {k: (_blank(v) if k in keys else scrub(v, keys, replace)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, keys, replace) for v in value]
    if isinstance(value, str):
        return replace.get(value, value)
    return value


def _blank(value: Any) -> Any:
    if value is None:
        return None
    return {} if isinstance(value, dict) else ([] if isinstance(value, list) else ERASED)


def contains(value: Any, needles: frozenset[str]) -> bool:
    """Whether any string in a JSON value equals one of ``needles`` (case-insensitively)."""
    if isinstance(value, dict):
        return any(contains(v, needles) for v in value.values())
    if isinstance(value, list):
        return any(contains(v, needles) for v in value)
    return isinstance(value, str) and value.strip().lower() in needles
