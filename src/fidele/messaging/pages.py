"""The unsubscribe and preference pages (French or English), small and without scripts."""

from __future__ import annotations

from html import escape

TEXT = {
    "en": {
        "title": "Your email preferences",
        "intro": "Choose the emails you want to receive.",
        "save": "Save",
        "leave": "Unsubscribe from everything",
        "saved": "Your preferences are saved.",
        "done": "You will no longer receive these emails: {topic}.",
        "manage": "Manage all your email preferences",
        "topics": {
            "newsletter": "Newsletter",
            "lifecycle": "Tips and news about your account",
            "winback": "Offers when we miss you",
            "survey": "Surveys and reviews",
        },
    },
    "fr": {
        "title": "Vos préférences d'e-mails",
        "intro": "Choisissez les e-mails que vous souhaitez recevoir.",
        "save": "Enregistrer",
        "leave": "Me désabonner de tout",
        "saved": "Vos préférences sont enregistrées.",
        "done": "Vous ne recevrez plus ces e-mails : {topic}.",
        "manage": "Gérer toutes vos préférences d'e-mails",
        "topics": {
            "newsletter": "Newsletter",
            "lifecycle": "Conseils et nouvelles de votre compte",
            "winback": "Offres quand vous nous manquez",
            "survey": "Enquêtes et avis",
        },
    },
}


def _t(lang: str | None) -> dict:  # type: ignore[type-arg]
    return TEXT["fr"] if (lang or "").lower().startswith("fr") else TEXT["en"]


def _page(lang: str | None, body: str) -> str:
    t = _t(lang)
    code = "fr" if t is TEXT["fr"] else "en"
    return (
        f'<!doctype html><html lang="{code}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(t['title'])}</title>"
        "<style>body{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}"
        "label{display:block;margin:.5rem 0}button{margin:.5rem .5rem 0 0}</style>"
        f"</head><body><h1>{escape(t['title'])}</h1>{body}</body></html>"
    )


def preferences(
    token: str, topics: dict[str, bool], lang: str | None, *, saved: bool = False
) -> str:
    t = _t(lang)
    rows = "".join(
        f'<label><input type="checkbox" name="topic" value="{escape(name)}"'
        f"{' checked' if on else ''}> {escape(t['topics'].get(name, name))}</label>"
        for name, on in topics.items()
    )
    note = f"<p><strong>{escape(t['saved'])}</strong></p>" if saved else ""
    action = f"/v1/messages/unsubscribe/{escape(token)}"
    return _page(
        lang,
        f"{note}<p>{escape(t['intro'])}</p>"
        f'<form method="post" action="{action}">{rows}'
        f'<button type="submit" name="save" value="1">{escape(t["save"])}</button>'
        f'<button type="submit" name="leave_all" value="1">{escape(t["leave"])}</button>'
        "</form>",
    )


def unsubscribed(token: str, topic: str, lang: str | None) -> str:
    t = _t(lang)
    label = t["topics"].get(topic, topic)
    link = f"/v1/messages/unsubscribe/{escape(token)}"
    return _page(
        lang,
        f"<p>{escape(t['done'].format(topic=label))}</p>"
        f'<p><a href="{link}">{escape(t["manage"])}</a></p>',
    )
