"""Prometheus metrics of the operator."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter(
    "pipeline_operator_reconciles_total", "Reconciles of InferencePipelines.", ["result"]
)
RECONCILE_SECONDS = Histogram(
    "pipeline_operator_reconcile_duration_seconds",
    "Time spent in one reconcile.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter(
    "pipeline_operator_reconcile_errors_total", "Reconciles that failed.", ["reason"]
)
API_WRITES = Counter(
    "pipeline_operator_api_writes_total", "Writes sent to the Kubernetes API.", ["verb", "kind"]
)
ROLLOUT_STEP = Gauge(
    "pipeline_operator_rollout_step",
    "Current canary step index (-1: no rollout).",
    ["namespace", "pipeline"],
)
TRAFFIC_WEIGHT = Gauge(
    "pipeline_operator_traffic_weight",
    "Traffic weight per revision, in percent.",
    ["namespace", "pipeline", "revision"],
)
PHASE = Gauge(
    "pipeline_operator_pipeline_phase",
    "1 for the pipeline's current phase, 0 otherwise.",
    ["namespace", "pipeline", "phase"],
)


def start_server(port: int) -> None:
    """Serve /metrics on ``port`` (all interfaces) from a background thread."""
    start_http_server(port)
