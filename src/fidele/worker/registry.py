"""Scheduled jobs. A domain declares its jobs in its ``tasks.py``::

    @job("loyalty.release_pending", every=timedelta(minutes=5))
    def release_pending(session, now) -> int: ...

A job gets a session (its own transaction, committed by the runner) and the time; it returns
how many things it did (for logs) and must be safe to run again. A job that manages its own
short transactions (the outbox) is declared with ``standalone=True`` and gets the session
factory instead of a session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fidele.kit.plugins import load_everything

JobFn = Callable[[Any, datetime], int | None]


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    fn: JobFn
    standalone: bool = False


jobs: dict[str, Job] = {}


def job(name: str, every: timedelta, *, standalone: bool = False) -> Callable[[JobFn], JobFn]:
    def register(fn: JobFn) -> JobFn:
        jobs[name] = Job(name, every, fn, standalone)
        return fn

    return register


def load_jobs() -> dict[str, Job]:
    load_everything()
    return jobs
