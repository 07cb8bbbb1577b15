"""Messaging delivery throughput: personalised emails rendered and sent over SMTP by 2
``fidele worker`` processes to a loopback SMTP sink (aiosmtpd, bench/_smtp_sink.py, its own
process), against a bare ``smtplib`` loop sending the same messages pre-rendered over one
connection, in the same run (the bare loop runs before and after the workers).

Creates a scratch PostgreSQL database (createdb/dropdb -h 127.0.0.1 -U postgres): one merchant,
``--messages`` customers (names, locales fr/en, a time zone) consenting to ``lifecycle``, a
template in French and English (subject, HTML with a ``<style>`` block to inline, text) using
the customer, the shop, the signed unsubscribe link and a per-message coupon passed as the
caller's context, and one queued ledger row per customer. The workers check consent,
suppression and complaints again, render, inline the CSS, build the MIME message with its
List-Unsubscribe headers, mark each row ``sending`` (committed) before SMTP and record the
outcome, exactly as in production.

Run: ``.venv/bin/python bench/messaging.py [--messages 100000] [--workers 2] [--bare 20000]``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import smtplib
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from fidele.customers.models import Customer
from fidele.db.engine import make_engine
from fidele.db.migrate import upgrade
from fidele.db.session import make_sessionmaker, transaction
from fidele.messaging import delivery, service
from fidele.messaging.models import Consent, MessageSend
from fidele.settings import Settings
from fidele.tenancy import service as tenancy
from ingest import BIN, createdb, dropdb

HERE = Path(__file__).parent
SECRET = "bench-secret-key"
FIRST = ["Alice", "Bruno", "Chloé", "David", "Emma", "Farid", "Gaëlle", "Hugo", "Inès", "Jules"]
LAST = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"]
STYLE = (
    "<style>body{font-family:Arial,sans-serif} .cta{background:#0a7;color:#fff;padding:10px} "
    "p{line-height:1.4}</style>"
)
VARIANTS = {
    "en": {
        "subject": "{{ customer.first_name }}, your {{ coupon_value }} coupon at {{ shop.name }}",
        "html": f"<html><head>{STYLE}</head><body>"
        "<p>Hello {{ customer.first_name }} {{ customer.last_name }},</p>"
        "<p>Thanks for being a customer of {{ shop.name }}. Here is {{ coupon_value }} off your "
        "next order with the code <strong>{{ coupon_code }}</strong>.</p>"
        '<p><a class="cta" href="https://shop.example/?c={{ coupon_code }}">Shop now</a></p>'
        '<p><a href="{{ links.unsubscribe }}">Unsubscribe</a></p></body></html>',
        "text": "Hello {{ customer.first_name }},\n\nHere is {{ coupon_value }} off with "
        "{{ coupon_code }}.\n\nUnsubscribe: {{ links.unsubscribe }}\n",
    },
    "fr": {
        "subject": "{{ customer.first_name }}, votre bon de {{ coupon_value }} "
        "chez {{ shop.name }}",
        "html": f"<html><head>{STYLE}</head><body>"
        "<p>Bonjour {{ customer.first_name }} {{ customer.last_name }},</p>"
        "<p>Merci d'être client de {{ shop.name }}. Voici {{ coupon_value }} de remise sur votre "
        "prochaine commande avec le code <strong>{{ coupon_code }}</strong>.</p>"
        '<p><a class="cta" href="https://shop.example/?c={{ coupon_code }}">J\'en profite</a></p>'
        '<p><a href="{{ links.unsubscribe }}">Se désabonner</a></p></body></html>',
        "text": "Bonjour {{ customer.first_name }},\n\n{{ coupon_value }} de remise avec "
        "{{ coupon_code }}.\n\nSe désabonner : {{ links.unsubscribe }}\n",
    },
}


def start_sink() -> tuple[subprocess.Popen[str], int, int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_smtp_sink.py")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    smtp_port, stats_port = (int(x) for x in proc.stdout.readline().split())
    return proc, smtp_port, stats_port


def sink_stats(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def sink_reset(port: int) -> None:
    urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{port}/", method="POST"), timeout=10
    ).read()


def seed(url: str, n: int) -> int:
    """The merchant, its template, ``n`` consenting customers and ``n`` queued messages."""
    engine = make_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    now = datetime.now(UTC)
    with transaction(factory) as s:
        made = tenancy.create_merchant(s, name="Maison Dupont", now=now, server_secret=SECRET)
        m = made.merchant_id
        template_id = service.ensure_template(
            s, merchant_id=m, name="coupon", topic="lifecycle", variants=VARIANTS, now=now
        )
        service.put_policy(s, m, {"caps": {}, "default_locale": "fr"}, now)
    step = 5000
    for start in range(0, n, step):
        rows = range(start, min(n, start + step))
        with transaction(factory) as s:
            ids = (
                s.execute(
                    insert(Customer).returning(Customer.id),
                    [
                        {
                            "merchant_id": m,
                            "programme_id": made.programme_id,
                            "external_id": f"cust-{i}",
                            "email": f"customer{i}@example.com",
                            "email_normalized": f"customer{i}@example.com",
                            "first_name": FIRST[i % len(FIRST)],
                            "last_name": LAST[i % len(LAST)],
                            "locale": "fr-FR" if i % 3 else "en-GB",
                            "timezone": "Europe/Paris",
                            "attributes": {},
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in rows
                    ],
                )
                .scalars()
                .all()
            )
            s.execute(
                insert(Consent),
                [
                    {
                        "merchant_id": m,
                        "customer_id": cid,
                        "topic": "lifecycle",
                        "channel": "email",
                        "granted": True,
                        "at": now,
                        "source": "bench",
                    }
                    for cid in ids
                ],
            )
            s.execute(
                insert(MessageSend),
                [
                    {
                        "merchant_id": m,
                        "customer_id": cid,
                        "key": f"bench:{cid}",
                        "template_id": template_id,
                        "topic": "lifecycle",
                        "channel": "email",
                        "status": "queued",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                        "source": {"broadcast_id": 1},
                        "context": {"coupon_code": f"BENCH-{cid:06d}", "coupon_value": "10 €"},
                    }
                    for cid in ids
                ],
            )
    engine.dispose()
    return m


def prerender(url: str, count: int) -> list[tuple[str, str, bytes]]:
    """(from, to, MIME bytes) of the first ``count`` messages, rendered by fidele's own code
    (not timed): what the bare loop sends."""
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    settings = Settings(env="production", secret_key=SECRET, database_url=url)
    with transaction(factory) as s:
        ids = s.execute(
            text("SELECT id, merchant_id FROM message_sends ORDER BY id LIMIT :n"), {"n": count}
        ).all()
    out = []
    now = datetime.now(UTC)
    for chunk in range(0, len(ids), 500):
        claims = [delivery.Claim(i, m, 0.0) for i, m in ids[chunk : chunk + 500]]
        ready, _ = delivery.prepare(factory, claims, now, settings)
        out += [(p.outgoing.sender, p.outgoing.to, p.raw) for p in ready if p.outgoing]
    engine.dispose()
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``): CPU per message is a
    figure the machine's other load changes little, unlike messages per second."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_loop(
    messages: list[tuple[str, str, bytes]], smtp_port: int, stats_port: int
) -> tuple[float, float]:
    """(messages per second, client CPU ms per message)."""
    sink_reset(stats_port)
    conn = smtplib.SMTP("127.0.0.1", smtp_port)
    conn.ehlo()
    t0, c0 = time.perf_counter(), time.process_time()
    for sender, to, raw in messages:
        conn.sendmail(sender, [to], raw)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    conn.quit()
    return len(messages) / elapsed, 1000 * cpu / len(messages)


def workers_round(
    url: str, n_workers: int, n: int, smtp_port: int, stats_port: int, bin_dir: Path = BIN
) -> dict[str, Any]:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE message_sends SET status = 'queued', attempts = 0, sent_at = NULL, "
                "claimed_until = NULL, message_id = NULL, "
                "next_attempt_at = now() - interval '1 second'"
            )
        )
    engine.dispose()
    sink_reset(stats_port)
    env = {
        **os.environ,
        "FIDELE_DATABASE_URL": url,
        "FIDELE_SECRET_KEY": SECRET,
        "FIDELE_ENV": "production",
        "FIDELE_EMBEDDED_WORKER": "false",
        "FIDELE_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    t0 = time.time()
    procs = [
        subprocess.Popen(
            [str(bin_dir / "fidele"), "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n_workers)
    ]
    last_print = time.monotonic()
    cpu = 0.0
    try:
        deadline = time.monotonic() + 3600
        while (s := sink_stats(stats_port))["unique"] < n and time.monotonic() < deadline:
            if time.monotonic() - last_print > 10:
                print(f"  {int(s['unique'])}/{n} sent", flush=True)
                last_print = time.monotonic()
            time.sleep(0.5)
        time.sleep(1)  # the last outcomes recorded
        cpu = sum(cpu_seconds(p.pid) for p in procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    engine = make_engine(url)
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(text("SELECT status, count(*) FROM message_sends GROUP BY status")).all()
        )
    engine.dispose()
    return {
        "per_s": s["unique"] / max(s["last"] - s["first"], 1e-9),
        "wall_s": s["last"] - t0,
        "delivered": s["unique"],
        "duplicated": s["duplicated"],
        "statuses": statuses,
        "cpu_ms": 1000 * cpu / max(s["unique"], 1),  # workers' CPU (startup included)
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bare", type=int, default=20_000, help="messages of each bare-loop run")
    p.add_argument(
        "--reference-bin",
        type=Path,
        help="also run the workers of another install (e.g. main's .venv/bin) in the same run",
    )
    args = p.parse_args()
    # a SIGTERM stops the run through the ``finally`` blocks (workers, sink, scratch database)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    name = f"fidele_bench_messaging_{os.getpid()}"
    url = createdb(name).replace("postgresql://", "postgresql+psycopg://")
    sink, smtp_port, stats_port = start_sink()
    rows: list[tuple[str, float, float, float, str, str]] = []  # label, rate, cpu, sink cpu
    statuses = {}
    try:
        t = time.perf_counter()
        seed(url, args.messages)
        took = time.perf_counter() - t
        print(f"seeded {args.messages} customers and queued messages in {took:.0f} s", flush=True)
        pre = prerender(url, min(args.bare, args.messages))

        def bare(label: str) -> None:
            s0 = cpu_seconds(sink.pid)
            rate, cpu = bare_loop(pre, smtp_port, stats_port)
            sink_ms = 1000 * (cpu_seconds(sink.pid) - s0) / len(pre)
            rows.append((label, rate, cpu, sink_ms, "", ""))
            print(f"{label}: {rate:.0f} msgs/s; load {os.getloadavg()}", flush=True)

        def workers(label: str, bin_dir: Path) -> dict[str, Any]:
            s0 = cpu_seconds(sink.pid)
            r = workers_round(url, args.workers, args.messages, smtp_port, stats_port, bin_dir)
            sink_ms = 1000 * (cpu_seconds(sink.pid) - s0) / max(r["delivered"], 1)
            wall, dup = f"{r['wall_s']:.1f}", str(int(r["duplicated"]))
            rows.append((label, r["per_s"], r["cpu_ms"], sink_ms, wall, dup))
            print(f"{label}: {r['per_s']:.0f} msgs/s; load {os.getloadavg()}", flush=True)
            return r

        bare("bare smtplib loop, pre-rendered (before)")
        r = workers(f"{args.workers} x fidele worker (render + send)", BIN)
        statuses = r["statuses"]
        if args.reference_bin:
            workers(f"{args.workers} x reference worker", args.reference_bin)
        bare("bare smtplib loop, pre-rendered (after)")
    finally:
        sink.terminate()
        dropdb(name)
    ref = (rows[0][1] + rows[-1][1]) / 2
    print(f"{args.messages} personalised emails to a loopback SMTP sink; load: {os.getloadavg()}")
    print(
        f"{'run':42} {'msgs/s':>7} {'vs bare':>8} {'CPU ms/msg':>10} {'sink ms/msg':>11} "
        f"{'wall s':>7} {'dup':>4}"
    )
    for label, rate, cpu, sink_ms, wall, dup in rows:
        print(
            f"{label:42} {rate:7.0f} {rate / ref:8.0%} {cpu:10.2f} {sink_ms:11.2f} "
            f"{wall:>7} {dup:>4}"
        )
    print(f"ledger after the run: {statuses}")


if __name__ == "__main__":
    main()
