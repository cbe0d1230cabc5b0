"""Metric providers the rollout engine's analysis steps query (Prometheus)."""
