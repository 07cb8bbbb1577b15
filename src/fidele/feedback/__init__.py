"""Feedback as a retention moment: surveys (NPS, CSAT, short forms) and product reviews by
signed link; complaints and the delivery experience live beside them in ``complaints_*`` and
``delivery_*`` modules.

The discovered module names (``models``, ``handlers``, ``tasks``, ``gdpr``) are this
package's; each imports its ``<prefix>_<name>`` siblings with :func:`siblings`, so the
complaints and delivery parts register their tables, handlers and jobs without editing them."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def siblings(kind: str) -> list[ModuleType]:
    """Import ``fidele.feedback.<prefix>_<kind>`` for every such module of this package."""
    return [
        importlib.import_module(f"{__name__}.{m.name}")
        for m in pkgutil.iter_modules(__path__)
        if m.name.endswith(f"_{kind}")
    ]
