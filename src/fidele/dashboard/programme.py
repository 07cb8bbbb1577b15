"""What the programme pages show (loyalty, promotions, shop settings), assembled from the
domains' own services, the ones the API calls: the scale is validated by ``config.parse``
(``PUT /v1/loyalty/rules``), an order is simulated by ``loyalty.service.simulate`` (``POST
/v1/loyalty/simulate``, the same ``domain.order_points`` as earning), settlement and liability
come from ``loyalty.reports``. This module only turns forms into those inputs and results into
sentences."""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from fidele.customers import service as customers
from fidele.dashboard.programme_repository import ProgrammePages
from fidele.dashboard.web import Ctx
from fidele.errors import InvalidInput, NotFound
from fidele.kit.money import minor_units
from fidele.loyalty import config, domain, members, reports, rewards
from fidele.loyalty import service as loyalty
from fidele.loyalty.repository import LoyaltyRepository
from fidele.loyalty.schemas import window
from fidele.promotions import coupons, referrals
from fidele.promotions.config import PromotionConfig
from fidele.tenancy.service import Caller
from fidele.webhooks import service as webhooks
from fidele.webhooks.api import TOPICS

SETTINGS_FIELDS = (
    "points_per_unit",
    "base",
    "earn_on",
    "pending_days",
    "expiry_months",
    "point_value",
    "clawback",
)
INT_SETTINGS = {"points_per_unit", "pending_days", "expiry_months", "point_value"}
LIST = 50
RECENT_EVENTS = 5000  # how far back the connectors' "last received" looks in the event log
PLATFORMS = ("shopify", "woocommerce", "prestashop")
# Codes of the domains in English words (translated by fr.yaml like any text).
CODES = {
    "base:net": "net",
    "base:no_shipping": "without shipping",
    "base:total": "total paid",
    "clawback:debt": "kept as a debt",
    "clawback:negative": "negative balance",
    "clawback:forgive": "forgiven",
    "metric:points": "points",
    "metric:spent": "amount spent",
    "metric:orders": "orders",
    "origin:merchant": "the shop",
    "origin:next_order": "next-order coupons",
    "origin:referral": "referral",
    "origin:flow": "journeys",
    "origin:batch": "batches",
    "origin:automatic": "automatic",
    "referral:invitations": "Invitations",
    "referral:pending": "Referred, waiting",
    "referral:rewarded": "Rewarded",
    "referral:void": "Void",
    "referral:refused": "Refused",
    "reward:credit": "store credit",
    "reward:coupon": "coupon",
    "reward:points": "points",
    "delivery:pending": "pending",
    "delivery:sent": "sent",
    "delivery:dead": "failed",
}


def labeller(ctx: Ctx) -> Any:
    """``label(code)``: a domain's code in the user's words."""
    return lambda code: ctx.fmt.t(CODES.get(code, code))


# --- money typed by a person ---------------------------------------------------------------


def minor(text: str, currency: str, field: str) -> int:
    """``"49.90"`` (or ``"49,90"``) in ``currency`` as minor units; refused naming ``field``."""
    cleaned = text.strip().replace(" ", "").replace("\u202f", "").replace(",", ".")
    try:
        amount = Decimal(cleaned or "0") * 10 ** minor_units(currency)
    except InvalidOperation:
        raise InvalidInput("must be an amount such as 49.90", field=field) from None
    if amount != amount.to_integral_value() or amount < 0 or amount > 10**13:
        raise InvalidInput(
            "must be a positive amount with at most the currency's decimals", field=field
        )
    return int(amount)


def major(amount: int, digits: int | None = None, currency: str = "EUR") -> str:
    """Minor units as a person types them back (``4990`` -> ``49.9``); ``digits`` decimals
    (basis points as a percentage: 2), else the currency's."""
    places = minor_units(currency) if digits is None else digits
    return format((Decimal(amount) / 10**places).normalize(), "f")


