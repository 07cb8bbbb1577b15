"""Registry through which each domain contributes to a person's export and erasure, so the
customers domain needs no knowledge of loyalty, promotions or campaigns."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from fidele.customers.models import Customer

Exporter = Callable[[Session, "Customer"], Any]
Eraser = Callable[[Session, "Customer", datetime], None]

exporters: dict[str, Exporter] = {}
erasers: list[Eraser] = []


def exporter(section: str) -> Callable[[Exporter], Exporter]:
    def register(fn: Exporter) -> Exporter:
        exporters[section] = fn
        return fn

    return register


def eraser(fn: Eraser) -> Eraser:
    if fn not in erasers:
        erasers.append(fn)
    return fn
