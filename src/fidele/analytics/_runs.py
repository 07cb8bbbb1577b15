"""The per-customer summary's kernel: run lengths over transactions sorted by customer and day.

Hash group-bys on (customer, day) then on customer spent ~2 s on 6M rows with string keys
(almost one group per row in the first stage). Sorted by customer and day, every figure is a
reduction over runs: customers and purchase days are the places where the key changes, so
one pass with numpy's ``reduceat``/``bincount`` gives them (~0.3 s). Order exports are
usually sorted already (checked in one pass); otherwise the frame is sorted first. The gaps
between purchase days fall out of the same runs, so the interpurchase statistics need no
extra sort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["CustomerRuns", "customer_runs"]


@dataclass(frozen=True)
class CustomerRuns:
    """Per customer (sorted by customer): integer day numbers since 1970-01-01 and sums."""

    customers: pl.Series
    first: np.ndarray  # first purchase day
    last: np.ndarray  # last purchase day
    n_orders: np.ndarray  # transactions
    days: np.ndarray  # distinct purchase days
    total: np.ndarray  # summed amount
    first_amount: np.ndarray  # summed amount of the first purchase day
    gap_sq: np.ndarray  # sum of squared gaps between purchase days (days^2)


def customer_runs(frame: pl.DataFrame, customer_col: str) -> CustomerRuns:
    """Reduce ``frame`` (``customer_col``, ``day`` Int32 and ``amount``, no null amount) to
    one entry per customer."""
    flags = _flags(frame, customer_col)
    if not _is_sorted(frame, flags, customer_col):
        frame = frame.sort(customer_col, "day")
        flags = _flags(frame, customer_col)
    n = frame.height
    new_c = flags.get_column(customer_col).to_numpy()
    new_d = new_c | flags.get_column("__new_day").to_numpy()
    day = frame.get_column("day").to_numpy().astype(np.int64)
    amount = frame.get_column("amount").to_numpy()
    cs, ds = np.flatnonzero(new_c), np.flatnonzero(new_d)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return CustomerRuns(frame.get_column(customer_col), *[empty] * 5, amount[:0], empty)
    run_day, first_run = day[ds], np.flatnonzero(new_c[ds])  # per purchase day; customer starts
    day_amount = np.add.reduceat(amount, ds)
    return CustomerRuns(
        customers=frame.get_column(customer_col).gather(cs),
        first=day[cs],
        last=day[np.append(cs[1:], n) - 1],
        n_orders=np.diff(np.append(cs, n)),
        days=np.diff(np.append(first_run, ds.size)),
        total=np.add.reduceat(amount, cs),
        first_amount=day_amount[first_run],
        gap_sq=_gap_squares(run_day, first_run),
    )


def _gap_squares(run_day: np.ndarray, first_run: np.ndarray) -> np.ndarray:
    """Sum over each customer of (gap between consecutive purchase days)^2, in int64 (exact):
    the squared day-to-day differences with each customer's first day zeroed, summed over the
    customer's runs."""
    sq = np.empty_like(run_day)
    sq[0] = 0
    np.subtract(run_day[1:], run_day[:-1], out=sq[1:])
    sq *= sq
    sq[first_run] = 0
    return np.add.reduceat(sq, first_run)


def _flags(frame: pl.DataFrame, customer_col: str) -> pl.DataFrame:
    """Where a customer starts, where a purchase day starts (both null-aware) and where the day
    goes back within a customer (the frame is then not sorted)."""
    new_c = pl.col(customer_col).ne_missing(pl.col(customer_col).shift(1)).fill_null(True)
    return frame.select(
        new_c,
        pl.col("day").ne_missing(pl.col("day").shift(1)).fill_null(True).alias("__new_day"),
        ((pl.col("day") < pl.col("day").shift(1)) & ~new_c).any().alias("__back"),
    )


def _is_sorted(frame: pl.DataFrame, flags: pl.DataFrame, customer_col: str) -> bool:
    """Sorted by customer then day: one O(n) check, reusing the flags."""
    return not flags.get_column("__back")[0] and frame.get_column(customer_col).is_sorted()
