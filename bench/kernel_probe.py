"""How much a compiled kernel would save on the summary of a time-ordered export with string
ids: ``kernel_probe.c`` (one pass, a hash table; not part of fidele) against fidele's
summary of the same rows, each in a new process, same run. Also times what the kernel leaves
to do: putting its customers (in order of first appearance) in id order.

    .venv/bin/python bench/kernel_probe.py [n_customers] [--repeat 3]

Needs the shapes of ``bench/analytics.py --shapes`` (made here if missing) and a C compiler
(``cc``). Prints one JSON line per run and the medians.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from analytics import SHAPES, WORK, _prepare, _shape  # noqa: E402

SHAPE = "by time, string ids, datetime, CSV"
END = "2026-12-30"
COLUMNS = dict(customer_col="customer_id", date_col="date", amount_col="amount")


def _frame(path: Path):  # type: ignore[no-untyped-def]
    """The rows as fidele's summary sees them: customer, UTC day number, amount."""
    import polars as pl

    from fidele.analytics.files import read_transactions
    from fidele.analytics.summary import _day_number

    lf = read_transactions(path, **COLUMNS)
    day = _day_number("date", lf.collect_schema()["date"])
    return lf, lf.select("customer_id", day, pl.col("amount").cast(pl.Int64)).collect()


def _dump(path: Path, out: Path) -> None:
    """The columns as raw arrays for the C probe: id bytes, their offsets, days, amounts."""
    import numpy as np

    _, frame = _frame(path)
    out.mkdir(parents=True, exist_ok=True)
    ids = frame.get_column("customer_id")
    offsets = np.zeros(ids.len() + 1, np.int64)
    np.cumsum(ids.str.len_bytes().to_numpy(), out=offsets[1:])
    (out / "ids.bin").write_bytes("".join(ids.to_list()).encode())
    offsets.tofile(out / "off.bin")
    frame.get_column("day").to_numpy().astype(np.int32).tofile(out / "day.bin")
    frame.get_column("amount").to_numpy().astype(np.int64).tofile(out / "amount.bin")


def _ordering(path: Path) -> dict[str, object]:
    """In a new process: the sort of the distinct ids (in order of first appearance, as the
    kernel leaves them) with their positions, which gives the customers' order; and, untimed,
    every figure of fidele's runs summed over the customers, to check the kernel's."""
    import time

    import polars as pl

    from fidele.analytics._runs import customer_runs

    _, frame = _frame(path)
    firsts = frame.get_column("customer_id").unique(maintain_order=True)
    started = time.perf_counter()
    pl.DataFrame({"c": firsts, "i": pl.int_range(firsts.len(), eager=True)}).sort("c")
    order_s = time.perf_counter() - started
    runs = customer_runs(frame, "customer_id")
    figures = (runs.first, runs.last, runs.n_orders, runs.days, runs.total, runs.first_amount)
    return {
        "order_s": round(order_s, 4),
        "customers": runs.customers.len(),
        "sums": [int(f.sum()) for f in (*figures, runs.gap_sq)],
    }


def _fidele(path: Path) -> float:
    """``fidele analytics clv`` on the file: its own timing of the summary (the file already
    read)."""
    out = WORK / "kernel_probe_clv.parquet"
    fidele = HERE.parent / ".venv" / "bin" / "fidele"
    cmd = [str(fidele), "analytics", "clv", "--orders", str(path), "--observation-end", END]
    cmd += ["--json", "--format", "parquet", "--out", str(out)]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)
    return round(report["timings"]["summary"], 4)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return sorted(r[key] for r in runs)[len(runs) // 2]


def main(n: int, repeat: int) -> None:
    path = _shape(_prepare(n), SHAPE, SHAPES[SHAPE])
    data = WORK / f"kernel_probe_{n}"
    if not (data / "amount.bin").exists():
        _dump(path, data)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("no C compiler (cc) on this machine")
    binary = WORK / "kernel_probe_c"
    subprocess.run(
        [cc, "-O2", "-march=native", "-pthread", "-o", str(binary), str(HERE / "kernel_probe.c")],
        check=True,
    )
    kernel, pair, ours = [], [], []
    for _ in range(repeat):
        for threads, runs in (("1", kernel), ("2", pair)):
            out = subprocess.run([str(binary), str(data), threads], check=True, capture_output=True)
            runs.append(json.loads(out.stdout))
        code = [sys.executable, str(Path(__file__).resolve()), "--ordering", str(path)]
        ours.append(json.loads(subprocess.run(code, check=True, capture_output=True).stdout))
        ours[-1]["summary_s"] = _fidele(path)
        print(json.dumps({"kernel": kernel[-1], "two_threads": pair[-1], "fidele": ours[-1]}))
    same = all(
        k["customers"] == o["customers"] and k["sums"] == o["sums"]
        for k, o in zip(kernel + pair, ours + ours, strict=True)
    )
    print(f"{SHAPE}, {kernel[0]['rows']:,} rows, {kernel[0]['customers']:,} customers")
    hashing, grouping = _median(kernel, "hash_s"), _median(kernel, "group_s")
    print(f"  kernel: hash {hashing:.3f} s + group {grouping:.3f} s")
    print(f"  grouping on two threads (rows split by hash): {_median(pair, 'group_s'):.3f} s")
    print(f"  then the ids in order (a polars sort): {_median(ours, 'order_s'):.3f} s")
    print(f"  fidele's summary now (`analytics clv`): {_median(ours, 'summary_s'):.3f} s")
    print(f"  the same customers and figures as fidele's (summed per figure): {same}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--ordering"]:
        print(json.dumps(_ordering(Path(sys.argv[2]))))
    else:
        args = [a for a in sys.argv[1:] if not a.startswith("--")]
        repeat = 3
        if "--repeat" in sys.argv:
            repeat = int(sys.argv[sys.argv.index("--repeat") + 1])
            args.remove(str(repeat))
        main(int(args[0]) if args else 1_000_000, repeat)
