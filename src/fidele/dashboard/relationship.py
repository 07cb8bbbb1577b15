"""What the segments, journeys, messages and newsletters pages show, and the overview's and
the customer 360°'s relationship sections, from the domains' own services (the ones the API
calls): the segment builder's rows become the API's rule document, checked and counted by
``segments.service``; flows, stats and holdout comparisons come from ``campaigns`` and
``messaging.stats``; templates are checked and previewed by ``messaging``."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from fidele.campaigns import service as flows
from fidele.campaigns import templates as journeys_library
from fidele.customers.gdpr import exporters, load
from fidele.customers.models import Customer
from fidele.dashboard import journeys_report
from fidele.dashboard.journeys_repository import JourneyCounts
from fidele.dashboard.web import Ctx
from fidele.errors import FideleError, InvalidInput
from fidele.messaging import broadcasts, stats
from fidele.messaging import service as messaging
from fidele.messaging.repository import TemplateRepository
from fidele.segments import service as segments
from fidele.segments.api import list_fields
from fidele.segments.domain import RuleError

BUILDER_ROWS = 3
MAX_ROWS = 20
LOCALES = ("en", "fr")
PARTS = ("subject", "html", "text")
MEMBERS_PAGE = 50


def named(exc: FideleError) -> str:
    """A service's refusal as the page shows it: the field it names, then why."""
    fields = exc.extra.get("fields") or []
    field = fields[0].get("field") if fields and isinstance(fields[0], dict) else None
    text = str(exc.detail)
    return f"{field}: {text}" if field and not text.startswith(str(field)) else text


# --- the segment builder --------------------------------------------------------------------


def fields(ctx: Ctx) -> dict[str, Any]:
    """``GET /v1/segments/fields``: the names a criterion may use, with their type and ops."""
    return {f.name: f for f in list_fields(ctx.caller)}


def _kind(catalogue: dict[str, Any], name: str) -> str:
    if name in catalogue:
        return str(catalogue[name].type)
    if name.startswith("consent."):
        return "bool"
    if name.startswith("events."):
        return "int"
    return "attr"


def _scalar(kind: str, text: str) -> Any:
    """A value typed as the field's kind (what a JSON client would send)."""
    text = text.strip()
    if kind in ("int", "float", "attr"):
        number = _number(text)
        if number is not None:
            return number
    if kind in ("bool", "attr") and text.lower() in ("true", "false", "yes", "no"):
        return text.lower() in ("true", "yes")
    return text


def _number(text: str) -> int | float | None:
    """``text`` as an integer, else a float, else None (left as text for the rule's check)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return None


def criteria_of(form: dict[str, str]) -> list[dict[str, str]]:
    """The builder's rows as typed (``field_N``, ``op_N``, ``value_N``, ``days_N``)."""
    try:
        n = min(max(int(form.get("rows") or BUILDER_ROWS), 1), MAX_ROWS)
    except ValueError:
        n = BUILDER_ROWS
    return [
        {k: form.get(f"{k}_{i}", "").strip()[:500] for k in ("field", "op", "value", "days")}
        for i in range(n)
    ]


def rule_of(
    catalogue: dict[str, Any], combine: str, rows: list[dict[str, str]]
) -> tuple[dict[str, Any], list[int]]:
    """The rule document of the rows with a field (``{"all"|"any": [conditions]}``), and for
    each condition the row it came from (to name the criterion of an error)."""
    conditions, origin = [], []
    for i, row in enumerate(rows):
        if not row["field"]:
            continue
        kind = _kind(catalogue, row["field"])
        op = row["op"] or "eq"
        condition: dict[str, Any] = {"field": row["field"], "op": op}
        if op in ("in", "not_in"):
            condition["value"] = [_scalar(kind, v) for v in row["value"].split(",") if v.strip()]
        elif op == "between":
            condition["value"] = [_scalar(kind, v) for v in row["value"].split(",")]
        elif op == "exists":
            condition["value"] = row["value"].lower() not in ("false", "no")
        else:
            condition["value"] = _scalar(kind, row["value"])
        if row["days"]:
            condition["within_days"] = _scalar("int", row["days"])
        conditions.append(condition)
        origin.append(i)
    return {"any" if combine == "any" else "all": conditions}, origin


def rows_of(rule: dict[str, Any]) -> tuple[str, list[dict[str, str]]] | None:
    """The builder's rows of a saved rule, when it is one flat all/any list of conditions."""
    combine = "any" if "any" in rule else "all"
    items = rule.get(combine)
    if not isinstance(items, list) or not all(isinstance(c, dict) and "field" in c for c in items):
        return None

    def text(v: Any) -> str:
        if isinstance(v, list):
            return ", ".join(text(x) for x in v)
        return str(v).lower() if isinstance(v, bool) else str(v)

    rows = [
        {
            "field": str(c["field"]),
            "op": str(c.get("op", "eq")),
            "value": text(c.get("value", "")),
            "days": str(c.get("within_days", "")),
        }
        for c in items
    ]
    return combine, rows


