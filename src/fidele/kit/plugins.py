"""Discovery of each domain's optional modules (``models``, ``handlers``, ``tasks``, ``cli``)."""

from __future__ import annotations

import importlib
import importlib.util
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
    """``fidele.<domain>.<suffix>`` for every domain package that has one, then its
    ``<part>_<suffix>`` modules (``fidele.feedback.complaints_models``): a domain split among
    several owners registers each part's tables, handlers and jobs the same way."""
    import fidele

    names: list[str] = []
    for m in pkgutil.iter_modules(fidele.__path__):
        if not m.ispkg:
            continue
        names.append(f"fidele.{m.name}.{suffix}")
        package = importlib.util.find_spec(f"fidele.{m.name}")
        paths = package.submodule_search_locations if package else None
        names += sorted(
            f"fidele.{m.name}.{sub.name}"
            for sub in pkgutil.iter_modules(paths or [])
            if sub.name.endswith(f"_{suffix}") and not sub.ispkg
        )
    found = (optional_import(name) for name in names)
    return [m for m in found if m is not None]


# What a domain registers by being imported: its tables, its event handlers, its outbox senders
# and its scheduled jobs. Every process kind (the API, `fidele worker`, the CLI) imports the same
# set through load_everything(): a sender registered only where the API happened to import it
# left a stock worker unable to deliver webhooks.
REGISTERING = ("models", "handlers", "senders", "tasks")
_loaded: set[str] = set()


def load_everything(extra: str | None = None) -> None:
    """Import every domain's ``models``, ``handlers``, ``senders`` and ``tasks`` modules, then
    the comma-separated modules of ``FIDELE_EXTRA_MODULES`` (an operator's own senders or jobs;
    importable from the process's ``PYTHONPATH``). Idempotent."""
    if extra is None:
        from fidele.settings import get_settings

        extra = get_settings().extra_modules
    wanted = [f"fidele.*.{suffix}" for suffix in REGISTERING]
    wanted += [name.strip() for name in extra.split(",") if name.strip()]
    for name in wanted:
        if name in _loaded:
            continue
        if name.startswith("fidele.*."):
            domain_modules(name.removeprefix("fidele.*."))
        else:
            importlib.import_module(name)
        _loaded.add(name)
