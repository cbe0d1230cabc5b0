"""Every reconcile is a span and a metric sample, also when it fails (a stand-in client)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from pipeline_operator.reconcile import Reconciler
from pipeline_operator.settings import OperatorSettings


class StandInKube:
    """Answers get_pipeline only: absent, or an API failure."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.error is not None:
            raise self.error
        return None


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_reconcile_is_a_span_and_counted(spans: InMemorySpanExporter) -> None:
    before = sample("pipeline_operator_reconciles_total", result="ok")
    reconciler = Reconciler(StandInKube(), OperatorSettings())  # type: ignore[arg-type]
    assert reconciler.reconcile("ml", "gone") is None
    assert sample("pipeline_operator_reconciles_total", result="ok") == before + 1
    span = next(
        s for s in spans.get_finished_spans() if s.attributes.get("pipeline.name") == "gone"
    )
    assert span.name == "reconcile"
    assert span.attributes["k8s.namespace.name"] == "ml"


def test_a_failed_reconcile_records_the_error(spans: InMemorySpanExporter) -> None:
    before = sample("pipeline_operator_reconcile_errors_total", reason="TimeoutError")
    reconciler = Reconciler(StandInKube(TimeoutError("apiserver")), OperatorSettings())  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        reconciler.reconcile("ml", "broken")
    assert sample("pipeline_operator_reconcile_errors_total", reason="TimeoutError") == before + 1
    span = next(
        s for s in spans.get_finished_spans() if s.attributes.get("pipeline.name") == "broken"
    )
    assert [e.name for e in span.events] == ["exception"]
