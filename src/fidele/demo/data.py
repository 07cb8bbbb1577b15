"""Static material of the demo shop: names, a product catalogue, locales."""

from __future__ import annotations

FIRST_FR = (
    "Camille Léa Manon Chloé Inès Jade Louise Emma Alice Juliette Lucas Hugo Louis "
    "Gabriel Arthur Jules Nathan Raphaël Théo Paul Élodie Mathilde Antoine Maxime"
).split()
LAST_FR = (
    "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon "
    "Laurent Lefebvre Michel Garcia David Bertrand Roux Vincent Fournier Morel Girard "
    "André Lefèvre Mercier Dupont Lambert Bonnet François Martinez"
).split()
FIRST_EN = (
    "Olivia Amelia Isla Ava Mia Ivy Lily Grace Sophia Freya Oliver George Noah "
    "Arthur Leo Harry Oscar Jack Charlie Jacob Emily James William Thomas"
).split()
LAST_EN = (
    "Smith Jones Taylor Brown Williams Wilson Johnson Davies Robinson Wright Thompson "
    "Evans Walker White Roberts Green Hall Wood Jackson Clarke"
).split()
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example")
LOCALES = (
    ("fr-FR", "FR", "Europe/Paris", 0.55),
    ("fr-BE", "BE", "Europe/Brussels", 0.07),
    ("en-GB", "GB", "Europe/London", 0.23),
    ("en-US", "US", "America/New_York", 0.15),
)

# (category, [(product name, price in cents)])
CATALOGUE: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (
    (
        "apparel",
        (
            ("T-shirt coton bio", 1900),
            ("Sweat à capuche", 4900),
            ("Jean droit", 6900),
            ("Chemise lin", 5500),
            ("Robe d'été", 5900),
            ("Chaussettes (x3)", 1200),
        ),
    ),
    ("shoes", (("Baskets cuir", 8900), ("Sandales", 4500), ("Bottines", 11900))),
    (
        "accessories",
        (
            ("Casquette", 2200),
            ("Sac cabas", 3500),
            ("Ceinture", 2900),
            ("Bonnet laine", 2500),
            ("Écharpe", 3200),
        ),
    ),
    (
        "beauty",
        (
            ("Savon artisanal", 650),
            ("Crème mains", 1100),
            ("Huile sèche", 2400),
            ("Coffret découverte", 3900),
        ),
    ),
    (
        "home",
        (("Bougie parfumée", 1800), ("Plaid", 4900), ("Mug céramique", 1400), ("Coussin", 2700)),
    ),
)
