"""Prometheus metrics of the operator."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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


class PipelineGauges(Collector):
    """Each pipeline's rollout step, traffic weights and phase, kept as one small record per
    pipeline and turned into gauges when Prometheus scrapes (a labelled Gauge child per series,
    nine a pipeline, costs about 5 KiB per pipeline held for ever). Thread-safe: reconciles
    export from worker threads, the HTTP server scrapes from its own."""

    def __init__(self) -> None:
        self._pipelines: dict[tuple[str, str], tuple[int, tuple[tuple[str, int], ...], str]] = {}

    def export(
        self, namespace: str, name: str, step: int, traffic: dict[str, int], phase: str
    ) -> None:
        self._pipelines[(namespace, name)] = (step, tuple(traffic.items()), phase)

    def forget(self, namespace: str, name: str) -> None:
        self._pipelines.pop((namespace, name), None)

    def exported(self) -> list[tuple[str, str]]:
        return list(self._pipelines)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pipeline = ["namespace", "pipeline"]
        steps = GaugeMetricFamily(
            "pipeline_operator_rollout_step",
            "Current canary step, counted from 1 as in status.message (0: no rollout).",
            labels=pipeline,
        )
        weights = GaugeMetricFamily(
            "pipeline_operator_traffic_weight",
            "Traffic weight per revision, in percent.",
            labels=[*pipeline, "revision"],
        )
        phases = GaugeMetricFamily(
            "pipeline_operator_pipeline_phase",
            "1 for the pipeline's current phase, 0 otherwise.",
            labels=[*pipeline, "phase"],
        )
        for (namespace, name), (step, traffic, phase) in list(self._pipelines.items()):
            steps.add_metric([namespace, name], step)
            for revision, weight in traffic:
                weights.add_metric([namespace, name, revision], weight)
            for value in PHASES:
                phases.add_metric([namespace, name, value], int(phase == value))
        yield from (steps, weights, phases)


PIPELINES = PipelineGauges()
REGISTRY.register(PIPELINES)


def start_server(port: int) -> None:
    """Serve /metrics on ``port`` (all interfaces) from a background thread."""
    start_http_server(port)


def export_pipeline(
    namespace: str, name: str, step_index: int | None, traffic: dict[str, int], phase: str | None
) -> None:
    """Set a pipeline's gauges (the step counted from 1); revisions that left its traffic are
    dropped, not left stale."""
    step = 0 if step_index is None else step_index + 1
    PIPELINES.export(namespace, name, step, traffic, phase or "")


def forget_pipeline(namespace: str, name: str) -> None:
    """Drop every series of a pipeline that no longer exists."""
    PIPELINES.forget(namespace, name)


def forget_pipelines() -> None:
    """Drop every pipeline's series: a standby exports none (the leader does), so a replica
    that stops leading leaves no stale figures behind."""
    for namespace, name in PIPELINES.exported():
        forget_pipeline(namespace, name)
