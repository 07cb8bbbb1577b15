"""Benchmark of POST /v1/checkout/evaluate on PostgreSQL, against a bare primary-key endpoint.

    .venv/bin/python bench/checkout.py [--seconds 30] [--rate 200] [--workers 1]

Creates a scratch database (createdb/dropdb -h 127.0.0.1 -U postgres), seeds a merchant with 20
active automatic promotions and 2 coupons, serves fidele with uvicorn (``--workers``, default 1)
in a child process, then drives it from this process over loopback with ``load.RawClient``:

1. closed loop, 16 concurrent clients, for ``--seconds``: a bare endpoint doing one primary-key
   read (the reference), then evaluate with a 5-line cart and 2 typed codes;
2. open loop (paced, latency measured from each request's scheduled time, so queueing counts)
   at ``--rate`` requests/s: p50/p99 of evaluate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import load  # bench/load.py: the paced open-loop client
from starlette.concurrency import run_in_threadpool

from fidele.db.session import transaction
from fidele.tenancy.models import Merchant

PORT = 8765
CLIENTS = 16
CART = {
    "customer_id": "bench-customer",
    "currency": "EUR",
    "lines": [
        {
            "product_id": f"p{i}",
            "name": f"Product {i}",
            "category": ["apparel", "home"][i % 2],
            "quantity": 1 + i % 3,
            "unit_price": 1500 + 250 * i,
        }
        for i in range(5)
    ],
    "shipping": 490,
    "codes": ["SUMMER10", "FIVEOFF"],
}


def bench_app():  # type: ignore[no-untyped-def]
    """The app with the reference endpoint added (an import-string factory for uvicorn, so
    ``--workers`` can start several processes); the database URL comes from the environment."""
    from fidele.app import create_app
    from fidele.settings import Settings

    url = os.environ["FIDELE_BENCH_URL"]
    app = create_app(Settings(database_url=url, embedded_worker=False, db_pool_size=20))

    factory = app.state.sessionmaker

    @app.get("/bench/bare")
    async def bare() -> dict[str, str]:
        """One primary-key read in a transaction, nothing else, served as evaluate is: one
        thread-pool hop (``deps.in_one_hop`` without the key check)."""

        def read() -> dict[str, str]:
            with transaction(factory) as session:
                merchant = session.get(Merchant, 1)
                return {"name": merchant.name if merchant else ""}

        return await run_in_threadpool(read)

    return app


def serve(url: str, port: int, workers: int) -> None:
    import uvicorn

    os.environ["FIDELE_BENCH_URL"] = url
    uvicorn.run(
        "checkout:bench_app",
        factory=True,
        app_dir=os.path.dirname(os.path.abspath(__file__)),
        workers=workers,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


def seed(url: str) -> str:
    from fidele.db.engine import make_engine
    from fidele.db.migrate import upgrade
    from fidele.db.session import make_sessionmaker, transaction
    from fidele.promotions import coupons
    from fidele.promotions.schemas import CouponIn, PromotionIn
    from fidele.tenancy import service as tenancy
    from fidele.tenancy.service import Caller

    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    with transaction(make_sessionmaker(engine)) as s:
        made = tenancy.create_merchant(s, name="Bench", now=now, server_secret="bench")
        row, key = tenancy.create_api_key(
            s, merchant_id=made.merchant_id, scopes="read,write", now=now
        )
        caller = Caller(made.merchant_id, made.programme_id, row.id, row.scope_set)
        for i in range(20):
            coupons.create_promotion(s, caller, PromotionIn.model_validate(_promotion(i)), now)
        coupons.create(s, caller, CouponIn(code="SUMMER10", kind="percent_off", value=1000), now)
        coupons.create(s, caller, CouponIn(code="FIVEOFF", kind="amount_off", value=500), now)
    engine.dispose()
    return key


def _promotion(i: int) -> dict[str, object]:
    kinds = [
        {"kind": "percent_off", "value": 200 + i, "conditions": {"categories": ["apparel"]}},
        {"kind": "amount_off", "value": 100 + i, "conditions": {"min_subtotal": 5000}},
        {"kind": "free_product", "rule": "buy_x_get_y", "buy": 3, "get": 1},
        {"kind": "free_shipping", "conditions": {"min_subtotal": 100_000}},
    ]
    return {"name": f"promo {i}", "priority": i % 5, **kinds[i % 4]}


async def closed_loop(client: load.RawClient, request: bytes, seconds: float) -> tuple[float, int]:
    end = time.perf_counter() + seconds
    done, errors = 0, 0

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < end:
            status = await load.status(client, request)
            done += 1
            errors += not 200 <= status < 300

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return done / (time.perf_counter() - start), errors


async def open_loop(client: load.RawClient, rate: float, seconds: float) -> dict:
    """Paced by ``load.paced`` (64 senders, latency from each request's due time, ends by
    ``seconds`` + 5 s whatever the server does; late and failed requests counted)."""
    request = client.encode("POST", "/v1/checkout/evaluate", CART)
    t0 = time.perf_counter()
    out = await load.paced(lambda _: load.status(client, request), rate, seconds)
    return load.summary(out, time.perf_counter() - t0)


async def drive(key: str, seconds: float, rate: float) -> None:
    c = load.RawClient("127.0.0.1", PORT, load.auth(key))
    evaluate_request = c.encode("POST", "/v1/checkout/evaluate", CART)
    await closed_loop(c, evaluate_request, 2)  # warm-up
    bare, bare_err = await closed_loop(c, c.encode("GET", "/bench/bare"), seconds)
    print(
        f"bare PK read      : {bare:8.1f} req/s  ({CLIENTS} clients, errors {bare_err})",
        flush=True,
    )
    evaluate, ev_err = await closed_loop(c, evaluate_request, seconds)
    print(
        f"checkout/evaluate : {evaluate:8.1f} req/s  ({CLIENTS} clients, errors {ev_err})"
        f"  = {100 * evaluate / bare:.0f}% of bare (goal >= 40%)",
        flush=True,
    )
    paced = await open_loop(c, rate, seconds)
    await c.aclose()
    print(
        f"open loop {rate:.0f}/s   : p50 {paced['p50_ms']} ms, p99 {paced['p99_ms']} ms "
        f"(goal p99 < 30 ms; null = unanswered in time), {paced['ok']} ok, "
        f"{paced['late']} late, {paced['failed']} failed {paced['failed_by_status']} "
        f"of {paced['requests']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--serve", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.workers)
        return
    db = f"fidele_bench_{os.getpid()}"
    pg = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["createdb", *pg, db], check=True)
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    server = None
    try:
        key = seed(url)
        log = open(f"/tmp/{db}.log", "w")  # noqa: SIM115 - the server's log, closed at exit
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", url, str(PORT), "--workers", str(args.workers)],
            stdout=log,
            stderr=log,
        )
        _wait_up()
        asyncio.run(drive(key, args.seconds, args.rate))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        subprocess.run(["dropdb", *pg, "--force", db], check=False)


def _wait_up() -> None:
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


if __name__ == "__main__":
    main()
