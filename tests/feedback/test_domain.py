"""NPS, CSAT and the reading of a submitted form, against hand counts."""

from __future__ import annotations

from datetime import UTC, datetime

from fidele.feedback import domain

# 20 answers: 0-6 detractors (7), 7-8 passives (5), 9-10 promoters (8)
NPS_SCORES = [10, 9, 9, 10, 8, 7, 6, 0, 3, 10, 9, 8, 5, 6, 7, 10, 2, 9, 8, 4]


def test_nps_against_a_hand_count() -> None:
    got = domain.nps(NPS_SCORES)
    # promoters: 10,9,9,10,10,9,10,9 = 8; passives: 8,7,8,7,8 = 5; detractors: 7
    assert (got["promoters"], got["passives"], got["detractors"]) == (8, 5, 7)
    assert got["answers"] == 20
    assert got["nps"] == 5.0  # (8 - 7) / 20 = 5 %
    assert domain.nps([])["nps"] is None
    assert domain.nps([6, 6, 9])["nps"] == -33.3


def test_csat_against_a_hand_count() -> None:
    got = domain.csat([5, 4, 4, 3, 1, 5, 2])
    assert got["average"] == 3.43  # 24 / 7
    assert got["satisfied_percent"] == 57.1  # 4 of 7 gave 4 or 5
    assert got["distribution"] == {"1": 1, "2": 1, "3": 1, "4": 2, "5": 2}
    assert domain.csat([])["average"] is None


def test_trend_by_month() -> None:
    rows = [
        (10, datetime(2026, 1, 31, 23, tzinfo=UTC)),
        (0, datetime(2026, 1, 2, tzinfo=UTC)),
        (9, datetime(2026, 2, 1, tzinfo=UTC)),
    ]
    got = domain.trend("nps", rows)
    assert [(p["month"], p["answers"], p["nps"]) for p in got] == [
        ("2026-01", 2, 0.0),
        ("2026-02", 1, 100.0),
    ]


def test_trend_by_month_in_the_merchants_zone() -> None:
    from zoneinfo import ZoneInfo

    rows = [
        (10, datetime(2026, 1, 31, 23, tzinfo=UTC)),  # 1 February 00:00 in Paris
        (0, datetime(2026, 1, 2, tzinfo=UTC)),
        (9, datetime(2026, 2, 1, tzinfo=UTC)),
    ]
    got = domain.trend("nps", rows, ZoneInfo("Europe/Paris"))
    assert [(p["month"], p["answers"], p["nps"]) for p in got] == [
        ("2026-01", 1, -100.0),
        ("2026-02", 2, 100.0),
    ]


def test_parse_answers_checks_each_question() -> None:
    questions = [
        *domain.standard_questions("nps", None),
        {
            "id": "channel",
            "type": "choice",
            "label": {"en": "How?"},
            "options": [{"value": "web", "label": {"en": "Web"}}],
        },
    ]
    ok = domain.parse_answers(questions, {"q_score": ["7"], "q_comment": [" slow "]}, "en")
    assert ok.errors == {}
    assert (ok.score(), ok.comment()) == (7, "slow")
    bad = domain.parse_answers(questions, {"q_score": ["11"], "q_channel": ["fax"]}, "fr")
    assert set(bad.errors) == {"score", "channel"}
    missing = domain.parse_answers(questions, {"q_comment": ["x"]}, "en")
    assert missing.errors == {"score": "Please answer this question."}


def test_detractor_comment() -> None:
    assert domain.detractor_comment("nps", 6, "late")
    assert not domain.detractor_comment("nps", 6, "  ")
    assert not domain.detractor_comment("nps", 7, "late")
    assert domain.detractor_comment("csat", 2, "broken")
    assert not domain.detractor_comment("form", 0, "x")
