"""Discovery of each domain's optional modules (``models``, ``handlers``, ``tasks``, ``cli``)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def optional_import(name: str) -> ModuleType | None:
    """Import ``name``; None when it (or its package) does not exist. An import error raised
    inside an existing module is not hidden."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
            raise
        return None


def domain_modules(suffix: str) -> list[ModuleType]:
    """``fidele.<domain>.<suffix>`` for every domain package that has one."""
    import fidele

    found = (
        optional_import(f"fidele.{m.name}.{suffix}")
        for m in pkgutil.iter_modules(fidele.__path__)
        if m.ispkg
    )
    return [m for m in found if m is not None]
