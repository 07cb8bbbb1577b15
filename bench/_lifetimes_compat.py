"""Import lifetimes (unmaintained since 2020) on today's numpy/scipy/pandas, quietly.

lifetimes 0.11.3 imports and runs on numpy 2.4 / scipy 1.17 / pandas 3.1 as is (checked in the
bench run); only its deprecation warnings are silenced here. Dev-only: never imported by
fidele itself."""

from __future__ import annotations

import warnings


def load():  # type: ignore[no-untyped-def]
    warnings.simplefilter("ignore")
    import lifetimes
    from lifetimes.utils import summary_data_from_transaction_data

    return lifetimes, summary_data_from_transaction_data


def summarise(frame, end: str):  # type: ignore[no-untyped-def]
    """lifetimes' summary as the published BG/NBD results count it: days, weeks = days / 7."""
    _, summary_data_from_transaction_data = load()
    return summary_data_from_transaction_data(
        frame,
        "customer_id",
        "date",
        monetary_value_col="amount",
        observation_period_end=end,
        freq="D",
        freq_multiplier=7,
    )
