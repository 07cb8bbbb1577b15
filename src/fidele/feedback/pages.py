"""The pages a customer opens from a survey or review link: French or English, a few
kilobytes, no script (a plain form POSTed to the same address), no login."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from fidele.feedback import domain

TEXT = {
    "en": {
        "send": "Send",
        "thanks": "Thank you! Your answer is saved. You may change it with this same link.",
        "review_title": "Your review",
        "review_intro": "Rate the products of your order {order} and tell other customers "
        "what you think.",
        "review_thanks": "Thank you for your review! You may edit it with this same link.",
        "reviewed": "already reviewed",
        "reviewed_heading": "Already reviewed",
        "edit": "change it",
        "all_reviewed": "You have reviewed every product of your order {order}: thank you! "
        "You may still change a review below.",
        "rating": "Rating",
        "your_text": "Your review (optional)",
        "errors": "Please check the answers marked below.",
        "refused_title": "This link cannot be used",
        "invalid": "This link is not valid. Please use the link from your email as it is.",
        "expired": "This link has expired. Thank you for your interest all the same.",
        "no_products": "This order has no product to review.",
    },
    "fr": {
        "send": "Envoyer",
        "thanks": "Merci ! Votre réponse est enregistrée. Vous pouvez la modifier avec ce "
        "même lien.",
        "review_title": "Votre avis",
        "review_intro": "Notez les produits de votre commande {order} et dites aux autres "
        "clients ce que vous en pensez.",
        "review_thanks": "Merci pour votre avis ! Vous pouvez le modifier avec ce même lien.",
        "reviewed": "déjà noté",
        "reviewed_heading": "Déjà notés",
        "edit": "le modifier",
        "all_reviewed": "Vous avez noté tous les produits de votre commande {order} : merci ! "
        "Vous pouvez encore modifier un avis ci-dessous.",
        "rating": "Note",
        "your_text": "Votre avis (facultatif)",
        "errors": "Merci de vérifier les réponses signalées ci-dessous.",
        "refused_title": "Ce lien ne peut pas être utilisé",
        "invalid": "Ce lien n'est pas valide. Utilisez le lien de votre e-mail tel quel.",
        "expired": "Ce lien a expiré. Merci tout de même de votre intérêt.",
        "no_products": "Cette commande n'a aucun produit à noter.",
    },
}
STYLE = (
    "body{font-family:sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "fieldset{border:0;padding:0;margin:1rem 0}legend{font-weight:bold;margin-bottom:.4rem}"
    ".scale label{display:inline-block;margin:0 .3rem .3rem 0;padding:.3rem .5rem;"
    "border:1px solid #bbb;border-radius:4px}"
    ".choice label{display:block;margin:.2rem 0}textarea{width:100%;min-height:5rem}"
    ".err{color:#b00020}.ok{color:#1b5e20}button{padding:.5rem 1.2rem;font-size:1rem}"
)


def lang_of(requested: str | None, customer_locale: str | None, accept: str) -> str:
    """``fr`` or ``en``: the ``?lang=`` asked, else the customer's locale, else the
    browser's first language."""
    for candidate in (requested, customer_locale, accept):
        if candidate:
            return "fr" if candidate.lower().startswith("fr") else "en"
    return "en"


