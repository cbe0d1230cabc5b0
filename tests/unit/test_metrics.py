"""Per-pipeline gauges follow the pipeline: no stale series for revisions or pipelines gone."""

from __future__ import annotations

from prometheus_client import REGISTRY

from pipeline_operator.telemetry import metrics


def weight(revision: str) -> float | None:
    return REGISTRY.get_sample_value(
        "pipeline_operator_traffic_weight",
        {"namespace": "ns", "pipeline": "clf", "revision": revision},
    )


def phase(value: str) -> float | None:
    return REGISTRY.get_sample_value(
        "pipeline_operator_pipeline_phase", {"namespace": "ns", "pipeline": "clf", "phase": value}
    )


def test_revisions_that_leave_traffic_are_dropped() -> None:
    metrics.export_pipeline("ns", "clf", 1, {"a": 90, "b": 10}, "Progressing")
    assert (weight("a"), weight("b")) == (90.0, 10.0)
    assert phase("Progressing") == 1.0
    assert phase("Healthy") == 0.0
    metrics.export_pipeline("ns", "clf", None, {"b": 100}, "Healthy")
    assert weight("a") is None
    assert weight("b") == 100.0
    assert phase("Healthy") == 1.0


def step() -> float | None:
    return REGISTRY.get_sample_value(
        "pipeline_operator_rollout_step", {"namespace": "ns", "pipeline": "clf"}
    )


def test_the_step_counts_from_1_as_the_status_message_does() -> None:
    metrics.export_pipeline("ns", "clf", 1, {"a": 90, "b": 10}, "Paused")  # index 1: step 2/n
    assert step() == 2.0
    metrics.export_pipeline("ns", "clf", None, {"b": 100}, "Healthy")
    assert step() == 0.0


def test_a_deleted_pipeline_leaves_no_series() -> None:
    metrics.export_pipeline("ns", "clf", 0, {"a": 100}, "Healthy")
    metrics.forget_pipeline("ns", "clf")
    assert weight("a") is None
    assert phase("Healthy") is None
    metrics.forget_pipeline("ns", "clf")  # twice is fine
