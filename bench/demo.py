"""The demo shop's build time on a scratch SQLite file: the bulk build (the demo's path) and,
with ``--reference``, the step-by-step path through the online services (what the demo did
before), each then with the first round of the scheduled jobs (what ``fidele demo`` runs
before serving). Prints wall and CPU seconds per phase, and the machine load.

Usage:
    .venv/bin/python bench/demo.py [--customers 5000] [--seed 42] [--reference]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from fidele.db.engine import make_engine
from fidele.db.migrate import upgrade
from fidele.db.session import make_sessionmaker
from fidele.demo import service
from fidele.kit.clock import SystemClock


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reference", action="store_true", help="the step-by-step path")
    args = parser.parse_args()
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'demo.db'}")
        upgrade(engine)
        factory = make_sessionmaker(engine)
        print(f"load before: {_load()}")
        wall, cpu = time.perf_counter(), time.process_time()
        shop = service.build(
            factory,
            seed=args.seed,
            n_customers=args.customers,
            now=clock.now(),
            server_secret="bench-secret-key",
            reference=args.reference,
        )
        built = time.perf_counter() - wall, time.process_time() - cpu
        service.settle(factory, clock)
        total = time.perf_counter() - wall, time.process_time() - cpu
        path = "step by step (reference)" if args.reference else "bulk"
        print(f"{path}, {args.customers} customers: {shop.counts}")
        print(f"build: {built[0]:.1f} s wall, {built[1]:.1f} s CPU")
        print(f"build + jobs' first round: {total[0]:.1f} s wall, {total[1]:.1f} s CPU")
        print(f"load after: {_load()}")
        engine.dispose()


if __name__ == "__main__":
    main()
