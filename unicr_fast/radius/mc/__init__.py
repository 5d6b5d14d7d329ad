"""Monte Carlo radius engine: noise sample sets, tie-aware thresholds and the direction search
(docs/theory.md section 5)."""
