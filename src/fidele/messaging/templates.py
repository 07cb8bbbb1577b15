"""Merchant templates: Jinja2 in a sandbox, checked when saved, rendered with a time limit.

- Sandbox: ``jinja2.sandbox.SandboxedEnvironment`` (no access to ``_private`` attributes,
  ``__class__`` and the like, nor to unsafe callables); ``range`` is bounded by the sandbox,
  ``*`` and ``**`` are bounded here (no ``'x' * 10**9``).
- Time limit: every call, attribute lookup and output chunk checks a deadline
  (``RENDER_SECONDS``); past it the render stops with ``TemplateError`` ("took too long").
  Output is capped at ``MAX_OUTPUT`` characters.
- Strict mode (default): a name that is neither in the context every message gets
  (``CONTEXT_NAMES``) nor declared in the template's ``variables`` is refused when the template
  is saved, with its part, locale and line; an undefined attribute fails the render.
- Locale variants: ``{"en": {"subject", "html", "text"}, "fr": {...}}``; a customer gets their
  locale's variant (``fr-CA`` -> ``fr``), else the merchant's default locale's, else the first.
- HTML parts are autoescaped and their ``<style>`` rules are inlined (``inline_css``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaError
from jinja2.sandbox import SandboxedEnvironment

from fidele.errors import InvalidInput
from fidele.messaging.inline import inline_css

PARTS = ("subject", "html", "text")
RENDER_SECONDS = 2.0
MAX_OUTPUT = 1_000_000
# The names every message's context holds (see ``context.build``). Other domains may add
# their own with ``context.provider`` (which extends this set).
CONTEXT_NAMES: set[str] = {"customer", "loyalty", "orders", "shop", "links", "message", "now"}


class TemplateError(InvalidInput):
    """A template that does not compile, names an unknown variable, or fails to render."""

    code = "template_error"


class _Deadline(threading.local):
    at: float = 0.0


_deadline = _Deadline()


def _check_time() -> None:
    if _deadline.at and time.monotonic() > _deadline.at:
        raise SecurityError(f"rendering took longer than {RENDER_SECONDS:g} s")


class _Env(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_time()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_time()
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponent too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(n, int)
                    and n * len(seq) > 100_000
                ):
                    raise SecurityError("repetition too large")
        return super().call_binop(context, operator, left, right)


def _env(*, html: bool, strict: bool) -> _Env:
    return _Env(
        autoescape=html,
        undefined=StrictUndefined if strict else ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


_ENVS = {(h, s): _env(html=h, strict=s) for h in (True, False) for s in (True, False)}


def _where(locale: str, part: str, line: int | None) -> str:
    return f"variants.{locale}.{part}" + (f" line {line}" if line else "")


def check(
    variants: Mapping[str, Mapping[str, str]],
    *,
    strict: bool,
    variables: Iterable[str] = (),
    default_locale: str | None = None,
) -> None:
    """Refuse (``TemplateError``, 422 naming ``variants.<locale>.<part>`` and the line) a
    template whose parts do not compile or, in strict mode, use an unknown name."""
    if not variants:
        raise TemplateError("a template needs at least one locale variant", field="variants")
    allowed = CONTEXT_NAMES | set(variables)
    for locale, parts in variants.items():
        if not parts.get("subject") or not (parts.get("html") or parts.get("text")):
            raise TemplateError(
                "each variant needs a subject and an html or text part", field=f"variants.{locale}"
            )
        for part in PARTS:
            source = parts.get(part)
            if source is None:
                continue
            env = _ENVS[(part == "html", strict)]
            try:
                ast = env.parse(source)
            except TemplateSyntaxError as exc:
                where = _where(locale, part, exc.lineno)
                raise TemplateError(
                    f"{where}: {exc.message}", field=f"variants.{locale}.{part}", line=exc.lineno
                ) from exc
            if strict:
                unknown = sorted(meta.find_undeclared_variables(ast) - allowed)
                if unknown:
                    line = _line_of(ast, unknown[0])
                    raise TemplateError(
                        f"{_where(locale, part, line)}: unknown variable {unknown[0]!r} "
                        f"(known: {', '.join(sorted(allowed))}; declare extra ones in 'variables')",
                        field=f"variants.{locale}.{part}",
                        line=line,
                    )


def _line_of(ast: nodes.Template, name: str) -> int | None:
    for node in ast.find_all(nodes.Name):
        if node.name == name and node.ctx == "load":
            return int(node.lineno)
    return None


def pick_locale(variants: Mapping[str, Any], wanted: str | None, default: str) -> str:
    """The variant for ``wanted`` (exact, then its language), else the merchant's default
    locale's (same rule), else the first one."""
    for candidate in (wanted, default):
        if not candidate:
            continue
        if candidate in variants:
            return candidate
        lang = candidate.replace("_", "-").split("-")[0].lower()
        for loc in variants:
            if loc.lower() == lang or loc.replace("_", "-").split("-")[0].lower() == lang:
                return loc
    return next(iter(variants))


