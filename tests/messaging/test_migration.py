from __future__ import annotations

from sqlalchemy import text

from fidele.db.engine import make_engine
from fidele.db.migrate import upgrade
from tests.conftest import T0


def test_email_marketing_migrates_to_newsletter_and_lifecycle(empty_database_url):
    eng = make_engine(empty_database_url)
    try:
        upgrade(eng, "7ea55b361597")
        with eng.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO programmes (id, name, currency, settings, created_at) "
                    "VALUES (1, 'p', 'EUR', '{}', :t)"
                ),
                {"t": T0},
            )
            conn.execute(
                text(
                    "INSERT INTO merchants (id, programme_id, name, webhook_salt, created_at) "
                    "VALUES (1, 1, 'm', 's', :t)"
                ),
                {"t": T0},
            )
            for i, (flag, at, source) in enumerate(
                [(True, T0, "checkout"), (False, T0, "footer"), (False, None, None)], start=1
            ):
                conn.execute(
                    text(
                        "INSERT INTO customers (id, merchant_id, programme_id, external_id, "
                        "email_marketing, email_marketing_at, email_marketing_source, "
                        "sms_marketing, attributes, created_at, updated_at) VALUES "
                        "(:i, 1, 1, :e, :f, :at, :s, false, '{}', :t, :t)"
                    ),
                    {"i": i, "e": f"c{i}", "f": flag, "at": at, "s": source, "t": T0},
                )
        upgrade(eng)
        with eng.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT customer_id, topic, channel, granted, source FROM consents "
                    "ORDER BY customer_id, topic"
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            (1, "lifecycle", "email", True, "checkout"),
            (1, "newsletter", "email", True, "checkout"),
            (2, "lifecycle", "email", False, "footer"),
            (2, "newsletter", "email", False, "footer"),
        ]
    finally:
        eng.dispose()
