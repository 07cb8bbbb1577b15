"""Messaging's service: what other domains call (flows, broadcasts, feedback, segments).

Consent (``consent_granted``, ``set_consent``) lives in :mod:`fidele.messaging.consent` and is
re-exported here, as the contract between the branches names it."""

from __future__ import annotations

from fidele.messaging.consent import (
    complaint_open,
    consent_granted,
    consents_of,
    set_complaint_open,
    set_consent,
    withdraw_all,
)

__all__ = [
    "complaint_open",
    "consent_granted",
    "consents_of",
    "set_complaint_open",
    "set_consent",
    "withdraw_all",
]
