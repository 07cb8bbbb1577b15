"""The demo shop's storefront: a few rewards and a demo customer with points, made by
``fidele demo`` (a handful of rows: the build stays as fast), and the fake shop page that
carries the widget for that customer (``/storefront/demo``, token minted by the server)."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.loyalty import rewards
from fidele.loyalty import service as loyalty
from fidele.storefront import service
from fidele.tenancy.service import Caller

REWARDS = (
    {"name": "5 € off your order", "points_cost": 250, "kind": "amount_off", "value": 500},
    {"name": "Free shipping", "points_cost": 400, "kind": "free_shipping", "value": 0},
    {"name": "10% off your order", "points_cost": 600, "kind": "percent_off", "value": 1000},
    {"name": "20 € off your order", "points_cost": 1500, "kind": "amount_off", "value": 2000},
)
DEMO_POINTS = 500  # on top of what the story gave: the first rewards are within reach


def prepare(session: Session, caller: Caller, now: datetime, server_secret: str) -> str | None:
    """Rewards, a storefront secret and a demo customer (the shop's first, given
    ``DEMO_POINTS``: the same whatever the balances' state, so the bulk build and the
    step-by-step reference stay equal); returns the customer's id."""
    for data in REWARDS:
        rewards.create_reward(session, caller, dict(data), now)
    firsts = customers.list_page(session, caller, after_id=0, limit=1, updated_since=None)
    if not firsts:
        return None
    chosen = firsts[0]
    loyalty.award_points(
        session,
        customer=chosen,
        points=DEMO_POINTS,
        reason="welcome to the demo storefront",
        key=f"storefront-demo:{chosen.id}",
        now=now,
    )
    row = service.settings_row(session, caller.merchant_id, now)
    row.demo_customer = chosen.external_id
    service.rotate_secret(session, caller.merchant_id, server_secret, now)
    return chosen.external_id


# As strict as a careful shop's: the widget needs its script and calls to this server only
# (its styles are constructed stylesheets and CSSOM, which style-src does not govern).
CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
WORDS = {
    "en": {
        "title": "Maison Fidèle: demo shop",
        "lead": "A fake shop page carrying the fidele widget for a demo customer.",
        "switch": "Français",
        "add": "Add to basket",
        "signed": "Signed in as",
    },
    "fr": {
        "title": "Maison Fidèle : boutique de démonstration",
        "lead": "Une fausse page de boutique avec le widget fidele pour un client de démo.",
        "switch": "English",
        "add": "Ajouter au panier",
        "signed": "Connecté en tant que",
    },
}
PRODUCTS = (("Linen shirt", "49,00 €"), ("Wool scarf", "35,00 €"), ("Leather bag", "129,00 €"))


def page(found: dict[str, Any], lang: str) -> str:
    w = WORDS[lang]
    other = "fr" if lang == "en" else "en"
    cards = "".join(
        f'<article class="card"><div class="img" aria-hidden="true"></div><h2>{escape(n)}</h2>'
        f'<p>{escape(p)}</p><button type="button">{w["add"]}</button></article>'
        for n, p in PRODUCTS
    )
    return f"""<!doctype html>
<html lang="{lang}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(w["title"])}</title>
<style>
body {{ font: 16px/1.5 Georgia, serif; margin: 0; color: #222; background: #faf7f2; }}
header {{ padding: 1rem 2rem; background: #2d2a26; color: #fff; display: flex;
  justify-content: space-between; align-items: center; }}
header a {{ color: #fff; }}
main {{ padding: 2rem; display: grid; gap: 1.5rem; grid-template-columns: repeat(3, 1fr); }}
.card {{ background: #fff; padding: 1rem; border-radius: 6px; }}
.img {{ height: 140px; background: linear-gradient(135deg, #e8dccb, #c9b79c); }}
button {{ font: inherit; color: #fff; background: #2d2a26; border: 0; padding: .5rem 1rem; }}
</style></head>
<body>
<header><strong>Maison Fidèle</strong>
<span>{w["signed"]} <code id="demo-customer">{escape(found["customer"])}</code> ·
<a id="switch-lang" href="/storefront/demo?lang={other}">{w["switch"]}</a></span></header>
<p style="padding: 0 2rem">{escape(w["lead"])}</p>
<main>{cards}</main>
<script src="/storefront/widget.js" data-merchant="{found["merchant_id"]}"
 data-token="{escape(found["token"])}"></script>
</body></html>
"""
