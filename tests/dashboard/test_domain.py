from __future__ import annotations

import pytest

from fidele.dashboard import domain, i18n


def test_a_session_cookie_round_trips_and_refuses_tampering_and_expiry() -> None:
    cookie = domain.encode_session("s1", 7, "fp", now=1000.0)
    found = domain.decode_session("s1", cookie, now=1001.0)
    assert found is not None and (found.user_id, found.fingerprint) == (7, "fp")
    assert len(found.csrf) >= 24
    assert domain.decode_session("other secret", cookie, now=1001.0) is None
    body, _, sig = cookie.partition(".")
    forged = domain.encode_session("s1", 8, "fp", now=1000.0).partition(".")[0]
    assert domain.decode_session("s1", f"{forged}.{sig}", now=1001.0) is None
    assert domain.decode_session("s1", cookie, now=1000.0 + domain.SESSION_SECONDS + 1) is None
    for junk in (None, "", "nodot", "a.b", "!!!.???"):
        assert domain.decode_session("s1", junk, now=1001.0) is None


def test_passwords_are_argon2_hashes_that_verify() -> None:
    stored = domain.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert domain.password_matches(stored, "correct horse battery")
    assert not domain.password_matches(stored, "wrong horse battery")
    assert not domain.password_matches("not a hash", "x")
    with pytest.raises(ValueError, match="at least"):
        domain.check_password("short")


def test_the_throttle_refuses_after_the_limit_until_the_window_slides() -> None:
    throttle = domain.LoginThrottle(limit=3, window=60)
    keys = ["email:a@b.co", "ip:1.2.3.4"]
    for t in range(3):
        assert throttle.retry_after(keys, now=100.0 + t) == 0
        throttle.failed(keys, now=100.0 + t)
    assert throttle.retry_after(keys, now=103.0) == 58
    assert throttle.retry_after(["ip:1.2.3.4"], now=103.0) > 0  # another email, same address
    assert throttle.retry_after(["email:x@y.co"], now=103.0) == 0
    assert throttle.retry_after(keys, now=161.0) == 0
    throttle.failed(keys, now=170.0)
    throttle.succeeded(keys)
    assert throttle.retry_after(keys, now=171.0) == 0


@pytest.mark.parametrize(
    ("choice", "header", "expected"),
    [
        (None, "fr-FR,fr;q=0.9,en;q=0.8", "fr"),
        (None, "de-DE,en;q=0.5,fr;q=0.7", "fr"),
        (None, "de-DE", "en"),
        (None, None, "en"),
        ("en", "fr-FR", "en"),
        ("xx", "fr", "fr"),
    ],
)
def test_the_language_is_the_choice_else_the_browser_s(
    choice: str | None, header: str | None, expected: str
) -> None:
    assert i18n.pick_language(choice, header) == expected


def test_money_numbers_and_dates_follow_the_locale() -> None:
    fr = i18n.formats("fr", None, "EUR", "Europe/Paris")
    en = i18n.formats("en", None, "EUR", None)
    assert fr.money(123456) == "1\u202f234,56\xa0€"
    assert en.money(123456) == "€1,234.56"
    assert i18n.formats("en", "ja_JP", "JPY", None).money(1500) == "￥1,500"
    assert fr.percent(0.125) == "12,5\xa0%"
    assert fr.t("Customers") == "Clients" and en.t("Customers") == "Customers"
    assert fr.date("2026-06-01") == "1 juin 2026"


def test_every_role_maps_to_api_scopes() -> None:
    assert set(domain.ROLES) == {"admin", "marketer", "read-only"}
    with pytest.raises(ValueError, match="role"):
        domain.check_role("owner")
