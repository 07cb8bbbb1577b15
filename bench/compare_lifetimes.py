"""Same data, same parameters as lifetimes? (dev-only; `pip install lifetimes`)

Generates the bench shop (bench/_shop.py), summarises it with fidele and with lifetimes
(freq='D', freq_multiplier=7), fits BG/NBD and Gamma-Gamma with both and compares summaries,
parameters, log-likelihoods, P(alive), expected purchases and 12-month CLV (lifetimes told
the model is weekly).
Exit status 1 if a relative difference exceeds the tolerance (1e-3).

    .venv/bin/python bench/compare_lifetimes.py [n_customers] [seed]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from _lifetimes_compat import load, summarise  # noqa: E402
from _shop import END, shop  # noqa: E402

from fidele.analytics.bgnbd import BGNBDParams, bgnbd_log_likelihood, fit_bgnbd  # noqa: E402
from fidele.analytics.clv import score  # noqa: E402
from fidele.analytics.gammagamma import fit_gamma_gamma  # noqa: E402
from fidele.analytics.summary import summary  # noqa: E402

TOL = 1e-3


def lifetimes_side(frame: pl.DataFrame):  # type: ignore[no-untyped-def]
    lifetimes, _ = load()
    pdf = frame.with_columns(pl.col("date").dt.replace_time_zone(None)).to_pandas()
    data = summarise(pdf, str(END))
    bgf = lifetimes.BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])
    rep = data[data["frequency"] > 0]
    ggf = lifetimes.GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    f, r, t = data["frequency"], data["recency"], data["T"]
    preds = {
        "p_alive": bgf.conditional_probability_alive(f, r, t),
        "expected_purchases": bgf.conditional_expected_number_of_purchases_up_to_time(
            90 / 7, f, r, t
        ),
        "clv": ggf.customer_lifetime_value(
            bgf, f, r, t, data["monetary_value"], time=12, discount_rate=0.01, freq="W"
        ),
    }
    return data, bgf, ggf, preds


def rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def main(n: int, seed: int) -> int:
    frame = shop(n, seed=seed)
    ours = summary(frame, observation_end=END, time_unit="weeks", interpurchase=False)
    data, bgf, ggf, preds = lifetimes_side(frame)
    checks = {}
    for col in ("frequency", "recency", "T", "monetary_value"):
        checks[f"summary.{col}"] = rel(ours[col].to_numpy(), data[col].to_numpy())
    bg, gg = fit_bgnbd(ours), fit_gamma_gamma(ours)
    for name in ("r", "alpha", "a", "b"):
        checks[f"bgnbd.{name}"] = rel(getattr(bg.params, name), bgf.params_[name])
    for name in ("p", "q", "v"):
        checks[f"gamma_gamma.{name}"] = rel(getattr(gg.params, name), ggf.params_[name])
    # lifetimes reports its likelihood on rescaled time: evaluate both optima on one scale
    theirs = BGNBDParams(*(float(bgf.params_[k]) for k in ("r", "alpha", "a", "b")))
    at_theirs = bgnbd_log_likelihood(
        theirs, *(data[c].to_numpy() for c in ("frequency", "recency", "T"))
    )
    checks["bgnbd.log_likelihood"] = rel(bg.log_likelihood, at_theirs.sum())
    scores = score(ours, bg.params, gg.params, time_unit="weeks", horizon_days=90)
    for col, theirs in preds.items():
        checks[f"score.{col}"] = rel(scores[col].to_numpy(), np.asarray(theirs))
    worst = 0.0
    print(f"{n} customers, seed {seed}: max relative difference fidele vs lifetimes")
    for key, value in checks.items():
        flag = "" if value <= TOL else "  <-- over 1e-3"
        print(f"  {key:32s} {value:.2e}{flag}")
        worst = max(worst, value)
    return 0 if worst <= TOL else 1


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    sys.exit(main(args[0] if args else 100_000, args[1] if len(args) > 1 else 0))
