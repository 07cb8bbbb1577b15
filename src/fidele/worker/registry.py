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
# Work every worker process drains continuously, side by side with the other processes (its
# claims are disjoint, e.g. ``FOR UPDATE SKIP LOCKED``): ``fn(factory, now) -> int`` does what
# is due by ``now`` and returns how much it did (0: idle). No lease: all processes share it.
LoopFn = Callable[[Any, datetime], int]
loops: dict[str, LoopFn] = {}


def job(name: str, every: timedelta, *, standalone: bool = False) -> Callable[[JobFn], JobFn]:
    def register(fn: JobFn) -> JobFn:
        jobs[name] = Job(name, every, fn, standalone)
        return fn

    return register


def continuous(name: str) -> Callable[[LoopFn], LoopFn]:
    def register(fn: LoopFn) -> LoopFn:
        loops[name] = fn
        return fn

    return register


def load_loops() -> dict[str, LoopFn]:
    load_everything()
    return loops


def load_jobs() -> dict[str, Job]:
    load_everything()
    return jobs