def whole(form: dict[str, str], name: str, *, optional: bool = False) -> int | None:
    raw = form.get(name, "").strip()
    if optional and not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number", field=name) from None


# --- the earning scale ---------------------------------------------------------------------


def _number(raw: str) -> Any:
    """A form value as the scale's JSON would hold it: an int when it is one, ``None`` when
    blank, else the text (so the validation names the field, as the API does)."""
    raw = raw.strip()
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


def scale_from_form(current: config.Scale, form: dict[str, str]) -> dict[str, Any]:
    """The scale document the form describes: the current one with the form's settings,
    tiers and rules (YAML) in place. Not validated here: :func:`config.parse` does it."""
    doc = current.model_dump(mode="json")
    for name in SETTINGS_FIELDS:
        key = f"settings.{name}"
        if key in form:
            doc["settings"][name] = _number(form[key]) if name in INT_SETTINGS else form[key]
    levels = []
    i = 0
    while f"tier-{i}-name" in form:
        name = form[f"tier-{i}-name"].strip()
        if name:
            levels.append(
                {
                    "name": name,
                    "threshold": {
                        "metric": form.get(f"tier-{i}-metric", "points"),
                        "value": _number(form.get(f"tier-{i}-value", "")) or 0,
                    },
                    "multiplier_bp": _number(form.get(f"tier-{i}-multiplier_bp", "")) or 10_000,
                    "free_shipping": bool(form.get(f"tier-{i}-free_shipping")),
                    "exclusive_rewards": bool(form.get(f"tier-{i}-exclusive_rewards")),
                }
            )
        i += 1
    if i:
        doc["tiers"]["levels"] = levels
    if "rules" in form:
        try:
            rules = yaml.safe_load(form["rules"]) if form["rules"].strip() else []
        except yaml.YAMLError as exc:
            raise config.ScaleError([(None, "rules", f"not YAML: {exc}")]) from exc
        doc["rules"] = rules
    return doc


def field_of(loc: str, tier_rows: list[int]) -> str:
    """The form field an error location of the scale belongs to."""
    parts = loc.split(".")
    if parts[0] == "settings" and len(parts) > 1:
        return f"settings.{parts[1]}"
    if parts[:2] == ["tiers", "levels"] and len(parts) > 3 and parts[2].isdigit():
        row = tier_rows[int(parts[2])] if int(parts[2]) < len(tier_rows) else 0
        return f"tier-{row}-{parts[-1] if parts[-1] != 'threshold' else 'value'}"
    return "rules" if parts[0] == "rules" else "tiers" if parts[0] == "tiers" else "scale"


def scale_errors(exc: config.ScaleError, form: dict[str, str]) -> dict[str, str]:
    """Each error of the scale next to its field (``field: message``, the API's fields)."""
    rows = [i for i in range(len(form)) if form.get(f"tier-{i}-name", "").strip()]
    out: dict[str, str] = {}
    for item in exc.fields():
        key = field_of(item["field"], rows)
        text = (
            item["message"]
            if key.startswith(("settings.", "tier-"))
            else (f"{item['field']}: {item['message']}")
        )
        out[key] = f"{out[key]}; {text}" if key in out else text
    return out


def rules_yaml(scale: config.Scale) -> str:
    rules = [
        r.model_dump(mode="json", exclude_defaults=True) | {"type": r.type} for r in scale.rules
    ]
    return yaml.safe_dump(rules, sort_keys=False, allow_unicode=True) if rules else ""


