"""Messaging tables."""

from fidele.messaging.measure_models import *  # noqa: F403  (measurement tables)
