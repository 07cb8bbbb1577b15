"""A test-only job for the worker-process tests, loaded into ``fidele worker`` subprocesses
through ``FIDELE_EXTRA_MODULES=tests.worker.slow_job`` (never imported by the test process).

It writes ``start <pid>`` to ``$FIDELE_TEST_SLOW_FILE`` and then runs for a long time, so a test
can kill the worker holding its lease mid-job and watch which process takes it over."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from typing import Any

from fidele.worker.registry import job


@job("test.slow", every=timedelta(hours=1), standalone=True)
def slow(_factory: Any, _now: datetime) -> int:
    with open(os.environ["FIDELE_TEST_SLOW_FILE"], "a") as f:
        f.write(f"start {os.getpid()}\n")
    time.sleep(float(os.environ.get("FIDELE_TEST_SLOW_SECONDS", "120")))
    return 1
