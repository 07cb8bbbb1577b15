"""Pure rules of surveys and reviews: the questions of each kind, reading a submitted form,
NPS and CSAT from answers. No I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from fidele.errors import InvalidInput

KINDS = ("nps", "csat", "form")
QUESTION_TYPES = ("choice", "scale", "text")
TEXT_MAX = 2000
# The survey events: the first answer of an occasion is ``survey_answered`` (the vocabulary's
# type: it counts in engagement, earns by the scale, starts journeys); a changed answer is
# ``survey.answer_updated`` (earns nothing, counts nothing). Both carry ``score``,
# ``nps_group``, ``comment`` and ``detractor_comment``: complaints opens one on either when
# ``detractor_comment`` is true (see :func:`is_detractor_comment`).
ANSWERED = "survey_answered"
ANSWER_UPDATED = "survey.answer_updated"
ANSWER_EVENTS = (ANSWERED, ANSWER_UPDATED)
REVIEW_POSTED = "review_posted"
WEBHOOK_REVIEW_POSTED = "review.posted"
WEBHOOK_SURVEY_ANSWERED = "survey.answered"

DEFAULT_TEXTS: dict[str, dict[str, dict[str, str]]] = {
    "nps": {
        "title": {"en": "Your opinion", "fr": "Votre avis"},
        "score": {
            "en": "How likely are you to recommend us to a friend?",
            "fr": "Quelle est la probabilité que vous nous recommandiez à un proche ?",
        },
        "comment": {"en": "Why this score?", "fr": "Pourquoi cette note ?"},
    },
    "csat": {
        "title": {"en": "Your satisfaction", "fr": "Votre satisfaction"},
        "score": {
            "en": "How satisfied are you with your experience?",
            "fr": "Êtes-vous satisfait de votre expérience ?",
        },
        "comment": {"en": "Tell us more", "fr": "Dites-nous en plus"},
    },
}
SCALES = {"nps": (0, 10), "csat": (1, 5)}


def standard_questions(kind: str, question: Mapping[str, str] | None) -> list[dict[str, Any]]:
    """The two questions of an nps or csat survey: the score (required) and the why."""
    texts = DEFAULT_TEXTS[kind]
    low, high = SCALES[kind]
    return [
        {
            "id": "score",
            "type": "scale",
            "label": dict(question or texts["score"]),
            "min": low,
            "max": high,
            "required": True,
        },
        {"id": "comment", "type": "text", "label": dict(texts["comment"]), "required": False},
    ]


def check_questions(questions: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a form whose question ids repeat or whose choices or scales are empty."""
    ids = [q["id"] for q in questions]
    for i, q in enumerate(questions):
        where = f"questions.{i}"
        if q["id"] in ids[:i]:
            raise InvalidInput(f"question id {q['id']!r} is used twice", field=f"{where}.id")
        if q["type"] == "choice" and not q.get("options"):
            raise InvalidInput("a choice question needs options", field=f"{where}.options")
        if q["type"] == "scale" and not q.get("min", 1) < q.get("max", 5):
            raise InvalidInput("a scale needs min < max", field=f"{where}.max")


def text_in(texts: Mapping[str, str], lang: str) -> str:
    """A FR/EN text in ``lang``, else the other language's."""
    return texts.get(lang) or texts.get("en") or texts.get("fr") or ""


@dataclass(frozen=True)
class Parsed:
    answers: dict[str, Any]
    errors: dict[str, str]  # question id -> what is wrong (shown next to it)

    def score(self) -> int | None:
        value = self.answers.get("score")
        return value if isinstance(value, int) else None

    def comment(self) -> str | None:
        value = self.answers.get("comment")
        return value if isinstance(value, str) else None


ERRORS = {
    "en": {"required": "Please answer this question.", "invalid": "This answer is not valid."},
    "fr": {"required": "Merci de répondre à cette question.", "invalid": "Réponse non valide."},
}


