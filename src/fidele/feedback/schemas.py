from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from fidele.kit.schemas import ExternalId, InputModel, OutputModel, UtcDatetime

Slug = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="lowercase letters, digits, _")


class LocalText(InputModel):
    """A text in English and/or French (at least one)."""

    en: str | None = Field(None, min_length=1, max_length=500)
    fr: str | None = Field(None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _one(self) -> LocalText:
        if self.en is None and self.fr is None:
            raise ValueError("give the text in en, fr or both")
        return self

    def texts(self) -> dict[str, str]:
        return {k: v for k, v in (("en", self.en), ("fr", self.fr)) if v is not None}


class OptionIn(InputModel):
    value: str = Slug
    label: LocalText


class QuestionIn(InputModel):
    id: str = Slug
    type: Literal["choice", "scale", "text"]
    label: LocalText
    options: list[OptionIn] = Field(default_factory=list, max_length=20)
    min: int = Field(1, ge=0, le=10)
    max: int = Field(5, ge=1, le=10)
    required: bool = False

    def definition(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "label": self.label.texts(),
            "required": self.required,
        }
        if self.type == "choice":
            out["options"] = [{"value": o.value, "label": o.label.texts()} for o in self.options]
        if self.type == "scale":
            out["min"], out["max"] = self.min, self.max
        return out


class SurveyIn(InputModel):
    code: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="The survey's name in links and templates: {{ survey_link('nps') }}",
    )
    kind: Literal["nps", "csat", "form"]
    title: LocalText | None = None
    question: LocalText | None = Field(
        None, description="nps/csat: the score question's wording (a standard one otherwise)"
    )
    questions: list[QuestionIn] = Field(
        default_factory=list, max_length=20, description="form: its questions"
    )
    link_days: int = Field(30, ge=1, le=365, description="How long a link stays valid")


class SurveyOut(OutputModel):
    id: int
    code: str
    kind: str
    title: dict[str, str]
    questions: list[dict[str, Any]]
    link_days: int
    active: bool
    created_at: UtcDatetime


class LinkIn(InputModel):
    customer_id: ExternalId
    occasion: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00]+$",
        description="What the answer is about (an order, a complaint...): one answer each",
    )
    days: int | None = Field(None, ge=1, le=365, description="Validity (the survey's default)")


class ReviewLinkIn(InputModel):
    customer_id: ExternalId
    order_id: ExternalId
    days: int = Field(60, ge=1, le=365)


class LinkOut(OutputModel):
    url: str
    expires_at: UtcDatetime


class NpsOut(OutputModel):
    answers: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None


class CsatOut(OutputModel):
    answers: int
    average: float | None
    satisfied_percent: float | None
    distribution: dict[str, int]


class TrendPoint(OutputModel):
    month: str
    answers: int
    promoters: int | None = None
    passives: int | None = None
    detractors: int | None = None
    nps: float | None = None
    average: float | None = None
    satisfied_percent: float | None = None


class QuestionCount(OutputModel):
    id: str
    type: str
    answers: int
    counts: dict[str, int] | None = None
    average: float | None = None


class TextAnswer(OutputModel):
    customer_id: str
    question: str
    text: str
    score: int | None
    occasion: str
    answered_at: UtcDatetime


class ResultsOut(OutputModel):
    survey_id: int
    code: str
    kind: str
    segment_id: int | None
    answers: int
    nps: NpsOut | None
    csat: CsatOut | None
    trend: list[TrendPoint]
    questions: list[QuestionCount]
    texts: list[TextAnswer]


class ReviewOut(OutputModel):
    id: int
    customer_id: str
    order_id: str
    product_id: str
    product_name: str | None
    rating: int
    text: str | None
    locale: str
    posted_at: UtcDatetime
    updated_at: UtcDatetime
