"""`fidele segments ...` through the installed console script, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sqlalchemy.orm import Session

from fidele.db.engine import make_engine
from fidele.kit.clock import SystemClock
from fidele.tenancy.models import Merchant
from tests.fixtures.console import fidele, user_env
from tests.segments import world

PERSON = {
    "country": "FR",
    "locale": "fr-FR",
    "created_ago": 86_400 * 100,
    "birthday_month": None,
    "attributes": {},
    "orders": [],
    "insights": None,
    "events": [],
    "consent": True,
    "member": None,
}
ORDER = {"ago": 86_400 * 3, "total": 4200, "refund_pct": 0, "status": "placed", "lines": []}


def test_list_create_show_preview_export(empty_database_url: str, tmp_path: Path) -> None:
    env = user_env(empty_database_url)
    made = fidele("merchant", "create", "CLI shop", "--json", env=env)
    assert made.returncode == 0, made.stderr
    merchant = str(json.loads(made.stdout)["merchant_id"])

    engine = make_engine(empty_database_url)
    with Session(engine) as session:
        m = session.get(Merchant, int(merchant))
        assert m is not None
        people = [
            {**PERSON, "orders": [{**ORDER, "lines": [{"category": "tea", "product": "p1"}]}]},
            {**PERSON, "country": "DE"},
            {**PERSON, "consent": False, "orders": [ORDER | {"lines": []}, ORDER]},
        ]
        world.insert(session, m.id, m.programme_id, SystemClock().now(), people)
        session.commit()
    engine.dispose()

    listed = fidele("segments", "list", "--merchant", merchant, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "Champions" in [s["name"] for s in json.loads(listed.stdout)]

    rule = tmp_path / "buyers.yaml"
    rule.write_text(
        "name: French buyers\n"
        "rule:\n"
        "  all:\n"
        "    - {field: customer.country, op: eq, value: FR}\n"
        "    - {field: orders.count, op: gte, value: 1, within_days: 365}\n"
    )
    preview = fidele("segments", "preview", str(rule), "--merchant", merchant, "--json", env=env)
    assert preview.returncode == 0, preview.stderr
    shown = json.loads(preview.stdout)
    assert shown["count"] == 2
    assert len(shown["sample"]) == 2

    created = fidele("segments", "create", str(rule), "--merchant", merchant, "--json", env=env)
    assert created.returncode == 0, created.stderr
    seg = json.loads(created.stdout)
    assert (seg["name"], seg["count"]) == ("French buyers", 2)

    show = fidele("segments", "show", str(seg["id"]), "--merchant", merchant, "--json", env=env)
    assert json.loads(show.stdout)["rule"]["all"][0]["value"] == "FR"

    out = fidele("segments", "export", str(seg["id"]), "--merchant", merchant, env=env)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 2 and {r["country"] for r in rows} == {"FR"}
    as_json = fidele(
        "segments", "export", str(seg["id"]), "--merchant", merchant, "--format", "json", env=env
    )
    assert sorted(r["id"] for r in json.loads(as_json.stdout)) == sorted(r["id"] for r in rows)

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "all:\n  - field: customer.country\n    op: eq\n    value: FR\n"
        "  - field: orders.count\n    op: gte\n    value: two\n"
    )
    refused = fidele("segments", "preview", str(bad), "--merchant", merchant, env=env)
    assert refused.returncode == 1
    assert "bad.yaml:7" in refused.stderr and "rule.all.1.value" in refused.stderr

    missing = fidele("segments", "show", "999999", "--merchant", merchant, env=env)
    assert missing.returncode == 1 and "not found" in missing.stderr