def explain(ctx: Ctx, scale: config.Scale, rule_id: str, points: int, base: int) -> str:
    """One line of the simulation in words: what the rule is and what it gave."""
    t, s = ctx.fmt.t, scale.settings
    if rule_id == domain.BASE_RULE:
        return t(
            "{ppu} point(s) per {currency} of the {base} amount ({amount}): {points} points",
            ppu=s.points_per_unit,
            currency=s.currency,
            base=t(CODES[f"base:{s.base}"]),
            amount=ctx.fmt.money(base, s.currency),
            points=points,
        )
    if rule_id.startswith("tier:"):
        tier = next((x for x in scale.tiers.levels if f"tier:{x.name}" == rule_id), None)
        bp = tier.multiplier_bp if tier else 10_000
        return t(
            "Tier {name} ×{factor}: {points} more points",
            name=rule_id[5:],
            factor=bp / 10_000,
            points=points,
        )
    if rule_id == "membership":
        return t("Paid membership multiplier: {points} more points", points=points)
    rule = scale.rule(rule_id)
    if rule is not None and rule.type in ("multiplier", "birthday"):
        what = ", ".join([*rule.categories, *rule.products]) if rule.type == "multiplier" else ""
        return t(
            "Rule {rule} ×{factor}{on}: {points} more points",
            rule=rule_id,
            factor=rule.multiplier_bp / 10_000,
            on=f" ({what})" if what else "",
            points=points,
        )
    if rule is not None and rule.type == "first_order":
        return t("First-order bonus ({rule}): {points} points", rule=rule_id, points=points)
    return t("Rule {rule}: {points} points", rule=rule_id, points=points)


def simulation(ctx: Ctx, scale: config.Scale, query: dict[str, str]) -> dict[str, Any] | None:
    """``POST /v1/loyalty/simulate`` for one line typed in the box, each rule explained."""
    if not query.get("sim_amount"):
        return None
    currency = scale.settings.currency
    amount = minor(query["sim_amount"], currency, "sim_amount")
    shipping = minor(query.get("sim_shipping", ""), currency, "sim_shipping")
    customer = None
    if ref := query.get("sim_customer", "").strip():
        customer = customers.get(ctx.session, ctx.caller, ref[:255])
    line = {
        "product_id": query.get("sim_product", "").strip()[:255] or "product",
        "category": query.get("sim_category", "").strip()[:255] or None,
        "quantity": 1,
        "unit_price": amount,
    }
    channel = query.get("sim_channel", "").strip()[:100] or None
    facts = loyalty._facts([line], shipping, 0, 0, currency, channel, ctx.now)
    result = loyalty.simulate(ctx.session, ctx.caller, customer, facts, ctx.now)
    base = sum(ln.amount for ln in domain.eligible_lines(facts, scale.settings.base))
    lines = [
        {
            "rule": r["rule"],
            "points": r["points"],
            "why": explain(ctx, scale, r["rule"], r["points"], base),
        }
        for r in result["rules"]
    ]
    return {"points": result["points"], "lines": lines, "query": query}


def budgets(ctx: Ctx, scale: config.Scale) -> list[dict[str, Any]]:
    """Each budgeted rule with what it has awarded this period (the counters earning bumps)."""
    rows = []
    for rule in scale.rules:
        if rule.budget is None:
            continue
        period = domain.period_key(rule.budget.period, ctx.now)
        rows.append(
            {"rule": rule.id, "budget": rule.budget, "key": f"budget:{rule.id}:{period}:all"}
        )
    spent = ProgrammePages(ctx.session).counters(ctx.programme.id, [r["key"] for r in rows])
    return [{**r, "spent": spent.get(r["key"], 0)} for r in rows]


def settlement(ctx: Ctx) -> dict[str, Any]:
    """The settlement since the programme began (the API's default window): every member
    shop's line for the programme's owner, its own line for a member."""
    pages = ProgrammePages(ctx.session)
    names = pages.merchant_names(ctx.programme.id)
    if len(names) < 2:  # a shop alone in its programme settles with nobody: no ledger scan
        return {"lines": [], "owner": True, "coalition": False}
    start, end = window(None, None, ctx.now)
    data = reports.settlement(ctx.session, ctx.programme.id, start, end)
    owner = pages.owner_of(ctx.programme.id) == ctx.merchant.id
    lines = [
        {**line, "name": names.get(line["merchant_id"], str(line["merchant_id"]))}
        for line in data["lines"]
        if owner or line["merchant_id"] == ctx.merchant.id
    ]
    return {**data, "lines": lines, "owner": owner, "coalition": len(names) > 1}


