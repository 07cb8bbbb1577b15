"""`fidele analytics refresh` on a large shop in PostgreSQL, against the file CLI on the same
orders exported to Parquet.

    .venv/bin/python bench/refresh.py [n_customers] [--old]

Builds once (kept between runs: a marker table names the shop) a shop of ``n_customers``
(default 1,000,000: ~6.2M orders, bench/_shop.py) in the PostgreSQL database
``fidele_bench_refresh`` on 127.0.0.1: ``fidele db upgrade``, ``fidele merchant create``,
then customers and orders by COPY into the real tables. The shop's days are moved so that its
last day is the day before the build (the refresh observes up to its clock's now). Then, each
as a whole process (wall time, peak RSS from ``wait4``):

- ``fidele analytics refresh --merchant ID --json`` (reads, computes and stores everything);
- ``fidele analytics clv --orders FILE`` on the same orders in Parquet (the file CLI: summary,
  both fits, scoring) as the reference;
- with ``--old``: the computation only (no writes) of the refresh as it was (every order into
  polars through ``repo.orders``) against the same computation from the database's rows.

The orchestrator stays small (its children's ru_maxrss would start from its size).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _shop import END, TAG  # noqa: E402

DB = "fidele_bench_refresh"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB}"
WORK = Path(os.environ.get("FIDELE_BENCH_DIR", "/tmp/fidele_bench"))
FIDELE = HERE.parent / ".venv" / "bin" / "fidele"
ENV = {**os.environ, "FIDELE_DATABASE_URL": URL}
CHUNK = 500_000


def _psql(sql: str, db: str = "postgres") -> str:
    cmd = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atqc", sql]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def _marker(n: int) -> str:
    return f"{TAG}_{n}"


def _built(n: int) -> dict[str, object] | None:
    if not _psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB}'"):
        return None
    found = _psql("SELECT to_regclass('bench_marker')", DB)
    if not found:
        return None
    row = _psql("SELECT payload FROM bench_marker", DB)
    info = json.loads(row) if row else None
    return info if info and info.get("marker") == _marker(n) else None


def _build(n: int) -> dict[str, object]:
    """The database and the Parquet export, in a child process (the shop frame is large)."""
    _psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    _psql(f"CREATE DATABASE {DB}")
    subprocess.run([str(FIDELE), "db", "upgrade"], env=ENV, check=True, capture_output=True)
    made = subprocess.run(
        [str(FIDELE), "merchant", "create", "Bench shop", "--json"],
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    merchant = json.loads(made.stdout)
    subprocess.run(
        [sys.executable, __file__, "--load", str(n), json.dumps(merchant)], env=ENV, check=True
    )
    return json.loads(_psql("SELECT payload FROM bench_marker", DB))


def _load(n: int, merchant: dict[str, object]) -> None:
    import polars as pl
    import psycopg
    from _shop import shop

    started = time.perf_counter()
    mid, pid = merchant["merchant_id"], merchant["programme_id"]
    last = date.today() - timedelta(days=1)
    shift = timedelta(days=(last - END).days)
    now = datetime.now(UTC).isoformat()
    orders = shop(n).with_columns(pl.col("date") + shift)
    WORK.mkdir(parents=True, exist_ok=True)
    parquet = WORK / f"refresh_orders_{_marker(n)}.parquet"
    orders.write_parquet(parquet)
    ids = orders.select(pl.col("customer_id").unique().sort())
    ids = ids.with_row_index("id", offset=1).with_columns(pl.col("id").cast(pl.Int64))
    customers = ids.select(
        "id",
        pl.lit(mid).alias("merchant_id"),
        pl.lit(pid).alias("programme_id"),
        pl.col("customer_id").alias("external_id"),
        pl.lit(False).alias("email_marketing"),
        pl.lit(False).alias("sms_marketing"),
        pl.lit("{}").alias("attributes"),
        pl.lit(now).alias("created_at"),
        pl.lit(now).alias("updated_at"),
    )
    rows = orders.join(ids, on="customer_id").with_row_index("oid", offset=1)
    placed = pl.col("date").dt.replace_time_zone("UTC").dt.to_string("%Y-%m-%dT%H:%M:%S+00:00")
    table = rows.select(
        pl.col("oid").cast(pl.Int64).alias("id"),
        pl.lit(mid).alias("merchant_id"),
        pl.lit(pid).alias("programme_id"),
        pl.col("id").alias("customer_id"),
        ("o" + pl.col("oid").cast(pl.Utf8)).alias("external_id"),
        placed.alias("placed_at"),
        pl.lit("EUR").alias("currency"),
        pl.col("amount").alias("subtotal"),
        pl.lit(0).alias("discounts"),
        pl.lit(0).alias("shipping"),
        pl.lit(0).alias("tax"),
        pl.col("amount").alias("total"),
        pl.lit(0).alias("refunded_total"),
        pl.lit("placed").alias("status"),
        pl.lit("bench").alias("source"),
        pl.lit("0" * 64).alias("payload_hash"),
        pl.lit("{}").alias("attributes"),
        pl.lit(now).alias("created_at"),
        pl.lit(now).alias("updated_at"),
    )
    del rows, orders
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DB}") as conn:
        for name, frame in (("customers", customers), ("orders", table)):
            cols = ", ".join(frame.columns)
            with conn.cursor().copy(f"COPY {name} ({cols}) FROM STDIN (FORMAT CSV)") as copy:
                for start in range(0, frame.height, CHUNK):
                    copy.write(frame.slice(start, CHUNK).write_csv(include_header=False))
            conn.execute(f"SELECT setval('{name}_id_seq', {frame.height})")
            print(f"  {name}: {frame.height:,} rows ({time.perf_counter() - started:.0f} s)")
        conn.execute("ANALYZE customers")
        conn.execute("ANALYZE orders")
        info = {
            "marker": _marker(n),
            "merchant_id": mid,
            "customers": customers.height,
            "orders": table.height,
            "parquet": str(parquet),
            "last_day": last.isoformat(),
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        conn.execute("CREATE TABLE bench_marker (payload text)")
        conn.execute("INSERT INTO bench_marker VALUES (%s)", (json.dumps(info),))


def _timed(cmd: list[str]) -> dict[str, object]:
    """Wall time and peak RSS (MB) of one child process, from wait4's resource usage."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait4 before reading: the pipes are small (JSON lines), the child will not block on them
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if status:
        raise RuntimeError(f"{cmd[:4]} failed ({status}): {err[-2000:]}")
    return {"wall": wall, "peak_mb": usage.ru_maxrss / 1024, "stdout": out}


