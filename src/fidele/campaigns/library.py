"""The ready-made journeys: each a flow definition and its messages in English and French,
installed off (a draft) until the merchant activates it. Templates are Jinja2 sources with the
messaging context (``customer``, ``loyalty``, ``shop``, ``links``), what the flow adds
(``coupon_code``, ``coupon_value``, ``coupon_kind``, ``coupon_ends_at``, ``points``) and the
feedback links (``survey_link('csat')``, ``review_link()``: ``fidele.feedback.templating``)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import fidele.feedback.templating  # noqa: F401  (registers survey_link and review_link)

HELLO_EN = "Hello {{ customer.first_name or '' }},"
HELLO_FR = "Bonjour {{ customer.first_name or '' }},"
SIGN_EN = "The {{ shop.name }} team"
SIGN_FR = "L'équipe {{ shop.name }}"
COUPON_EN = (
    "{% if points and not coupon_code %}{{ points }} bonus points are waiting in your account."
    "{% else %}Your code: {{ coupon_code }} "
    "({% if coupon_kind == 'percent_off' %}{{ (coupon_value or 0) // 100 }}% off"
    "{% elif coupon_kind == 'amount_off' %}{{ (coupon_value or 0) / 100 }} off"
    "{% else %}free shipping{% endif %}).{% endif %}"
)
COUPON_FR = (
    "{% if points and not coupon_code %}{{ points }} points bonus vous attendent sur votre "
    "compte.{% else %}Votre code : {{ coupon_code }} "
    "({% if coupon_kind == 'percent_off' %}{{ (coupon_value or 0) // 100 }} % de remise"
    "{% elif coupon_kind == 'amount_off' %}{{ (coupon_value or 0) / 100 }} de remise"
    "{% else %}livraison offerte{% endif %}).{% endif %}"
)


@dataclass(frozen=True)
class Message:
    subject_en: str
    body_en: str
    subject_fr: str
    body_fr: str

    def variants(self) -> dict[str, dict[str, str]]:
        return {
            "en": _variant(self.subject_en, HELLO_EN, self.body_en, SIGN_EN),
            "fr": _variant(self.subject_fr, HELLO_FR, self.body_fr, SIGN_FR),
        }


def _variant(subject: str, hello: str, body: str, sign: str) -> dict[str, str]:
    paragraphs = [hello, *body.strip().split("\n\n"), sign]
    text = "\n\n".join(paragraphs)
    # the texts are ours (no user input): escaping keeps & and < right in HTML while leaving
    # Jinja's {{ }} and {% %} intact
    page = "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    return {"subject": subject, "text": text, "html": page}


@dataclass(frozen=True)
class Journey:
    name: str
    title: str
    definition: dict[str, Any]
    messages: dict[str, Message] = field(default_factory=dict)
    topic: str = "lifecycle"


def _send(template: str) -> dict[str, Any]:
    return {"id": template.removeprefix("flow_"), "send": {"template": template}}


JOURNEYS: list[Journey] = [
    Journey(
        "welcome",
        "Welcome on account creation or newsletter signup",
        {
            "name": "welcome",
            "description": "A welcome message when a customer account is created or someone "
            "signs up to the newsletter.",
            "trigger": {"event": ["customer.created", "newsletter_subscribed"]},
            "reentry": "never",
            "steps": [{"wait": {"minutes": 10}}, _send("flow_welcome")],
        },
        {
            "flow_welcome": Message(
                "Welcome to {{ shop.name }}",
                "Thank you for joining us. You will hear from us at the moments that matter: "
                "your orders, your rewards, and now and then a word from the shop.\n\n"
                "You can choose what you receive at any time: {{ links.preferences }}",
                "Bienvenue chez {{ shop.name }}",
                "Merci de nous avoir rejoints. Vous aurez de nos nouvelles aux moments "
                "importants : vos commandes, vos avantages, et de temps en temps un mot de la "
                "boutique.\n\nVous choisissez ce que vous recevez : {{ links.preferences }}",
            )
        },
    ),
    Journey(
        "first_order_thanks",
        "Thank you after the first order",
        {
            "name": "first_order_thanks",
            "description": "A thank-you an hour after a customer's first order.",
            "trigger": {"event": "order.placed", "first_order": True},
            "reentry": "never",
            "steps": [{"wait": {"hours": 1}}, _send("flow_first_order_thanks")],
        },
        {
            "flow_first_order_thanks": Message(
                "Thank you for your first order",
                "Thank you for your first order with {{ shop.name }}! We are preparing it with "
                "care and will let you know as soon as it ships.",
                "Merci pour votre première commande",
                "Merci pour votre première commande chez {{ shop.name }} ! Nous la préparons "
                "avec soin et vous prévenons dès son expédition.",
            )
        },
    ),
    Journey(
        "satisfaction_survey",
        "Satisfaction survey 30 days after the first order",
        {
            "name": "satisfaction_survey",
            "description": "How was it? A satisfaction survey (the built-in csat, by signed "
            "link) 30 days after the first order.",
            "trigger": {"event": "order.placed", "first_order": True},
            "reentry": "never",
            "steps": [
                {"wait": {"days": 30, "until": "10:00"}},
                _send("flow_satisfaction_survey"),
            ],
        },
        {
            "flow_satisfaction_survey": Message(
                "How was your first order?",
                "A month ago you placed your first order with us. How did it go? Two clicks "
                "are enough to tell us: {{ survey_link('csat') }}\n\nEvery answer is read by "
                "the team, and it helps us do better.",
                "Comment s'est passée votre première commande ?",
                "Il y a un mois, vous passiez votre première commande chez nous. Comment "
                "s'est-elle passée ? Deux clics suffisent pour nous le dire : "
                "{{ survey_link('csat') }}\n\nChaque réponse est lue par l'équipe et nous "
                "aide à progresser.",
            )
        },
    ),
    Journey(
        "review_request",
        "Review request 7 days after delivery",
        {
            "name": "review_request",
            "description": "Asks for a review 7 days after a delivery, unless the customer "
            "already reviewed that order.",
            "trigger": {"event": "order.delivered"},
            "reentry": {"days": 30},
            "steps": [
                {"wait": {"days": 7, "until": "18:00"}},
                {"id": "reviewed", "condition": {"order": "reviewed"}, "yes": "exit"},
                _send("flow_review_request"),
            ],
        },
        {
            "flow_review_request": Message(
                "What do you think of your order?",
                "Your order arrived a week ago. Would you tell other customers what you think? "
                "A short review helps them choose, and helps us improve: "
                "{{ review_link() }}",
                "Que pensez-vous de votre commande ?",
                "Votre commande est arrivée il y a une semaine. Voulez-vous dire aux autres "
                "clients ce que vous en pensez ? Un avis court les aide à choisir, et nous à "
                "progresser : {{ review_link() }}",
            )
        },
    ),
    Journey(
        "complaint_follow_up",
        "Satisfaction survey 3 days after a complaint is resolved",
        {
            "name": "complaint_follow_up",
            "description": "Service recovery: 3 days after a complaint is resolved, asks the "
            "customer how satisfied they are with the resolution (the built-in csat, by signed "
            "link, one answer per complaint).",
            "trigger": {"event": "complaint.resolved"},
            "reentry": "always",
            "steps": [
                {"wait": {"days": 3, "until": "10:00"}},
                _send("flow_complaint_follow_up"),
            ],
        },
        {
            "flow_complaint_follow_up": Message(
                "How did we handle your request?",
                "A few days ago we closed the request you made to our team. Are you satisfied "
                "with how it was resolved? Two clicks are enough to tell us: "
                "{{ survey_link('csat') }}\n\nYour answer goes straight to the team who "
                "handled it.",
                "Comment avons-nous traité votre demande ?",
                "Il y a quelques jours, nous avons clôturé la demande que vous aviez faite à "
                "notre équipe. Êtes-vous satisfait de la solution apportée ? Deux clics "
                "suffisent pour nous le dire : {{ survey_link('csat') }}\n\nVotre réponse "
                "va directement à l'équipe qui s'en est occupée.",
            )
        },
    ),
    Journey(
        "birthday",
        "Birthday wishes with a reward",
        {
            "name": "birthday",
            "description": "On the customer's birthday at 9:00 their time: wishes and a 10% "
            "coupon valid 30 days (or change the reward to points).",
            "trigger": {"date": "birthday", "at": "09:00"},
            "reentry": {"days": 300},
            "steps": [
                {"id": "gift", "reward": {"coupon": {"kind": "percent_off", "value": 1000}}},
                _send("flow_birthday"),
            ],
        },
        {
            "flow_birthday": Message(
                "Happy birthday from {{ shop.name }}!",
                "Happy birthday! To celebrate, here is a gift valid for 30 days.\n\n" + COUPON_EN,
                "Joyeux anniversaire de la part de {{ shop.name }} !",
                "Joyeux anniversaire ! Pour fêter ça, voici un cadeau valable 30 jours.\n\n"
                + COUPON_FR,
            )
        },
    ),
    Journey(
        "first_order_anniversary",
        "First-order anniversary",
        {
            "name": "first_order_anniversary",
            "description": "Each year on the day of the customer's first order.",
            "trigger": {"date": "first_order_anniversary", "at": "10:00"},
            "reentry": {"days": 300},
            "steps": [_send("flow_first_order_anniversary")],
        },
        {
            "flow_first_order_anniversary": Message(
                "One more year together",
                "On this day you placed your first order with {{ shop.name }}. Thank you for "
                "your trust ever since!",
                "Une année de plus ensemble",
                "C'est à cette date que vous avez passé votre première commande chez "
                "{{ shop.name }}. Merci pour votre confiance depuis !",
            )
        },
    ),
    Journey(
        "year_end",
        "Year-end wishes",
        {
            "name": "year_end",
            "description": "Wishes on 31 December at 10:00 in each customer's timezone.",
            "trigger": {"date": "12-31", "at": "10:00"},
            "reentry": {"days": 300},
            "steps": [_send("flow_year_end")],
        },
        {
            "flow_year_end": Message(
                "Happy new year from {{ shop.name }}",
                "Thank you for this year with us. We wish you a happy new year, and look "
                "forward to seeing you again.",
                "Bonne année de la part de {{ shop.name }}",
                "Merci pour cette année passée avec nous. Nous vous souhaitons une excellente "
                "nouvelle année, et avons hâte de vous revoir.",
            )
        },
    ),
    Journey(
        "abandoned_cart",
        "Abandoned cart: 3 messages over 1 h, 24 h and 72 h, ends on order",
        {
            "name": "abandoned_cart",
            "description": "Reminders 1 h, 24 h and 72 h after a cart.abandoned event (the "
            "last one with a 10% coupon); an order ends it at once.",
            "trigger": {"event": "cart.abandoned"},
            "goals": ["order.placed"],
            "reentry": {"days": 7},
            "steps": [
                {"wait": {"hours": 1}},
                _send("flow_cart_1"),
                {"wait": {"hours": 23}},
                _send("flow_cart_2"),
                {"wait": {"hours": 48}},
                {
                    "id": "coupon",
                    "reward": {"coupon": {"kind": "percent_off", "value": 1000, "days": 7}},
                },
                _send("flow_cart_3"),
            ],
        },
        {
            "flow_cart_1": Message(
                "You left something in your cart",
                "You left a few items in your cart. They are still waiting for you.",
                "Vous avez oublié quelque chose",
                "Quelques articles vous attendent encore dans votre panier.",
            ),
            "flow_cart_2": Message(
                "Your cart is still here",
                "Your cart is saved, but stock moves fast. Any question? Just reply.",
                "Votre panier vous attend toujours",
                "Votre panier est gardé, mais le stock part vite. Une question ? Répondez-nous.",
            ),
            "flow_cart_3": Message(
                "A little help to finish your order",
                "To help you decide, here is a coupon valid 7 days.\n\n" + COUPON_EN,
                "Un coup de pouce pour finaliser votre commande",
                "Pour vous aider à vous décider, voici un code valable 7 jours.\n\n" + COUPON_FR,
            ),
        },
    ),
    Journey(
        "points_expiring",
        "Points about to expire",
        {
            "name": "points_expiring",
            "description": "Tells the customer their points expire soon.",
            "trigger": {"event": "loyalty.points_expiring"},
            "reentry": "always",
            "steps": [{"wait": {"minutes": 0, "until": "10:00"}}, _send("flow_points_expiring")],
        },
        {
            "flow_points_expiring": Message(
                "Your points expire soon",
                "{{ loyalty.expiring_points }} of your points expire on "
                "{{ loyalty.expiring_on }}. Use them on your next order!",
                "Vos points expirent bientôt",
                "{{ loyalty.expiring_points }} de vos points expirent le "
                "{{ loyalty.expiring_on }}. Profitez-en lors de votre prochaine commande !",
            )
        },
    ),
    Journey(
        "tier_reached",
        "Tier reached",
        {
            "name": "tier_reached",
            "description": "Congratulates a customer who reached a new loyalty tier.",
            "trigger": {"event": "loyalty.tier_changed", "where": {"reason": "qualified"}},
            "reentry": "always",
            "steps": [_send("flow_tier_reached")],
        },
        {
            "flow_tier_reached": Message(
                "Welcome to {{ loyalty.tier }}",
                "Congratulations, you reached the {{ loyalty.tier }} tier! Your new advantages "
                "apply from your next order.",
                "Bienvenue au niveau {{ loyalty.tier }}",
                "Félicitations, vous avez atteint le niveau {{ loyalty.tier }} ! Vos nouveaux "
                "avantages s'appliquent dès votre prochaine commande.",
            )
        },
    ),
    Journey(
        "next_order_reminder",
        "Next-order coupon reminder before its value drops",
        {
            "name": "next_order_reminder",
            "description": "Two days before the next-order coupon of a delivered order loses "
            "value, reminds the customer; an order ends it.",
            "trigger": {"event": "order.delivered"},
            "goals": ["order.placed"],
            "reentry": "always",
            "steps": [
                {"id": "coupon", "reward": {"next_order_coupon": {}}},
                {"wait": {"before_coupon_drop": {"days": 2}}},
                _send("flow_next_order_reminder"),
            ],
        },
        {
            "flow_next_order_reminder": Message(
                "Your coupon loses value in 2 days",
                "Your next-order coupon is worth the most until "
                "{{ coupon_drops_at or coupon_ends_at }}.\n\n" + COUPON_EN,
                "Votre code perd de sa valeur dans 2 jours",
                "Votre code pour la prochaine commande vaut le plus jusqu'au "
                "{{ coupon_drops_at or coupon_ends_at }}.\n\n" + COUPON_FR,
            )
        },
    ),
    Journey(
        "win_back",
        "Win-back in five steps, timed on each customer's own rhythm",
        {
            "name": "win_back",
            "description": "When a customer is overdue on their own cadence (their expected "
            "gap between orders, the shop's median for one-time buyers): hello, an incentive, "
            "a feedback request, last chance, goodbye; marketing consent is then withdrawn "
            "(the goodbye tells how to come back). An order ends it at once.",
            "trigger": {"prediction": {"overdue_ratio": 1.0, "at_most": 3.0}},
            "goals": ["order.placed"],
            "reentry": "always",
            "steps": [
                _send("flow_winback_1"),
                {"wait": {"gap": 0.25, "until": "10:00"}},
                {
                    "id": "incentive",
                    "reward": {"coupon": {"kind": "percent_off", "value": 1500, "days": 30}},
                },
                _send("flow_winback_2"),
                {"wait": {"gap": 0.25, "until": "10:00"}},
                _send("flow_winback_3"),
                {"wait": {"gap": 0.25, "until": "10:00"}},
                _send("flow_winback_4"),
                {"wait": {"days": 7, "until": "10:00"}},
                _send("flow_winback_5"),
                {
                    "id": "stop_newsletter",
                    "update": {
                        "consent": {"topic": "newsletter", "channel": "email", "granted": False}
                    },
                },
                {
                    "id": "stop_lifecycle",
                    "update": {
                        "consent": {"topic": "lifecycle", "channel": "email", "granted": False}
                    },
                },
            ],
        },
        {
            "flow_winback_1": Message(
                "We have not seen you in a while",
                "It has been a while since your last visit. You first came to {{ shop.name }} "
                "for the care we put into every order, and that has not changed. Here is what "
                "is new in the shop.",
                "Cela fait longtemps !",
                "Cela fait un moment que nous ne vous avons pas vu. Vous étiez venu chez "
                "{{ shop.name }} pour le soin apporté à chaque commande, et cela n'a pas "
                "changé. Voici les nouveautés de la boutique.",
            ),
            "flow_winback_2": Message(
                "A gift to welcome you back",
                "We would love to see you again: here is a gift valid 30 days.\n\n" + COUPON_EN,
                "Un cadeau pour votre retour",
                "Nous serions ravis de vous revoir : voici un cadeau valable 30 jours.\n\n"
                + COUPON_FR,
            ),
            "flow_winback_3": Message(
                "Can we do better?",
                "Did something disappoint you? Tell us in a minute: "
                "{{ survey_link('nps') }}\n\nWe read every answer and will do our best to put "
                "it right.",
                "Pouvons-nous faire mieux ?",
                "Quelque chose vous a déçu ? Dites-le-nous en une minute : "
                "{{ survey_link('nps') }}\n\nNous lisons chaque réponse et ferons de notre "
                "mieux pour y remédier.",
            ),
            "flow_winback_4": Message(
                "Should we stop writing to you?",
                "We do not want to fill your inbox. Unless you come back or tell us otherwise, "
                "we will stop writing to you in a week.",
                "Faut-il arrêter de vous écrire ?",
                "Nous ne voulons pas encombrer votre boîte. Sauf si vous revenez ou nous dites "
                "le contraire, nous cesserons de vous écrire dans une semaine.",
            ),
            "flow_winback_5": Message(
                "Goodbye, and thank you",
                "As promised, this is our last email: we have stopped our newsletters and "
                "offers to you. If you ever want them back, one click is enough: "
                "{{ links.preferences }}\n\nThank you for the time you spent with us.",
                "Au revoir, et merci",
                "Comme promis, ceci est notre dernier e-mail : nous avons arrêté nos lettres "
                "et offres. Si vous souhaitez les recevoir à nouveau, un clic suffit : "
                "{{ links.preferences }}\n\nMerci pour le temps passé avec nous.",
            ),
        },
    ),
]

BY_NAME = {j.name: j for j in JOURNEYS}
INCENTIVES: dict[str, dict[str, Any]] = {
    "coupon": {"coupon": {"kind": "percent_off", "value": 1500, "days": 30}},
    "free_shipping": {"coupon": {"kind": "free_shipping", "days": 30}},
    "points": {"points": 500, "reason": "win-back"},
}


def definition_with(journey: Journey, incentive: str | None) -> dict[str, Any]:
    """The journey's definition, with the win-back's incentive the merchant chose."""
    if incentive is None or journey.name != "win_back":
        return journey.definition
    steps = [
        {"id": "incentive", "reward": INCENTIVES[incentive]} if s.get("id") == "incentive" else s
        for s in journey.definition["steps"]
    ]
    return {**journey.definition, "steps": steps}
