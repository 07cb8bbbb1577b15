from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fidele.storefront import domain
from tests.storefront.conftest import sign

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EXP = int((NOW + timedelta(minutes=10)).timestamp())


def test_a_token_signed_as_documented_verifies() -> None:
    token = sign("sfsec_abc", 3, "c-1", EXP)
    assert domain.verify(token, "sfsec_abc", NOW) == domain.Claims(3, "c-1", EXP)
    # any JSON spelling verifies: the MAC is over the first part as sent
    assert (
        domain.verify(domain.sign("sfsec_abc", 3, "c-1", EXP), "sfsec_abc", NOW).customer == "c-1"
    )


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (sign("another", 3, "c-1", EXP), "signature"),
        (sign("sfsec_abc", 3, "c-1", int(NOW.timestamp())), "expired"),
        ("garbage", "not a storefront token"),
        ("eyJtIjogMX0.abc", "not a storefront token"),
        ("", "not a storefront token"),
    ],
)
def test_bad_tokens_are_refused_saying_why(token: str, why: str) -> None:
    with pytest.raises(domain.BadToken, match=why):
        domain.verify(token, "sfsec_abc", NOW)


def test_a_token_whose_claims_were_changed_does_not_verify() -> None:
    good = sign("sfsec_abc", 3, "c-1", EXP)
    other = sign("sfsec_abc", 3, "c-2", EXP)
    forged = other.split(".")[0] + "." + good.split(".")[1]
    with pytest.raises(domain.BadToken, match="signature"):
        domain.verify(forged, "sfsec_abc", NOW)


def test_secrets_are_derived_per_merchant_and_salt() -> None:
    a = domain.derive_secret("server", 1, "salt")
    assert a.startswith(domain.SECRET_PREFIX)
    assert a == domain.derive_secret("server", 1, "salt")
    assert a != domain.derive_secret("server", 2, "salt")
    assert a != domain.derive_secret("server", 1, "other")


@pytest.mark.parametrize(
    ("raw", "origin"),
    [
        ("https://Shop.Example/", "https://shop.example"),
        ("https://shop.example:443", "https://shop.example"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_origins_are_normalised(raw: str, origin: str) -> None:
    assert domain.normalise_origin(raw) == origin


@pytest.mark.parametrize(
    "raw", ["shop.example", "ftp://shop.example", "https://shop.example/x", "https://"]
)
def test_what_is_not_an_origin_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        domain.normalise_origin(raw)


def test_affordable_rewards_come_first_then_by_points_to_go() -> None:
    rows = [
        {"id": 1, "points_cost": 1500},
        {"id": 2, "points_cost": 250},
        {"id": 3, "points_cost": 800},
        {"id": 4, "points_cost": 600},
    ]
    out = domain.order_rewards(rows, 700)
    assert [r["id"] for r in out] == [2, 4, 3, 1]
    assert [r["points_to_go"] for r in out] == [0, 0, 100, 800]
    assert [r["affordable"] for r in out] == [True, True, False, False]


def test_tier_progress_in_plain_words() -> None:
    tier = {"name": "Bronze", "next": {"name": "Silver", "metric": "points", "threshold": 500,
                                       "progress": 120, "remaining": 380}}  # fmt: skip
    assert domain.tier_words(tier, "en") == "380 points to reach Silver"
    assert domain.tier_words(tier, "fr-CA") == "380 points pour atteindre Silver"
    assert domain.tier_percent(tier) == 24
    top = {"name": "Gold", "next": None}
    assert domain.tier_words(top, "en") == "You are at the top tier, Gold"
    assert domain.tier_percent(top) == 100
