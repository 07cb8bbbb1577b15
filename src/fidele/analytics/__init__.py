"""Customer knowledge: summaries, RFM, BG/NBD and Gamma-Gamma CLV, cadence, engagement,
cohorts and the shop's KPIs, as frame-in/frame-out functions (polars, numpy, scipy)."""