def parse_answers(
    questions: Sequence[Mapping[str, Any]], form: Mapping[str, Sequence[str]], lang: str
) -> Parsed:
    """The answers of a submitted form (field ``q_<id>`` per question), checked against the
    questions; unknown fields are ignored, a required question left empty is an error."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    words = ERRORS.get(lang, ERRORS["en"])
    for q in questions:
        raw = (form.get(f"q_{q['id']}") or [""])[0].strip()
        if not raw:
            if q.get("required"):
                errors[q["id"]] = words["required"]
            continue
        value = _value(q, raw)
        if value is None:
            errors[q["id"]] = words["invalid"]
        else:
            answers[q["id"]] = value
    return Parsed(answers, errors)


def _value(q: Mapping[str, Any], raw: str) -> Any:
    if q["type"] == "text":
        return raw[:TEXT_MAX]
    if q["type"] == "choice":
        return raw if raw in {o["value"] for o in q.get("options", ())} else None
    if not raw.lstrip("-").isdigit() or len(raw) > 3:
        return None
    n = int(raw)
    return n if q.get("min", 1) <= n <= q.get("max", 5) else None


# --- NPS and CSAT -------------------------------------------------------------------------


def nps_group(score: int) -> str:
    """promoter (9-10), passive (7-8) or detractor (0-6)."""
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def is_detractor_comment(payload: Mapping[str, Any]) -> bool:
    """Whether a survey event is a detractor who left a comment (complaints opens one)."""
    return bool(payload.get("detractor_comment"))


def detractor_comment(kind: str, score: int | None, comment: str | None) -> bool:
    """An NPS detractor (0-6) or a CSAT of 1-2 who wrote why."""
    if score is None or not (comment or "").strip():
        return False
    return nps_group(score) == "detractor" if kind == "nps" else kind == "csat" and score <= 2


def nps(scores: Iterable[int]) -> dict[str, Any]:
    """Promoters, passives, detractors and the NPS (% promoters - % detractors, one
    decimal; None without answers)."""
    groups = Counter(nps_group(s) for s in scores)
    total = sum(groups.values())
    value = None
    if total:
        value = round(100 * (groups["promoter"] - groups["detractor"]) / total, 1)
    return {
        "answers": total,
        "promoters": groups["promoter"],
        "passives": groups["passive"],
        "detractors": groups["detractor"],
        "nps": value,
    }


def csat(scores: Iterable[int]) -> dict[str, Any]:
    """The average (2 decimals), the share satisfied (4-5, one decimal, %) and the count of
    each score 1-5."""
    counts = Counter(scores)
    total = sum(counts.values())
    return {
        "answers": total,
        "average": round(sum(s * n for s, n in counts.items()) / total, 2) if total else None,
        "satisfied_percent": round(100 * (counts[4] + counts[5]) / total, 1) if total else None,
        "distribution": {str(s): counts[s] for s in range(1, 6)},
    }


def month_of(at: datetime, tz: tzinfo | None = None) -> str:
    """The calendar month (``"2026-06"``) of a moment in ``tz`` (the merchant's zone; UTC
    when None). A naive moment (as some databases return it) is UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    local = at.astimezone(tz or UTC)
    return f"{local.year:04d}-{local.month:02d}"


def trend(
    kind: str, rows: Iterable[tuple[int, datetime]], tz: tzinfo | None = None
) -> list[dict[str, Any]]:
    """The score by calendar month of the answer in ``tz`` (the merchant's zone; UTC when
    None), oldest first."""
    months: dict[str, list[int]] = {}
    for score, at in rows:
        months.setdefault(month_of(at, tz), []).append(score)
    summarise = nps if kind == "nps" else csat
    out = []
    for month in sorted(months):
        part = summarise(months[month])
        part.pop("distribution", None)
        out.append({"month": month, **part})
    return out


def question_counts(
    questions: Sequence[Mapping[str, Any]], answers: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """For each choice or scale question: how many answered it and the count of each value
    (scales also their average); text questions: how many answered."""
    rows = list(answers)
    out = []
    for q in questions:
        given = [a[q["id"]] for a in rows if q["id"] in a]
        item: dict[str, Any] = {"id": q["id"], "type": q["type"], "answers": len(given)}
        if q["type"] == "choice":
            counted = Counter(given)
            item["counts"] = {o["value"]: counted[o["value"]] for o in q.get("options", ())}
        elif q["type"] == "scale":
            counted = Counter(given)
            item["counts"] = {str(v): counted[v] for v in range(q["min"], q["max"] + 1)}
            item["average"] = round(sum(given) / len(given), 2) if given else None
        out.append(item)
    return out


def review_rating(raw: str) -> int | None:
    """A 1-5 rating from a form field, None if empty or anything else."""
    raw = raw.strip()
    return int(raw) if raw in {"1", "2", "3", "4", "5"} else None