def criterion_error(ctx: Ctx, exc: InvalidInput, origin: list[int]) -> str:
    """The service's refusal, naming the builder's criterion (``rule.all.2.value`` ->
    "criterion 3, value")."""
    if isinstance(exc, RuleError):
        parts = exc.field.split(".")
        if len(parts) >= 3 and parts[2].isdigit() and int(parts[2]) < len(origin):
            where = ctx.fmt.t("Criterion {n}", n=origin[int(parts[2])] + 1)
            rest = ".".join(parts[3:])
            return f"{where}{', ' + rest if rest else ''}: {exc.reason}"
        return exc.reason
    return str(exc.detail)


def live_count(ctx: Ctx, form: dict[str, str]) -> dict[str, Any]:
    """``POST /v1/segments/preview`` of the builder's rows: the count, or the error."""
    catalogue = fields(ctx)
    rows = criteria_of(form)
    rule, origin = rule_of(catalogue, form.get("combine", "all"), rows)
    if not origin:
        return {"count": None, "error": None, "rule": rule}
    try:
        count, _ = segments.preview(ctx.session, ctx.merchant.id, rule, ctx.now, sample=0)
    except InvalidInput as exc:
        return {"count": None, "error": criterion_error(ctx, exc, origin), "rule": rule}
    return {"count": count, "error": None, "rule": rule}


def builder(ctx: Ctx, form: dict[str, str] | None = None, segment: Any = None) -> dict[str, Any]:
    """The builder's state: the rows typed (or the saved segment's), and their live count."""
    form = dict(form or {})
    if segment is not None and not any(k.startswith("field_") for k in form):
        found = rows_of(segment.rule)
        if found is not None:
            combine, rows = found
            form["combine"], form["rows"] = combine, str(max(len(rows), 1))
            for i, row in enumerate(rows):
                for k, v in row.items():
                    form[f"{k}_{i}"] = v
        form.setdefault("name", segment.name)
    rows = criteria_of(form)
    if form.get("add"):
        rows.append({"field": "", "op": "", "value": "", "days": ""})
    return {
        "rows": rows[:MAX_ROWS],
        "combine": form.get("combine", "all"),
        "name": form.get("name", ""),
        "catalogue": fields(ctx),
        "live": live_count(ctx, form),
        "editing": segment,
        "flat": segment is None or rows_of(segment.rule) is not None,
    }


def segments_page(ctx: Ctx, form: dict[str, str] | None = None) -> dict[str, Any]:
    listed = segments.listing(ctx.session, ctx.merchant.id, after_id=0, limit=500)
    return {"segments": listed, "builder": builder(ctx, form)}


def segment_page(
    ctx: Ctx, segment_id: int, after: int = 0, form: dict[str, str] | None = None
) -> dict[str, Any]:
    segment = segments.get(ctx.session, ctx.merchant.id, segment_id)
    members = segments.members(
        ctx.session, ctx.merchant.id, segment_id, after_id=after, limit=MEMBERS_PAGE + 1
    )
    more = len(members) > MEMBERS_PAGE
    members = list(members)[:MEMBERS_PAGE]
    return {
        "segment": segment,
        "members": members,
        "next_after": members[-1].id if more and members else None,
        "builder": builder(ctx, form, segment) if not segment.builtin else None,
    }


def save_segment(ctx: Ctx, form: dict[str, str], segment_id: int | None) -> Any:
    """Create (or update) the segment of the builder's rows through ``segments.service``:
    the same validation as ``POST /v1/segments``; an error names the criterion."""
    catalogue = fields(ctx)
    rule, origin = rule_of(catalogue, form.get("combine", "all"), criteria_of(form))
    name = form.get("name", "").strip()[:200]
    if not name:
        raise InvalidInput(ctx.fmt.t("Give the segment a name."), field="name")
    if not origin:
        raise InvalidInput(ctx.fmt.t("Add at least one criterion."), field="field_0")
    try:
        if segment_id is None:
            return segments.create(ctx.session, ctx.merchant.id, name=name, rule=rule, now=ctx.now)
        return segments.update(
            ctx.session, ctx.merchant.id, segment_id, name=name, rule=rule, now=ctx.now
        )
    except RuleError as exc:
        raise InvalidInput(criterion_error(ctx, exc, origin)) from exc  # names the criterion