def loyalty_page(ctx: Ctx, query: dict[str, str], **extra: Any) -> dict[str, Any]:
    scale = members.scale_at(ctx.session, ctx.programme.id, ctx.now)
    form = extra.pop("form", None)
    return {
        "scale": scale,
        "form": form,
        "rules_text": form.get("rules", "") if form else rules_yaml(scale),
        "errors": extra.pop("errors", {}),
        "simulation": extra.pop("simulation", None) or simulation(ctx, scale, query),
        "rewards": LoyaltyRepository(ctx.session).rewards(ctx.programme.id),
        "reward_kinds": rewards.KINDS,
        "label": labeller(ctx),
        "major": lambda amount, digits=None: major(amount, digits, ctx.programme.currency),
        "liability": _by_age(reports.liability(ctx.session, ctx.programme.id, ctx.now)),
        "budgets": budgets(ctx, scale),
        "settlement": settlement(ctx),
        **extra,
    }


def _by_age(liability: dict[str, Any]) -> dict[str, Any]:
    """The liability with its age buckets youngest first (as the domain defines them)."""
    order = [name for _, name in domain.AGE_BUCKETS] + [domain.OLDEST_BUCKET]
    rows = sorted(liability["by_age"], key=lambda b: order.index(b["bucket"]))
    return {**liability, "by_age": rows}


def reward_data(form: dict[str, str], currency: str) -> dict[str, Any]:
    """A reward form as ``RewardIn`` takes it: value typed as money (amount_off, donation),
    as a percentage (percent_off) or empty."""
    kind = form.get("kind", "")
    raw = form.get("value", "").strip()
    value: Any = 0
    if raw and kind in ("amount_off", "donation"):
        value = minor(raw, currency, "value")
    elif raw and kind == "percent_off":
        value = int(Decimal(raw.replace(",", ".")) * 100) if _decimal(raw) else raw
    return {
        "name": form.get("name", "").strip(),
        "points_cost": _number(form.get("points_cost", "")),
        "kind": kind,
        "value": value,
        "stock": _number(form.get("stock", "")),
        "per_customer_limit": _number(form.get("per_customer_limit", "")),
        "members_only": bool(form.get("members_only")),
    }


def _decimal(raw: str) -> bool:
    try:
        Decimal(raw.replace(",", "."))
    except InvalidOperation:
        return False
    return True


# --- promotions ----------------------------------------------------------------------------


def promotions_page(ctx: Ctx, **extra: Any) -> dict[str, Any]:
    pages = ProgrammePages(ctx.session)
    settings = coupons.config(ctx.session, ctx.merchant.id)
    return {
        "coupons": pages.coupons(ctx.merchant.id, limit=LIST),
        "batches": pages.batches(ctx.merchant.id, limit=LIST),
        "automatic": pages.automatic(ctx.merchant.id),
        "personal": pages.personal_usage(ctx.merchant.id),
        "gift_cards": pages.gift_cards(ctx.merchant.id, limit=20),
        "settings": settings,
        "referral_stats": referrals.programme_stats(ctx.session, ctx.caller),
        "value_now": coupons.value_now,
        "label": labeller(ctx),
        "major": lambda amount, digits=None: major(amount, digits, ctx.programme.currency),
        "errors": extra.pop("errors", {}),
        **extra,
    }


def offer_value(kind: str, raw: str, currency: str) -> int:
    """What the coupon forms take: a percentage for percent_off (basis points stored), money
    for amount_off, nothing for the others."""
    if kind == "percent_off":
        if not _decimal(raw or "x"):
            raise InvalidInput("a percentage such as 10", field="value")
        return int(Decimal(raw.replace(",", ".")) * 100)
    if kind == "amount_off":
        return minor(raw, currency, "value")
    return 0


