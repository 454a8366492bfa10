"""What a check decides: observations, invariants, findings, a cluster's settings (pure)."""
