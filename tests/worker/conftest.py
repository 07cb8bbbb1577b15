from __future__ import annotations

from collections.abc import Iterator

import pytest

from fidele.settings import get_settings


@pytest.fixture(autouse=True)
def _private_webhooks_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The receivers of these tests listen on loopback: the operator allows private webhook
    addresses, for this process (registration) and the workers it starts (delivery)."""
    monkeypatch.setenv("FIDELE_WEBHOOKS_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
