"""fidele analytics vs lifetimes on a generated shop: time and peak memory of each step.

Every step runs in its own subprocess (peak memory = that process's ru_maxrss, interpreter
and libraries included; the time is the step alone, measured inside). End to end, fidele is
the whole `fidele analytics clv` process (imports included) and lifetimes the same work
in-process (imports excluded). A lifetimes step past the time limit is killed and reported
as a lower bound.

    .venv/bin/python bench/analytics.py [n_customers] [--limit SECONDS]
    .venv/bin/python bench/analytics.py [n_customers] --shapes   # row order, ids, dates, CSV
    .venv/bin/python bench/analytics.py [n_customers] --shapes --repeat 5   # fidele's median
    .venv/bin/python bench/analytics.py [n_customers] --shapes --repeat 5 --reference 3
        # and lifetimes' median of 3 runs per file format (one run moves by ~10%)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _shop import END, TAG  # noqa: E402

WORK = Path(os.environ.get("FIDELE_BENCH_DIR", "/tmp/fidele_bench"))


# --------------------------------------------------------------------------- workers
def _ours(step: str, n: int) -> float:
    import polars as pl

    from fidele.analytics import bgnbd, clv, cohorts, gammagamma, rfm, summary

    orders, summ = WORK / f"orders_{TAG}_{n}.parquet", WORK / f"summary_{TAG}_{n}.parquet"
    t0 = time.perf_counter()
    if step == "read":
        pl.read_parquet(orders)
    elif step == "summary":
        frame = pl.read_parquet(orders)
        t0 = time.perf_counter()
        summary.summary(
            frame, observation_end=END, time_unit="weeks", interpurchase=False
        ).write_parquet(summ)
    elif step == "cohorts":
        frame = pl.read_parquet(orders)
        t0 = time.perf_counter()
        cohorts.cohorts(frame, observation_end=END)
    else:
        data = pl.read_parquet(summ)
        t0 = time.perf_counter()
        if step == "rfm":
            rfm.rfm(data, observation_end=END)
        elif step == "bgnbd_fit":
            bgnbd.fit_bgnbd(data)
        elif step == "gamma_gamma_fit":
            gammagamma.fit_gamma_gamma(data)
        elif step == "scoring":
            bg, gg = bgnbd.fit_bgnbd(data, with_se=False), gammagamma.fit_gamma_gamma(data)
            t0 = time.perf_counter()
            clv.score(data, bg.params, gg.params, time_unit="weeks", horizon_days=90)
    return time.perf_counter() - t0


def _theirs(step: str, n: int) -> float:
    import pandas as pd
    from _lifetimes_compat import load, summarise

    lifetimes, _ = load()
    orders, summ = WORK / f"orders_{TAG}_{n}.parquet", WORK / f"lt_summary_{TAG}_{n}.parquet"
    t0 = time.perf_counter()
    if step == "read":
        pd.read_parquet(orders)
        return time.perf_counter() - t0
    if step.startswith("end_to_end:"):  # the same work on another file (a CSV shape)
        path = Path(step.split(":", 1)[1])
        frame = pd.read_csv(path, parse_dates=["date"])
        if getattr(frame["date"].dt, "tz", None) is not None:
            frame["date"] = frame["date"].dt.tz_convert("UTC").dt.tz_localize(None)
        step = "end_to_end"
        data = summarise(frame, str(END))
    elif step in ("summary", "end_to_end"):
        frame = pd.read_parquet(orders)
        frame["date"] = frame["date"].dt.tz_localize(None)
        t0 = time.perf_counter() if step == "summary" else t0
        data = summarise(frame, str(END))
        if step == "summary":
            data.to_parquet(summ)
            return time.perf_counter() - t0
    else:
        data = pd.read_parquet(summ)
        t0 = time.perf_counter()
    f, r, T, m = data["frequency"], data["recency"], data["T"], data["monetary_value"]
    if step in ("bgnbd_fit", "scoring", "end_to_end"):
        bgf = lifetimes.BetaGeoFitter().fit(f, r, T)
    if step in ("gamma_gamma_fit", "scoring", "end_to_end"):
        rep = data[f > 0]
        ggf = lifetimes.GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    if step == "scoring":
        t0 = time.perf_counter()
    if step in ("scoring", "end_to_end"):
        bgf.conditional_expected_number_of_purchases_up_to_time(90 / 7, f, r, T)
        bgf.conditional_probability_alive(f, r, T)
        ggf.customer_lifetime_value(bgf, f, r, T, m, time=12, discount_rate=0.01, freq="W")
    elapsed = time.perf_counter() - t0
    if step == "end_to_end":
        params = {**bgf.params_.to_dict(), **ggf.params_.to_dict()}
        print(json.dumps({k: float(v) for k, v in params.items()}))
    return elapsed


# --------------------------------------------------------------------------- orchestration
def _run(cmd: list[str], limit: float) -> dict[str, object]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = started + limit
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            return {"wall": limit, "timed_out": True, "peak_mb": usage.ru_maxrss / 1024}
        time.sleep(0.02)
    wall = time.perf_counter() - started
    out = proc.stdout.read().decode() if proc.stdout else ""
    lines = out.strip().splitlines()
    try:
        step_time = float(lines[-1])
    except (ValueError, IndexError):
        step_time = wall
    return {
        "wall": wall,
        "step": step_time,
        "timed_out": False,
        "peak_mb": usage.ru_maxrss / 1024,
        "stdout": lines,
    }


def _worker(side: str, step: str, n: int, limit: float) -> dict[str, object]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", side, step, str(n)]
    return _run(cmd, limit)


def _prepare(n: int) -> Path:
    """Generate the shop once, in a subprocess: the orchestrator must stay small, since a
    forked child's ru_maxrss starts from its parent's resident size."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"orders_{TAG}_{n}.parquet"
    if not path.exists():
        code = f"import sys; sys.path.insert(0, {str(HERE)!r}); from _shop import shop; "
        code += f"shop({n}).write_parquet(sys.argv[1])"
        subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    return path


