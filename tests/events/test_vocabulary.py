"""One vocabulary of event types: what the API records is what the scales name."""

from __future__ import annotations

import pytest

from fidele.events.domain import ACTION_TYPES, EVENT_TYPES, event_type_problem


@pytest.mark.parametrize("name", EVENT_TYPES)
def test_every_known_type_is_accepted(name):
    assert event_type_problem(name) is None


@pytest.mark.parametrize(
    ("name", "known"),
    [
        ("newsletter.subscribed", "newsletter_subscribed"),
        ("review.posted", "review_posted"),
        ("social.shared", "social_share"),
        ("order_placed", "order.placed"),
        ("survey-answered", "survey_answered"),
    ],
)
def test_look_alikes_name_the_recorded_type(name, known):
    assert f"the API records {known!r}" in event_type_problem(name)


@pytest.mark.parametrize("name", ["quiz_completed", "store.visit", "app:opened"])
def test_custom_types_stay_free(name):
    assert event_type_problem(name) is None


@pytest.mark.parametrize("name", ["Bad Name", "", "x" * 101, "9lives"])
def test_malformed_names_are_refused(name):
    assert event_type_problem(name) is not None


def test_the_default_scales_use_the_vocabulary():
    from fidele.analytics.engagement import DEFAULT_SCALE
    from fidele.loyalty.config import default_scale

    assert set(DEFAULT_SCALE) <= set(EVENT_TYPES)
    actions = [r.event_type for r in default_scale().rules if r.type == "action"]
    assert actions and set(actions) <= set(ACTION_TYPES)
