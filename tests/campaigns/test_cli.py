"""`fidele flows ...` and `fidele worker run-once --now` as a user runs them: the installed
console script, messages delivered as .eml files by the file channel."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fidele.customers import service as customers
from fidele.customers.schemas import CustomerIn
from fidele.db.engine import make_engine
from fidele.db.session import make_sessionmaker, transaction
from fidele.events import service as events
from fidele.tenancy.service import Caller
from tests.fixtures.console import fidele, user_env

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BAD = "name: cart\ntrigger:\n  event: cart.abandoned\nsteps:\n  - wait: {hours: -1}\n"
GOOD = """\
name: my_cart
trigger: {event: cart.abandoned}
goals: [order.placed]
reentry: {days: 7}
steps:
  - wait: {hours: 1}
  - send: {template: flow_cart_1}
"""


def _cart(url: str, merchant_id: int, programme_id: int) -> None:
    eng = make_engine(url, pool_size=1)
    caller = Caller(merchant_id, programme_id, None, frozenset({"admin"}))
    with transaction(make_sessionmaker(eng)) as session:
        body = CustomerIn.model_validate(
            {"email": "ann@example.com", "first_name": "Ann", "consent": {"email_marketing": True}}
        )
        c, _ = customers.upsert(session, caller, "ann", body, T0)
        events.record(
            session,
            caller,
            type="cart.abandoned",
            occurred_at=T0,
            now=T0,
            source="api",
            payload={},
            customer_id=c.id,
        )
    eng.dispose()


def test_flows_commands_and_run_once_deliver_files(empty_database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    messages = tmp_path / "messages"
    env = user_env(empty_database_url, FIDELE_MESSAGES_DIR=str(messages))
    made = fidele("merchant", "create", "Shop", "--json", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    shop = json.loads(made.stdout)
    merchant = str(shop["merchant_id"])
    (tmp_path / "bad.yaml").write_text(BAD)
    refused = fidele("flows", "load", "bad.yaml", "--merchant", merchant, env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert "bad.yaml:5: steps.0.wait.hours" in refused.stderr
    names = json.loads(fidele("flows", "templates", "--json", env=env, cwd=tmp_path).stdout)
    assert len(names) == 13 and "complaint_follow_up" in {t["name"] for t in names}
    assert "win_back" in {t["name"] for t in names}
    installed = fidele(
        "flows",
        "install",
        "abandoned_cart",
        "--merchant",
        merchant,
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr
    assert json.loads(installed.stdout)[0]["status"] == "draft"
    (tmp_path / "cart.yaml").write_text(GOOD)
    loaded = fidele(
        "flows",
        "load",
        "cart.yaml",
        "--merchant",
        merchant,
        "--activate",
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert loaded.returncode == 0, loaded.stderr
    listed = json.loads(fidele("flows", "list", "--merchant", merchant, "--json", env=env).stdout)
    assert [(f["name"], f["status"]) for f in listed] == [
        ("abandoned_cart", "draft"),
        ("my_cart", "active"),
    ]
    _cart(empty_database_url, shop["merchant_id"], shop["programme_id"])
    early = fidele("worker", "run-once", "--now", "2026-06-01T12:59:00Z", env=env, cwd=tmp_path)
    assert early.returncode == 0, early.stderr
    assert not list(messages.rglob("*.eml"))
    on_time = fidele(
        "worker", "run-once", "--now", "2026-06-01T13:00:00Z", "--json", env=env, cwd=tmp_path
    )
    assert on_time.returncode == 0, on_time.stderr
    rows = {r["job"]: r for r in json.loads(on_time.stdout)}
    assert rows["campaigns.advance"]["error"] is None
    files = list(messages.rglob("*.eml"))
    assert len(files) == 1
    mail = files[0].read_text()
    assert "ann@example.com" in mail and "You left something in your cart" in mail
    bad_now = fidele("worker", "run-once", "--now", "tomorrow", env=env, cwd=tmp_path)
    assert bad_now.returncode == 2 and "tomorrow" in bad_now.stderr


def test_install_all_installs_every_ready_made_journey(empty_database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = user_env(empty_database_url)
    made = fidele("merchant", "create", "Shop", "--json", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    merchant = str(json.loads(made.stdout)["merchant_id"])
    args = ("flows", "install", "--all", "--merchant", merchant, "--activate", "--json")
    installed = fidele(*args, env=env, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    rows = json.loads(installed.stdout)
    assert len(rows) == 13 and {r["status"] for r in rows} == {"active"}
    assert "complaint_follow_up" in {r["name"] for r in rows}
    again = fidele(*args, env=env, cwd=tmp_path)  # installing again keeps them
    assert again.returncode == 0, again.stderr
    assert [r["id"] for r in json.loads(again.stdout)] == [r["id"] for r in rows]