def _rows(path: Path) -> int:
    code = (
        "import sys, polars as pl; "
        "print(pl.scan_parquet(sys.argv[1]).select(pl.len()).collect().item())"
    )
    return int(
        subprocess.run(
            [sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True
        ).stdout
    )


def _fmt(res: dict[str, object]) -> str:
    if res.get("timed_out"):
        return f">{res['wall']:.0f} s (stopped)"
    return f"{res['step']:.3f} s"


def main(n: int, limit: float) -> None:
    path = _prepare(n)
    rows = _rows(path)
    print(f"{n:,} customers, {rows:,} transactions, {path.stat().st_size / 1e6:.0f} MB Parquet")
    print(f"{'step':18s} {'fidele':>12s} {'peak MB':>8s} {'lifetimes':>20s} {'peak MB':>8s}")
    steps = ["read", "summary", "rfm", "bgnbd_fit", "gamma_gamma_fit", "scoring", "cohorts"]
    for step in steps:
        ours = _worker("ours", step, n, limit)
        theirs = _worker("theirs", step, n, limit) if step not in ("rfm", "cohorts") else None
        other = (f"{_fmt(theirs):>20s} {theirs['peak_mb']:8.0f}") if theirs else f"{'-':>20s}"
        print(f"{step:18s} {_fmt(ours):>12s} {ours['peak_mb']:8.0f} {other}")
    _end_to_end(path, n, limit)


# The shapes a shop's export comes in: row order, id type, date type, file format.
SHAPES = {
    "by customer, string ids, datetime, Parquet": None,
    "by time, string ids, datetime, Parquet": ("date", "string", "datetime", "parquet"),
    "by time, integer ids, datetime, Parquet": ("date", "integer", "datetime", "parquet"),
    "by time, string ids, date, Parquet": ("date", "string", "date", "parquet"),
    "by time, string ids, datetime, CSV": ("date", "string", "datetime", "csv"),
    "by time, e-mail ids, datetime, CSV": ("date", "email", "datetime", "csv"),
    "shuffled, integer ids, date, CSV": ("shuffle", "integer", "date", "csv"),
}


def _shape(base: Path, name: str, spec: tuple[str, str, str, str] | None) -> Path:
    if spec is None:
        return base
    order, ids, dates, fmt = spec
    path = WORK / f"{base.stem}_{order}_{ids}_{dates}.{fmt}"
    if not path.exists():
        code = (
            "import sys, polars as pl; f = pl.read_parquet(sys.argv[1]); "
            f"f = f.sort('date') if {order!r} == 'date' else f.sample(fraction=1.0, shuffle=True, "
            "seed=1); "
            f"f = f.with_columns(pl.col('customer_id').str.slice(1).cast(pl.Int64)) if {ids!r} == "
            "'integer' else f; "
            # ids as some exports name customers: their e-mail address (30 bytes, not 8)
            "f = f.with_columns(pl.format('{}.buyer@example-shop.com', pl.col('customer_id')"
            f".str.slice(1)).alias('customer_id')) if {ids!r} == 'email' else f; "
            f"f = f.with_columns(pl.col('date').dt.date()) if {dates!r} == 'date' else f; "
            f"f.write_parquet(sys.argv[2]) if {fmt!r} == 'parquet' else f.write_csv(sys.argv[2])"
        )
        subprocess.run([sys.executable, "-c", code, str(base), str(path)], check=True)
    return path


def _reference(step: str, n: int, limit: float, times: int) -> dict[str, object]:
    """lifetimes' run of ``step``, the median of ``times`` (its range under ``range``)."""
    runs = [_worker("theirs", step, n, limit) for _ in range(times)]
    stopped = [r for r in runs if r["timed_out"]]
    if stopped:
        return stopped[0]
    runs.sort(key=lambda r: float(r["step"]))  # type: ignore[arg-type]
    return {**runs[len(runs) // 2], "range": (runs[0]["step"], runs[-1]["step"])}


def _fmt_reference(res: dict[str, object]) -> str:
    if "range" not in res or res["range"][0] == res["range"][1]:  # type: ignore[index]
        return ""
    low, high = res["range"]  # type: ignore[misc]
    return f"  lifetimes {low:.1f}-{high:.1f} s"


def shapes(n: int, limit: float, repeat: int = 1, reference: int = 1) -> None:
    """``fidele analytics clv`` as a whole process on each shape of the same shop, against
    lifetimes in-process (imports excluded, reading included) on the same file format, in the
    same run: the Parquet file for the Parquet shapes, each CSV file for its CSV shape.

    With ``repeat`` > 1, fidele runs that many times per shape (after one unmeasured run that
    warms the page cache) and the median is compared, the range
    shown beside it: on a shared 2-core machine one run moves by 10-20%. lifetimes runs
    ``reference`` times per file format (30-40 s a run), its median compared and its range
    shown when it ran more than once."""
    base = _prepare(n)
    _compile()
    parquet = _reference("end_to_end", n, limit, reference)
    print(
        f"{n:,} customers; lifetimes on the Parquet file (in-process): {_fmt(parquet)}"
        + _fmt_reference(parquet)
    )
    head = f"{'shape':48s} {'fidele':>9s} {'peak MB':>8s} {'lifetimes':>10s} {'speed-up':>9s}"
    print(head + ("  fidele min-max" if repeat > 1 else ""))
    for name, spec in SHAPES.items():
        path = _shape(base, name, spec)
        theirs = parquet
        if path.suffix == ".csv":  # lifetimes reads the same CSV (pandas, dates parsed)
            theirs = _reference(f"end_to_end:{path}", n, limit, reference)
        if repeat > 1:
            _run(_clv_cmd(path, n), limit)
        runs = sorted((_run(_clv_cmd(path, n), limit) for _ in range(repeat)), key=_wall)
        ours = runs[len(runs) // 2]
        ratio = float(theirs["step"]) / float(ours["wall"]) if not theirs["timed_out"] else 0.0
        spread = f"  {_wall(runs[0]):.2f}-{_wall(runs[-1]):.2f} s" if repeat > 1 else ""
        print(
            f"{name:48s} {ours['wall']:8.2f}s {ours['peak_mb']:8.0f} {_fmt(theirs):>10s} "
            f"{ratio:8.1f}x{spread}{_fmt_reference(theirs) if path.suffix == '.csv' else ''}"
        )


def _wall(run: dict[str, object]) -> float:
    return float(run["wall"])  # type: ignore[arg-type]


def _clv_cmd(path: Path, n: int) -> list[str]:
    fidele = HERE.parent / ".venv" / "bin" / "fidele"
    out = WORK / f"clv_{TAG}_{n}.parquet"
    return [
        str(fidele),
        "analytics",
        "clv",
        "--orders",
        str(path),
        "--observation-end",
        str(END),
        "--json",
        "--format",
        "parquet",
        "--out",
        str(out),
    ]


def _compile() -> None:
    """fidele's bytecode written once, as installing a package does: the runs then load it
    instead of compiling every module (~0.03 s of each run), which they would do on every run
    where ``PYTHONDONTWRITEBYTECODE`` is set (as on this project's machines) with fidele
    installed in editable mode."""
    package = HERE.parent / "src" / "fidele"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def _end_to_end(path: Path, n: int, limit: float) -> None:
    _compile()
    cmd = _clv_cmd(path, n)
    ours = _run(cmd, limit)
    theirs = _worker("theirs", "end_to_end", n, limit)
    print("\nend to end (summary + both fits + scoring):")
    wall, peak = ours["wall"], ours["peak_mb"]
    print(f"  fidele `analytics clv`, whole process: {wall:.2f} s, peak {peak:.0f} MB")
    print(f"  lifetimes in-process: {_fmt(theirs)}, peak {theirs['peak_mb']:.0f} MB")
    if theirs["timed_out"]:
        return
    print(f"  speed-up: {float(theirs['step']) / wall:.1f}x")
    mine = json.loads(ours["stdout"][-1])
    fitted = {**mine["bgnbd"], **mine["gamma_gamma"]}
    other = json.loads(theirs["stdout"][-2])
    worst = max(abs(fitted[k] - v) / abs(v) for k, v in other.items())
    print(f"  parameters, max relative difference: {worst:.1e}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        side, step, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        print(_ours(step, n) if side == "ours" else _theirs(step, n))
    else:
        args = [a for a in sys.argv[1:] if not a.startswith("--")]
        given = {}
        for name, default in (("--limit", 600.0), ("--repeat", 1), ("--reference", 1)):
            given[name] = default
            if name in sys.argv:
                value = sys.argv[sys.argv.index(name) + 1]
                given[name] = type(default)(value)
                args.remove(value)
        limit, repeat, reference = (
            given["--limit"],
            int(given["--repeat"]),
            int(given["--reference"]),
        )
        count = int(args[0]) if args else 1_000_000
        if "--shapes" in sys.argv:
            shapes(count, limit, repeat, reference)
        else:
            main(count, limit)