@dataclass(frozen=True)
class Rendered:
    locale: str
    subject: str
    html: str | None
    text: str | None


# Compiled parts per process, keyed by their source (a template's id and version alone would
# serve a stale part after a database restore or a rolled-back test).
_compiled: dict[tuple[str, bool, bool], Any] = {}
_compiled_lock = threading.Lock()


def _compile(source: str, html: bool, strict: bool) -> Any:
    key = (source, html, strict)
    found = _compiled.get(key)
    if found is None:
        found = _ENVS[(html, strict)].from_string(source)
        with _compiled_lock:
            if len(_compiled) > 2000:
                _compiled.clear()
            _compiled[key] = found
    return found


def render(
    *,
    template_id: int,
    version: int,
    variants: Mapping[str, Mapping[str, str]],
    strict: bool,
    locale: str | None,
    default_locale: str,
    context: Mapping[str, Any],
) -> Rendered:
    """Render the variant for ``locale`` (compiled once per template version and process)."""
    chosen = pick_locale(variants, locale, default_locale)
    parts = variants[chosen]
    out: dict[str, str | None] = {}
    _deadline.at = time.monotonic() + RENDER_SECONDS
    try:
        for part in PARTS:
            source = parts.get(part)
            if source is None:
                out[part] = None
                continue
            tpl = _compile(source, part == "html", strict)
            out[part] = _generate(tpl, context)
    except (JinjaError, SecurityError) as exc:
        line = _error_line(exc)
        raise TemplateError(
            f"{_where(chosen, part, line)}: {exc}", field=f"variants.{chosen}.{part}", line=line
        ) from exc
    finally:
        _deadline.at = 0.0
    subject = " ".join((out["subject"] or "").split())  # one line: a header
    html = inline_css(out["html"]) if out["html"] is not None else None
    return Rendered(chosen, subject, html, out["text"])


def _generate(tpl: Any, context: Mapping[str, Any]) -> str:
    chunks: list[str] = []
    size = 0
    for chunk in tpl.generate(context):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise SecurityError(f"output over {MAX_OUTPUT} characters")
        _check_time()
        chunks.append(chunk)
    return "".join(chunks)


def _error_line(exc: Exception) -> int | None:
    lineno = getattr(exc, "lineno", None)
    if lineno:
        return int(lineno)
    tb = exc.__traceback__
    line = None
    while tb is not None:  # the template's own frame names its line like any Python frame
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


__all__ = [
    "CONTEXT_NAMES",
    "Rendered",
    "TemplateError",
    "UndefinedError",
    "check",
    "pick_locale",
    "render",
]


_uses: dict[tuple[Any, ...], frozenset[str]] = {}


def names_used(
    template_id: int, version: int, variants: Mapping[str, Mapping[str, str]]
) -> frozenset[str]:
    """Every top-level name the template's parts read (so the context builds only those)."""
    sources = tuple((loc, part, p.get(part)) for loc, p in variants.items() for part in PARTS)
    key = (template_id, version, sources)
    found = _uses.get(key)
    if found is None:
        found = _uses[key] = undeclared(variants)
    return found


def undeclared(variants: Mapping[str, Mapping[str, str]]) -> frozenset[str]:
    env = _ENVS[(False, False)]
    names: set[str] = set()
    for parts in variants.values():
        for part in PARTS:
            if parts.get(part):
                names |= meta.find_undeclared_variables(env.parse(parts[part]))
    return frozenset(names)