# --- journeys -------------------------------------------------------------------------------


def journeys_page(ctx: Ctx) -> dict[str, Any]:
    """``GET /v1/flows`` and ``GET /v1/flows/templates``."""
    listed = flows.listing(ctx.session, ctx.caller)
    return {
        "flows": flows.out(ctx.session, listed),
        "library": journeys_library.listing(ctx.session, ctx.caller),
    }


def flow_steps(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps of a stored definition, with the ids the engine gives them."""
    from fidele.campaigns import engine

    parsed = engine.definition_of(definition)
    return [
        {"id": step_id, "kind": step.kind}
        for step_id, step in zip(parsed.step_ids(), parsed.steps, strict=True)
    ]


def journey_page(ctx: Ctx, flow_id: int) -> dict[str, Any]:
    """``GET /v1/flows/{id}`` with ``GET /v1/flows/{id}/stats`` (per step sent, opened,
    clicked..., the holdout comparison with its 95% intervals), where the customers stand
    (at each step, left by reason)."""
    flow = flows.get(ctx.session, ctx.caller, flow_id)
    shown = flows.out(ctx.session, [flow], with_definition=True)[0]
    counts = JourneyCounts(ctx.session)
    measured = stats.flow_stats(ctx.session, ctx.merchant.id, flow.id)
    by_step = {s["step"]: s for s in measured["steps"]}
    at_step = counts.at_step(ctx.merchant.id, flow.id)
    steps = [
        {**s, "at": at_step.get(s["id"], 0), "stats": by_step.get(s["id"])}
        for s in flow_steps(shown.definition or {})
    ]
    return {
        "flow": shown,
        "entered": counts.entered(ctx.merchant.id, flow.id),
        "ended": counts.ended_by_reason(ctx.merchant.id, flow.id),
        "steps": steps,
        "stats": measured,
    }


def journeys_brought(ctx: Ctx) -> dict[str, Any]:
    """The overview's card (``journeys_report``: stored hourly, with its time)."""
    return journeys_report.read(ctx.session, ctx.merchant.id, ctx.now)


# --- messages -------------------------------------------------------------------------------


def templates_of(ctx: Ctx) -> list[Any]:
    """``GET /v1/messages/templates`` (all pages)."""
    repo, out, after = TemplateRepository(ctx.session), [], 0
    while True:
        page = repo.page(ctx.merchant.id, after_id=after, limit=200)
        out += page
        if len(page) < 200:
            return out
        after = page[-1].id


def variants_of(form: dict[str, str], saved: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The editor's FR/EN parts (other saved locales kept as they are)."""
    out = {k: dict(v) for k, v in saved.items()}
    for locale in LOCALES:
        parts = {p: form.get(f"{locale}_{p}", "") for p in PARTS}
        if not any(v.strip() for v in parts.values()):
            out.pop(locale, None)
            continue
        out[locale] = {p: v.replace("\r\n", "\n") for p, v in parts.items() if v.strip()}
    return out


def message_page(
    ctx: Ctx, template_id: int, customer_ref: str = "", form: dict[str, str] | None = None
) -> dict[str, Any]:
    """The template editor, and ``POST /v1/messages/preview`` for a real customer."""
    from fidele.customers import service as customers
    from fidele.messaging import delivery

    row = messaging.get_template(ctx.session, ctx.merchant.id, template_id)
    values = {
        f"{loc}_{p}": (row.variants.get(loc) or {}).get(p) or "" for loc in LOCALES for p in PARTS
    }
    values.update(form or {})
    preview, preview_error, customer = None, None, None
    if customer_ref:
        try:
            customer = customers.get(ctx.session, ctx.caller, customer_ref)
            preview = delivery.preview(
                ctx.session,
                merchant_id=ctx.merchant.id,
                template=row.name,
                customer=customer,
                context={},
                now=ctx.now,
            )
        except FideleError as exc:  # an unknown customer, a template that fails to render
            preview_error = named(exc)
    return {
        "template": row,
        "values": values,
        "locales": LOCALES,
        "customer_ref": customer_ref,
        "customer": customer,
        "preview": preview,
        "preview_error": preview_error,
        "sample": _sample_customer(ctx),
    }


def _sample_customer(ctx: Ctx) -> str | None:
    from fidele.dashboard.repository import CustomerSearch

    found = CustomerSearch(ctx.session).search(ctx.merchant.id, "@", after_id=0, limit=1)
    return found[0].external_id if found else None


def save_message(ctx: Ctx, template_id: int, form: dict[str, str]) -> Any:
    """``PUT /v1/messages/templates/{id}``: the same schema and the same sandbox check (an
    error names ``variants.<locale>.<part>`` and the line)."""
    from pydantic import ValidationError

    from fidele.messaging.schemas import TemplateUpdate

    row = messaging.get_template(ctx.session, ctx.merchant.id, template_id)
    variants = variants_of(form, row.variants)
    try:
        body = TemplateUpdate(variants=variants)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{where}: {first['msg']}", field=where) from None
    assert body.variants is not None
    changes = {"variants": {k: v.model_dump(exclude_none=True) for k, v in body.variants.items()}}
    return messaging.update_template(
        ctx.session, merchant_id=ctx.merchant.id, template_id=template_id, changes=changes,
        now=ctx.now,
    )  # fmt: skip


# --- newsletters ----------------------------------------------------------------------------


def newsletters_page(ctx: Ctx) -> dict[str, Any]:
    """``GET /v1/broadcasts`` with the segments and templates to send a new one."""
    rows = broadcasts.listing(ctx.session, ctx.merchant.id, after_id=0, limit=200)
    return {
        "broadcasts": [broadcasts.view(ctx.session, r) for r in reversed(rows)],
        "segments": segments.listing(ctx.session, ctx.merchant.id, after_id=0, limit=500),
        "templates": [t for t in templates_of(ctx) if t.topic != "transactional"],
    }


def newsletter_page(ctx: Ctx, broadcast_id: int) -> dict[str, Any]:
    """``GET /v1/broadcasts/{id}`` and its ``/stats``."""
    row = broadcasts.get(ctx.session, ctx.merchant.id, broadcast_id)
    return {
        "broadcast": broadcasts.view(ctx.session, row),
        "stats": broadcasts.broadcast_stats(ctx.session, ctx.merchant.id, broadcast_id),
    }


def create_newsletter(ctx: Ctx, form: dict[str, str]) -> Any:
    """``POST /v1/broadcasts`` (the form's one-time id is the idempotency key)."""
    from pydantic import ValidationError

    from fidele.messaging.measure_schemas import BroadcastIn

    send_at = ctx.now
    if form.get("send_at"):
        try:
            local = datetime.fromisoformat(form["send_at"])
        except ValueError:
            text = f"send_at: {ctx.fmt.t('Give a date and time.')}"
            raise InvalidInput(text, field="send_at") from None
        send_at = local.replace(tzinfo=ctx.fmt.timezone) if local.tzinfo is None else local
    numbers = {}
    for name in ("segment_id", "template_id", "holdout"):
        try:
            numbers[name] = float(form.get(name) or 0)
        except ValueError:
            numbers[name] = math.nan
        if not math.isfinite(numbers[name]):
            raise InvalidInput(f"{name}: {ctx.fmt.t('Give a number.')}", field=name)
    try:
        data = BroadcastIn(
            segment_id=int(numbers["segment_id"]),
            template_id=int(numbers["template_id"]),
            send_at=send_at,
            topic=form.get("topic") or "newsletter",
            name=(form.get("name") or "").strip()[:200] or None,
            holdout_share=round(numbers["holdout"] * 100),  # a percentage, in basis points
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{where}: {first['msg']}", field=where) from None
    key = f"dashboard:{form.get('form_id')}" if form.get("form_id") else None
    row, _ = broadcasts.create(ctx.session, ctx.merchant.id, data, ctx.now, idempotency_key=key)
    return row


# --- the customer 360° ----------------------------------------------------------------------


def customer_sections(ctx: Ctx, customer: Customer) -> dict[str, Any]:
    """Journeys (``GET /v1/customers/{id}/journeys``) and messages with their opens and
    clicks and the consents (the customer's export sections ``messaging`` and
    ``message_tracking``)."""
    load()
    journeys = flows.journeys(ctx.session, ctx.caller, customer.external_id)
    messaging_part = exporters["messaging"](ctx.session, customer, ctx.now)
    tracking = exporters["message_tracking"](ctx.session, customer, ctx.now)
    touched: dict[int, set[str]] = {}
    for t in tracking["opens_and_clicks"]:
        touched.setdefault(t["message_id"], set()).add(t["kind"])
    messages = [
        {
            **m,
            "created_at": datetime.fromisoformat(m["created_at"]) if m["created_at"] else None,
            "opened": bool(touched.get(m["id"], set())),  # a click proves an open
            "clicked": "click" in touched.get(m["id"], set()),
        }
        for m in reversed(messaging_part["messages"])
    ]
    return {
        "journeys": journeys,
        "messages": messages,
        "consents": messaging_part["consents"],
        "message_totals": {
            "sent": sum(m["status"] == "sent" for m in messages),
            "opened": sum(m["opened"] for m in messages),
            "clicked": sum(m["clicked"] for m in messages),
        },
    }
