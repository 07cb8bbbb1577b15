"""Templates (sandbox, time limit, strict mode, locales, CSS inlining) and the pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from fidele.messaging import domain, templates
from fidele.messaging.inline import inline_css
from fidele.messaging.templates import TemplateError


def _render(
    source: str, ctx: dict | None = None, *, part: str = "text", strict: bool = True, tid: int = 1
):  # type: ignore[no-untyped-def]
    variants = {"en": {"subject": "s", part: source}}
    return templates.render(
        template_id=tid,
        version=1,
        variants=variants,
        strict=strict,
        locale="en",
        default_locale="en",
        context=ctx or {},
    )


def test_sandbox_refuses_internals():
    with pytest.raises(TemplateError, match="unsafe|not safely|access"):
        _render("{{ customer.__class__.__mro__ }}", {"customer": {"a": 1}}, tid=101)
    with pytest.raises(TemplateError):
        _render("{{ ''.__class__.__subclasses__() }}", tid=102)


def test_render_time_and_size_limits():
    with pytest.raises(TemplateError, match="longer than"):
        _render(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            tid=103,
        )
    with pytest.raises(TemplateError, match="repetition"):
        _render("{{ 'x' * 100000000 }}", tid=104)


def test_strict_mode_names_the_line_and_render_errors_too():
    with pytest.raises(TemplateError) as err:
        templates.check({"en": {"subject": "ok", "html": "<p>\n\n{{ points }}</p>"}}, strict=True)
    assert (
        err.value.extra["line"] == 3 and err.value.extra["fields"][0]["field"] == "variants.en.html"
    )
    templates.check({"en": {"subject": "ok", "html": "{{ points }}"}}, strict=False)
    with pytest.raises(TemplateError) as err:
        _render("line\n{{ customer.nope }}", {"customer": {}}, tid=105)
    assert err.value.extra["line"] == 2
    assert _render("{{ customer.nope }}x", {"customer": {}}, strict=False, tid=106).text == "x"


def test_html_is_autoescaped_text_is_not():
    ctx = {"customer": {"first_name": "<b>Al</b>"}}
    assert (
        _render("{{ customer.first_name }}", ctx, part="html", tid=107).html
        == "&lt;b&gt;Al&lt;/b&gt;"
    )
    assert _render("{{ customer.first_name }}", ctx, tid=108).text == "<b>Al</b>"


def test_pick_locale():
    variants = {"en": {}, "fr": {}, "pt-BR": {}}
    assert templates.pick_locale(variants, "fr-CA", "en") == "fr"
    assert templates.pick_locale(variants, "de", "fr") == "fr"
    assert templates.pick_locale(variants, "pt", "en") == "pt-BR"
    assert templates.pick_locale(variants, None, "es") == "en"


def test_inline_css():
    html = (
        "<html><head><style>p{color:red} .x{margin:0} p.x{color:blue} #y{padding:1px} "
        "a:hover{color:green} @media (max-width:600px){p{font-size:12px}}</style></head>"
        '<body><p class="x" style="font-weight:bold">a</p><p id="y">b</p>'
        '<a href="#">c</a></body></html>'
    )
    out = inline_css(html)
    assert '<p class="x" style="color:red; margin:0; color:blue; font-weight:bold">' in out
    assert '<p id="y" style="color:red; padding:1px">' in out
    assert "a:hover {color:green}" in out and "@media" in out  # kept for clients that read it


def test_cap_block_strictest_rule_wins():
    rules = [domain.CapRule(1, 1), domain.CapRule(3, 7)]
    now = datetime(2026, 6, 10, 12, tzinfo=UTC)
    assert domain.cap_block(rules, [], now) is None
    sent = [now - timedelta(hours=3)]
    assert domain.cap_block(rules, sent, now) == now + timedelta(hours=21)
    sent = [now - timedelta(days=d) for d in (2, 3, 6)]
    assert domain.cap_block(rules, sent, now) == now + timedelta(days=1)  # the weekly rule


def test_quiet_hours_windows():
    q = domain.QuietHours(time(21), time(8))
    paris = ZoneInfo("Europe/Paris")
    assert domain.next_allowed(datetime(2026, 1, 5, 12, tzinfo=UTC), paris, q) is None
    # 23:30 Paris in winter (UTC+1) -> 08:00 Paris next day = 07:00 UTC
    assert domain.next_allowed(datetime(2026, 1, 5, 22, 30, tzinfo=UTC), paris, q) == datetime(
        2026, 1, 6, 7, tzinfo=UTC
    )
    # 02:00 Paris -> 08:00 the same day
    assert domain.next_allowed(datetime(2026, 1, 6, 1, tzinfo=UTC), paris, q) == datetime(
        2026, 1, 6, 7, tzinfo=UTC
    )
    day = domain.QuietHours(time(12), time(14))
    assert domain.next_allowed(
        datetime(2026, 1, 5, 12, 30, tzinfo=UTC), ZoneInfo("UTC"), day
    ) == datetime(2026, 1, 5, 14, tzinfo=UTC)


def test_tokens_bind_merchant_customer_topic():
    t = domain.unsubscribe_token("s3cret", 1, 42, "newsletter")
    assert domain.read_token("s3cret", t) == domain.TokenSubject(1, 42, "newsletter")
    assert domain.read_token("other", t) is None
    m, c, topic, sig = t.split(".")
    assert domain.read_token("s3cret", f"{m}.43.{topic}.{sig}") is None
    assert domain.read_token("s3cret", f"2.{c}.{topic}.{sig}") is None
    assert domain.read_token("s3cret", "garbage") is None


def test_mime_round_trips_non_ascii_and_keeps_lines_short():
    from email import message_from_bytes
    from email.policy import default

    from fidele.messaging.transports import Outgoing

    subject = "Chloé, votre bon de 10 € chez Maison Dupont " + "é" * 80
    out = Outgoing(
        send_id=7,
        merchant_id=1,
        channel="email",
        topic="lifecycle",
        to="c@example.com",
        sender="Maison Dupönt <shop@example.com>",
        subject=subject,
        html="<p>Bonjour Chloé</p>" + "x" * 3000,
        text="Bonjour Chloé\nligne 2",
        message_id="<m@h>",
        headers={"List-Unsubscribe": "<https://h/u/1>", "X-Evil": "a\r\nBcc: x@y.z"},
    )
    raw = out.mime(datetime(2026, 6, 1, tzinfo=UTC))
    assert b"\n" not in raw.replace(b"\r\n", b"") and max(map(len, raw.split(b"\r\n"))) <= 998
    msg = message_from_bytes(raw, policy=default)
    assert msg["Subject"] == subject and str(msg["From"]) == "Maison Dupönt <shop@example.com>"
    assert msg["Bcc"] is None and msg["X-Evil"] == "a Bcc: x@y.z"  # no header injection
    text = msg.get_body(("plain",)).get_content()
    assert text.replace("\r\n", "\n").rstrip("\n") == "Bonjour Chloé\nligne 2"
    assert msg.get_body(("html",)).get_content().startswith("<p>Bonjour Chloé</p>xxx")
