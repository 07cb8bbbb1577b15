"""A small CSS inliner for email HTML (no dependency, no network): the rules of ``<style>``
blocks are copied into the ``style`` attribute of the elements they select, as most mail
clients (Gmail's app, Outlook) ignore or strip ``<style>``.

Selectors handled: ``tag``, ``.class``, ``#id``, ``tag.class``, ``tag#id``, ``.a.b`` and comma
lists of them; rules apply by specificity then source order, and an element's own ``style``
wins over all of them. What cannot be inlined (``@media``, ``:hover``, descendant selectors)
stays in a ``<style>`` block for the clients that read it."""

from __future__ import annotations

import re
from functools import lru_cache

_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)
_RULE = re.compile(r"([^{}@]+)\{([^{}]*)\}")
_AT_BLOCK = re.compile(r"@[^{]+\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", re.S)
_SIMPLE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)?((?:[.#][-_a-zA-Z0-9]+)*)$")
_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)(\s[^<>]*?)?(/?)>")
_ATTR = re.compile(r"""\s(class|id|style)\s*=\s*("([^"]*)"|'([^']*)')""", re.I)

Rule = tuple[tuple[int, int, int], int, str | None, frozenset[str], str | None, str]


@lru_cache(maxsize=256)
def _parse(css: str) -> tuple[list[Rule], str]:
    """The inlinable rules of a stylesheet and what remains of it."""
    kept = _AT_BLOCK.findall(css)
    body = _AT_BLOCK.sub("", css)
    rules: list[Rule] = []
    leftover: list[str] = []
    for order, (selectors, decls) in enumerate(_RULE.findall(body)):
        decls = "; ".join(d.strip() for d in decls.replace('"', "'").split(";") if d.strip())
        for selector in (s.strip() for s in selectors.split(",")):
            m = _SIMPLE.match(selector)
            if not m or not selector:
                leftover.append(f"{selector} {{{decls}}}")
                continue
            tag = m.group(1).lower() if m.group(1) else None
            bits = re.findall(r"[.#][-_a-zA-Z0-9]+", m.group(2) or "")
            classes = frozenset(b[1:] for b in bits if b[0] == ".")
            ids = [b[1:] for b in bits if b[0] == "#"]
            spec = (len(ids), len(classes), 1 if tag else 0)
            rules.append((spec, order, tag, classes, ids[0] if ids else None, decls))
    rules.sort(key=lambda r: (r[0], r[1]))
    return rules, "\n".join(kept + leftover)


def inline_css(html: str) -> str:
    """``html`` with its ``<style>`` rules inlined (see the module's note)."""
    sheets = _STYLE.findall(html)
    if not sheets:
        return html
    rules, leftover = _parse("\n".join(sheets))
    html = _STYLE.sub("", html, count=len(sheets))
    if leftover.strip():
        style = f"<style>{leftover}</style>"
        html = html.replace("</head>", style + "</head>", 1) if "</head>" in html else style + html

    def apply(m: re.Match[str]) -> str:
        tag, attrs, close = m.group(1).lower(), m.group(2) or "", m.group(3)
        found = {a.lower(): (v1 if v1 is not None else v2) for a, _, v1, v2 in _ATTR.findall(attrs)}
        classes = set((found.get("class") or "").split())
        ident = found.get("id")
        decls = [
            d
            for _, _, rtag, rclasses, rid, d in rules
            if (rtag is None or rtag == tag)
            and rclasses <= classes
            and (rid is None or rid == ident)
        ]
        if not decls:
            return m.group(0)
        own = found.get("style")
        style = "; ".join(decls + ([own.strip().rstrip(";")] if own else []))
        attrs = _ATTR.sub(lambda a: a.group(0) if a.group(1).lower() != "style" else "", attrs)
        return f'<{m.group(1)}{attrs} style="{style}"{close}>'

    return _TAG.sub(apply, html)
