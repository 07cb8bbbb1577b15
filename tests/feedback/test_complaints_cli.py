"""`fidele complaints list|show|stats` through the installed console script."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.customers.schemas import CustomerIn
from fidele.db.engine import make_engine
from fidele.feedback import complaints_service
from fidele.feedback.complaints_schemas import ComplaintIn
from fidele.kit.clock import SystemClock
from fidele.tenancy.models import Merchant
from tests.fixtures.console import fidele, user_env


def test_list_show_stats(empty_database_url: str) -> None:
    env = user_env(empty_database_url)
    made = fidele("merchant", "create", "CLI shop", "--json", env=env)
    assert made.returncode == 0, made.stderr
    merchant = json.loads(made.stdout)["merchant_id"]
    engine = make_engine(empty_database_url)
    now = SystemClock().now()
    with Session(engine) as session:
        m = session.get(Merchant, merchant)
        assert m is not None
        caller = complaints_service.system_caller(m.id, m.programme_id)
        customers.upsert(session, caller, "c1", CustomerIn(email="c1@example.com"), now)
        body = {"customer_id": "c1", "category": "wrong_item", "message": "blue, not red"}
        row, _ = complaints_service.open_complaint(session, caller, ComplaintIn(**body), now)
        complaints_service.add_note(session, caller, row.id, "sending the red one", "Bo", now)
        session.commit()
        cid = row.id
    engine.dispose()
    m_arg = ("--merchant", str(merchant))

    listed = fidele("complaints", "list", *m_arg, "--status", "open", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["customer_id"], r["category"]) for r in rows] == [(cid, "c1", "wrong_item")]
    table = fidele("complaints", "list", *m_arg, env=env)
    assert table.returncode == 0 and "wrong_item" in table.stdout

    shown = fidele("complaints", "show", str(cid), *m_arg, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert [n["body"] for n in json.loads(shown.stdout)["notes"]] == ["sending the red one"]
    missing = fidele("complaints", "show", "999999", *m_arg, env=env)
    assert missing.returncode == 1 and "not found" in missing.stderr

    stats = fidele("complaints", "stats", *m_arg, "--json", env=env)
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["complaints"] == 1 and figures["by_status"]["open"] == 1
    assert figures["first_response_hours"]["n"] == 1
    bad = fidele("complaints", "list", *m_arg, "--status", "closed", env=env)
    assert bad.returncode == 2