def batch_csv(ctx: Ctx, batch: str) -> str:
    rows = ProgrammePages(ctx.session).batch(ctx.merchant.id, batch)
    if not rows:
        raise NotFound(f"batch {batch} not found")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("code", "name", "kind", "value", "usage_limit", "used", "status", "ends_at"))
    for c in rows:
        ends = c.ends_at.isoformat() if c.ends_at else ""
        writer.writerow(
            (
                c.display_code,
                c.name or "",
                c.kind,
                c.value,
                c.usage_limit,
                c.used_count,
                c.status,
                ends,
            )
        )
    return out.getvalue()


def next_order_from_form(settings: PromotionConfig, form: dict[str, str]) -> dict[str, Any]:
    """The settings document with the next-order schedule of the form (``days:percent`` per
    line) and the referral settings; validated by ``PromotionConfig`` as ``PUT
    /v1/promotions/settings`` validates it."""
    doc = settings.model_dump(mode="json")
    if "schedule" in form:
        steps = []
        for n, line in enumerate(form["schedule"].replace(",", "\n").splitlines(), start=1):
            if not line.strip():
                continue
            days, _, percent = line.partition(":")
            try:
                steps.append([int(days), int(Decimal(percent.strip().rstrip("%")) * 100)])
            except (ValueError, InvalidOperation):
                raise InvalidInput(
                    f"line {n}: write days:percent, such as 15:15", field="schedule"
                ) from None
        doc["next_order"].update(
            enabled=bool(form.get("next_enabled")),
            schedule=steps,
            min_subtotal=minor(form.get("min_subtotal", ""), settings.currency, "min_subtotal"),
        )
    if "welcome_kind" in form:
        doc["referral"].update(
            enabled=bool(form.get("referral_enabled")),
            welcome_kind=form["welcome_kind"],
            welcome_value=_number(form.get("welcome_value", "")) or 0,
            reward_kind=form.get("reward_kind", ""),
            reward_value=_number(form.get("reward_value", "")) or 0,
            monthly_cap=_number(form.get("monthly_cap", "")) or 0,
        )
    return doc


# --- shop settings -------------------------------------------------------------------------


def lookup_caller(ctx: Ctx) -> Caller:
    """The caller a gift-card lookup counts its failures against: one counter per dashboard
    user (negative ids never meet an API key's), as the API counts per key."""
    return Caller(ctx.merchant.id, ctx.programme.id, -ctx.user.id, ctx.caller.scopes)


def is_owner(ctx: Ctx) -> bool:
    return ProgrammePages(ctx.session).owner_of(ctx.programme.id) == ctx.merchant.id


def shop_page(ctx: Ctx, **extra: Any) -> dict[str, Any]:
    pages = ProgrammePages(ctx.session)
    admin = ctx.can("admin")
    settings = ctx.programme.settings or {}
    return {
        "endpoints": webhooks.endpoints(ctx.session, ctx.merchant.id) if admin else [],
        "deliveries": pages.deliveries(ctx.merchant.id, limit=20) if admin else [],
        "topics": TOPICS,
        "secrets": pages.connector_secrets(ctx.merchant.id),
        "received": pages.last_received(ctx.merchant.id, PLATFORMS, window=RECENT_EVENTS),
        "recent_events": RECENT_EVENTS,
        "discrepancies": {d["source"]: d for d in _discrepancies(ctx)},
        "platforms": PLATFORMS,
        "regional": {
            "locale": settings.get("locale") or "",
            "currency": ctx.programme.currency,
            "timezone": settings.get("timezone") or "UTC",
        },
        "owner": is_owner(ctx),
        "label": labeller(ctx),
        "errors": extra.pop("errors", {}),
        **extra,
    }


def _discrepancies(ctx: Ctx) -> list[dict[str, Any]]:
    from fidele.orders import service as orders

    return orders.discrepancies(ctx.session, ctx.caller)
