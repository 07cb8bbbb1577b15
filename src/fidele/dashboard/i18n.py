"""French and English: the interface's words, and numbers, money and dates in the merchant's
locale (Babel's CLDR data: the same rules the shop's customers read)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

from fidele.kit.money import minor_units

LANGUAGES = ("en", "fr")
DEFAULT_LOCALE = {"en": "en_GB", "fr": "fr_FR"}

# English text -> French (fr.yaml). A text missing there shows in English.
FR: dict[str, str] = yaml.safe_load((Path(__file__).parent / "fr.yaml").read_text("utf-8"))


@dataclass(frozen=True)
class Formats:
    """One request's translation and formatting: the user's language, the merchant's
    locale, currency and timezone."""

    language: str
    locale: Locale
    currency: str
    timezone: ZoneInfo

    def t(self, text: str, **values: object) -> str:
        words = FR.get(text, text) if self.language == "fr" else text
        return words.format(**values) if values else words

    def number(self, value: float | int | None, digits: int = 0) -> str:
        if value is None:
            return "–"
        pattern = f"#,##0.{'0' * digits}" if digits else "#,##0"
        return format_decimal(value, format=pattern, locale=self.locale)

    def money(self, minor: float | int | None, currency: str | None = None) -> str:
        """Minor units (cents) of ``currency`` (the merchant's by default)."""
        if minor is None:
            return "–"
        code = currency or self.currency
        return format_currency(minor / 10 ** minor_units(code), code, locale=self.locale)

    def percent(self, ratio: float | None, digits: int = 1) -> str:
        if ratio is None:
            return "–"
        # the locale's own pattern ("#,##0 %" in French), with ``digits`` decimals
        pattern = self.locale.percent_formats[None].pattern.split(";")[0]
        head, zero, tail = pattern.rpartition("0")
        if digits and zero:
            pattern = f"{head}0.{'0' * digits}{tail}"
        return format_percent(ratio, format=pattern, locale=self.locale)

    def date(self, value: date | datetime | str | None) -> str:
        if value is None or value == "":
            return "–"
        if isinstance(value, str):
            value = date.fromisoformat(value[:10])
        if isinstance(value, datetime):
            value = value.astimezone(self.timezone).date()
        return format_date(value, format="medium", locale=self.locale)

    def month(self, value: date | str) -> str:
        day = date.fromisoformat(value[:10]) if isinstance(value, str) else value
        return format_date(day, format="MMM yyyy", locale=self.locale)

    def datetime(self, value: datetime | None) -> str:
        if value is None:
            return "–"
        return format_datetime(value.astimezone(self.timezone), format="short", locale=self.locale)


def pick_language(choice: str | None, accept_language: str | None) -> str:
    """The user's choice if any, else the first supported language of ``Accept-Language``
    (by quality), else English."""
    if choice in LANGUAGES:
        return choice
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, i, tag.split("-")[0].lower()))
    for _, _, lang in sorted(ranked):
        if lang in LANGUAGES:
            return lang
    return "en"


def formats(
    language: str, merchant_locale: str | None, currency: str, timezone: str | None
) -> Formats:
    """The merchant's locale when it set one (programme settings ``locale``), else the usual
    one of the interface's language."""
    try:
        locale = Locale.parse(merchant_locale or DEFAULT_LOCALE[language])
    except (ValueError, UnknownLocaleError):
        locale = Locale.parse(DEFAULT_LOCALE[language])
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ValueError, KeyError):
        zone = ZoneInfo("UTC")
    return Formats(language, locale, currency, zone)