def page(lang: str, title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def refused(reason: str, lang: str) -> str:
    t = TEXT[lang]
    return page(lang, t["refused_title"], f"<p>{escape(t.get(reason, t['invalid']))}</p>")


def survey(
    *,
    action: str,
    title: Mapping[str, str],
    questions: Sequence[Mapping[str, Any]],
    values: Mapping[str, Any],
    lang: str,
    errors: Mapping[str, str] | None = None,
    saved: bool = False,
) -> str:
    """The survey's form, filled with ``values`` (the saved answer or what was posted)."""
    t = TEXT[lang]
    parts = []
    if saved:
        parts.append(f'<p class="ok" role="status">{escape(t["thanks"])}</p>')
    if errors:
        parts.append(f'<p class="err" role="alert">{escape(t["errors"])}</p>')
    fields = "".join(_question(q, values.get(q["id"]), lang, (errors or {})) for q in questions)
    parts.append(
        f'<form method="post" action="{escape(action)}">{fields}'
        f'<button type="submit">{escape(t["send"])}</button></form>'
    )
    return page(lang, domain.text_in(title, lang), "".join(parts))


def _question(q: Mapping[str, Any], value: Any, lang: str, errors: Mapping[str, str]) -> str:
    name = f"q_{q['id']}"
    label = escape(domain.text_in(q["label"], lang))
    error = errors.get(q["id"])
    note = f'<p class="err">{escape(error)}</p>' if error else ""
    if q["type"] == "text":
        text = escape(str(value or ""))
        return (
            f'<p><label for="{name}"><strong>{label}</strong></label></p>{note}'
            f'<textarea id="{name}" name="{name}" maxlength="{domain.TEXT_MAX}">{text}</textarea>'
        )
    if q["type"] == "choice":
        options = [(o["value"], domain.text_in(o["label"], lang)) for o in q.get("options", ())]
        css = "choice"
    else:
        options = [(str(n), str(n)) for n in range(q["min"], q["max"] + 1)]
        css = "scale"
    radios = "".join(
        f'<label><input type="radio" name="{name}" value="{escape(v)}"'
        f"{' checked' if str(value) == v else ''}{' required' if q.get('required') else ''}>"
        f" {escape(text)}</label>"
        for v, text in options
    )
    return f'<fieldset class="{css}"><legend>{label}</legend>{note}{radios}</fieldset>'


def reviews(
    *,
    action: str,
    order: str,
    products: Sequence[tuple[str, str | None]],
    existing: Mapping[str, Any],
    lang: str,
    saved: bool = False,
) -> str:
    """The products of the order still to review, a 1-5 rating and a text each; those
    already reviewed are not asked again: they follow, shown as done with the saved rating,
    their form folded (``<details>``, no script) for an edit. The field names keep the
    product's place in the order (``rating_<n>``)."""
    t = TEXT[lang]
    todo = [(n, p) for n, p in enumerate(products) if p[0] not in existing]
    done = [(n, p) for n, p in enumerate(products) if p[0] in existing]
    intro = t["review_intro"] if todo or not products else t["all_reviewed"]
    parts = [f"<p>{escape(intro.format(order=order))}</p>"]
    if saved:
        parts.insert(0, f'<p class="ok" role="status">{escape(t["review_thanks"])}</p>')
    if not products:
        parts.append(f"<p>{escape(t['no_products'])}</p>")
        return page(lang, t["review_title"], "".join(parts))
    blocks = [_review_block(n, pid, name, None, lang) for n, (pid, name) in todo]
    if done:
        blocks.append(f"<h2>{escape(t['reviewed_heading'])}</h2>")
    for n, (pid, name) in done:
        row = existing[pid]
        blocks.append(
            f"<details><summary>{escape(name or pid)}: {row.rating}/5 "
            f"<small>({escape(t['reviewed'])}, {escape(t['edit'])})</small></summary>"
            f"{_review_block(n, pid, name, row, lang)}</details>"
        )
    parts.append(
        f'<form method="post" action="{escape(action)}">{"".join(blocks)}'
        f'<button type="submit">{escape(t["send"])}</button></form>'
    )
    return page(lang, t["review_title"], "".join(parts))


def _review_block(n: int, product_id: str, name: str | None, row: Any, lang: str) -> str:
    t = TEXT[lang]
    rating = row.rating if row is not None else None
    radios = "".join(
        f'<label><input type="radio" name="rating_{n}" value="{v}"'
        f"{' checked' if rating == v else ''}> {v}</label>"
        for v in range(1, 6)
    )
    text = escape(row.text or "") if row is not None else ""
    return (
        f'<fieldset class="scale"><legend>{escape(name or product_id)}</legend>'
        f"<p>{escape(t['rating'])}:</p>{radios}"
        f'<p><label for="text_{n}">{escape(t["your_text"])}</label></p>'
        f'<textarea id="text_{n}" name="text_{n}" maxlength="{domain.TEXT_MAX}">{text}'
        "</textarea></fieldset>"
    )
