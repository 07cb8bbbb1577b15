from __future__ import annotations

import pytest

from fidele.tenancy import domain


def test_key_round_trip() -> None:
    prefix, key = domain.new_api_key()
    assert domain.split_key(key) == prefix
    assert domain.key_matches(key, domain.hash_key(key))
    assert not domain.key_matches(key + "x", domain.hash_key(key))


@pytest.mark.parametrize("bad", ["", "abc", "fdl_short_x", "xyz_123456789012_abc"])
def test_malformed_keys_have_no_prefix(bad: str) -> None:
    assert domain.split_key(bad) is None


def test_scope_implication() -> None:
    assert domain.grants(frozenset({"admin"}), "read")
    assert domain.grants(frozenset({"write"}), "read")
    assert not domain.grants(frozenset({"read"}), "write")
    assert domain.parse_scopes("write, read") == ["read", "write"]
    with pytest.raises(ValueError, match="scopes"):
        domain.parse_scopes("read,everything")


def test_webhook_secret_is_derived_and_stable() -> None:
    s1 = domain.webhook_secret("k", 1, "salt")
    assert s1 == domain.webhook_secret("k", 1, "salt")
    assert s1 != domain.webhook_secret("k", 2, "salt")
    assert s1 != domain.webhook_secret("other", 1, "salt")
