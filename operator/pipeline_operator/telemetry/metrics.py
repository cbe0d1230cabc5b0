"""Prometheus metrics of the operator."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from pipeline_operator.api.v1alpha1 import Phase

PHASES = [phase.value for phase in Phase]

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
API_READS = Counter(
    "pipeline_operator_api_reads_total",
    "Reads sent to the Kubernetes API besides the watch streams (listing pages, pipeline reads).",
    ["verb", "kind"],
)
NOTIFICATIONS = Counter(
    "pipeline_operator_notifications_total",
    "Transitions sent to the pipelines' notification webhooks.",
    ["outcome"],
)
LEADER = Gauge(
    "pipeline_operator_leader", "1 while this replica holds the leader Lease (or runs alone)."
)
ROLLOUT_STEP = Gauge(
    "pipeline_operator_rollout_step",
    "Current canary step, counted from 1 as in status.message (0: no rollout).",
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


_exported_revisions: dict[tuple[str, str], set[str]] = {}


def export_pipeline(
    namespace: str, name: str, step_index: int | None, traffic: dict[str, int], phase: str | None
) -> None:
    """Set a pipeline's gauges (the step counted from 1); revisions that left its traffic are
    dropped, not left stale."""
    ROLLOUT_STEP.labels(namespace, name).set(0 if step_index is None else step_index + 1)
    for revision, weight in traffic.items():
        TRAFFIC_WEIGHT.labels(namespace, name, revision).set(weight)
    gone = _exported_revisions.get((namespace, name), set()) - traffic.keys()
    for revision in gone:
        TRAFFIC_WEIGHT.remove(namespace, name, revision)
    _exported_revisions[(namespace, name)] = set(traffic)
    for value in PHASES:
        PHASE.labels(namespace, name, value).set(int(phase == value))


def forget_pipeline(namespace: str, name: str) -> None:
    """Drop every series of a pipeline that no longer exists."""
    for revision in _exported_revisions.pop((namespace, name), set()):
        TRAFFIC_WEIGHT.remove(namespace, name, revision)
    with contextlib.suppress(KeyError):
        ROLLOUT_STEP.remove(namespace, name)
    for value in PHASES:
        with contextlib.suppress(KeyError):
            PHASE.remove(namespace, name, value)


def forget_pipelines() -> None:
    """Drop every pipeline's series: a standby exports none (the leader does), so a replica
    that stops leading leaves no stale figures behind."""
    for namespace, name in list(_exported_revisions):
        forget_pipeline(namespace, name)