def _compute(side: str, merchant_id: int) -> None:
    """The refresh's computation without its writes: ``old`` reads every order into polars
    (as the refresh did), ``new`` reads the database's per-customer rows and counts."""
    from fidele.analytics import service
    from fidele.kit.cli import clock, unit_of_work

    now = clock.now()
    started = time.perf_counter()
    with unit_of_work() as session:
        repo = service.AnalyticsRepository(session)
        if side == "old":
            from fidele.analytics.cohorts import cohorts
            from fidele.analytics.kpis import monthly_kpis, shop_kpis
            from fidele.analytics.pipeline import customer_insights
            from fidele.analytics.rfm import rfm, segment_summary
            from fidele.analytics.summary import summary

            orders = repo.orders(merchant_id, until=now)
            read = time.perf_counter() - started
            end = now.date()
            customer_insights(orders, observation_end=end)
            monthly = monthly_kpis(orders, observation_end=end)
            data = summary(orders, observation_end=end, interpurchase=False)
            shop_kpis(data, monthly)
            cohorts(orders, observation_end=end)
            segment_summary(rfm(data, observation_end=end))
        else:
            tables = service._shop_tables(repo, merchant_id, now)
            read = time.perf_counter() - started
            report, _ = service._insights(tables, now.date())
            service._reports(tables, now.date(), report)
        session.rollback()
    print(json.dumps({"read": read, "total": time.perf_counter() - started}))


def main(n: int, old: bool) -> None:
    info = _built(n)
    if info is None:
        print(f"building {n:,} customers in {DB} (once) ...")
        info = _build(n)
    load = f"{os.getloadavg()[0]:.1f}"
    print(
        f"{info['customers']:,} customers, {info['orders']:,} orders in PostgreSQL "
        f"(built in {info['build_seconds']} s); load {load}"
    )
    merchant = str(info["merchant_id"])
    refresh = _timed([str(FIDELE), "analytics", "refresh", "--merchant", merchant, "--json"])
    result = json.loads(refresh["stdout"])[0]
    assert result["customers"] == info["customers"], result
    end = date.today().isoformat()
    clv_cmd = [str(FIDELE), "analytics", "clv", "--orders", str(info["parquet"])]
    clv_cmd += ["--observation-end", end, "--json"]
    out = WORK / f"refresh_clv_{_marker(n)}.parquet"
    clv = _timed([*clv_cmd, "--format", "parquet", "--out", str(out)])
    print(f"{'whole process':52s} {'wall s':>8s} {'peak MB':>8s}")
    print(f"{'fidele analytics refresh (PostgreSQL, stores all)':52s} ", end="")
    print(f"{refresh['wall']:8.1f} {refresh['peak_mb']:8.0f}")
    print(f"{'fidele analytics clv --orders (Parquet, reference)':52s} ", end="")
    print(f"{clv['wall']:8.1f} {clv['peak_mb']:8.0f}")
    print(f"refresh: {result}")
    if old:
        print(f"\n{'computation only (no writes)':52s} {'wall s':>8s} {'peak MB':>8s} read s")
        for side, label in (("new", "database rows (this refresh)"), ("old", "every order")):
            res = _timed([sys.executable, __file__, "--compute", side, merchant])
            times = json.loads(res["stdout"].strip().splitlines()[-1])
            print(f"{label:52s} {res['wall']:8.1f} {res['peak_mb']:8.0f} {times['read']:6.1f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        _load(int(sys.argv[2]), json.loads(sys.argv[3]))
    elif sys.argv[1:2] == ["--compute"]:
        _compute(sys.argv[2], int(sys.argv[3]))
    else:
        args = [a for a in sys.argv[1:] if not a.startswith("--")]
        main(int(args[0]) if args else 1_000_000, "--old" in sys.argv)
