"""Every reconcile is a span and a metric sample, also when it fails (a stand-in client)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, NoReturn

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from pipeline_operator.api.v1alpha1 import API_VERSION, KIND
from pipeline_operator.controller.reconcile import Reconciler
from pipeline_operator.k8s.cache import World
from pipeline_operator.settings import OperatorSettings
from tests.unit.fake_kube import FakeKube


class FailingKube:
    """Every write fails as an unreachable apiserver does."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> NoReturn:
            raise TimeoutError("apiserver")

        return fail


PIPELINE = {
    "apiVersion": API_VERSION,
    "kind": KIND,
    "metadata": {"name": "broken", "namespace": "ml", "uid": "u1", "generation": 1},
    "spec": {"stages": [{"name": "m", "predictor": {"container": {"image": "model:1"}}}]},
}


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
    reconciler = Reconciler(FailingKube(), OperatorSettings())  # type: ignore[arg-type]
    assert asyncio.run(reconciler.reconcile("ml", "gone", lambda: World(pipeline=None))) is None
    assert sample("pipeline_operator_reconciles_total", result="ok") == before + 1
    span = next(
        s for s in spans.get_finished_spans() if s.attributes.get("pipeline.name") == "gone"
    )
    assert span.name == "reconcile"
    assert span.attributes["k8s.namespace.name"] == "ml"


def test_a_failed_reconcile_records_the_error(spans: InMemorySpanExporter) -> None:
    before = sample("pipeline_operator_reconcile_errors_total", reason="TimeoutError")
    reconciler = Reconciler(FailingKube(), OperatorSettings())  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        asyncio.run(reconciler.reconcile("ml", "broken", lambda: World(pipeline=PIPELINE)))
    assert sample("pipeline_operator_reconcile_errors_total", reason="TimeoutError") == before + 1
    span = next(
        s for s in spans.get_finished_spans() if s.attributes.get("pipeline.name") == "broken"
    )
    assert [e.name for e in span.events] == ["exception"]


def test_reconciles_waiting_for_a_slot_have_not_observed_their_view_yet() -> None:
    """A burst of reconciles (a start, a handover) waits for the write slots holding nothing
    but their packed views: only those holding a slot have opened and observed theirs."""
    kube = FakeKube({**PIPELINE, "metadata": {**PIPELINE["metadata"], "name": "clf"}})
    reconciler = Reconciler(kube, OperatorSettings(workers=1))  # type: ignore[arg-type]
    observed: list[str] = []
    observe, act = reconciler.observe, reconciler.act
    gate = threading.Event()

    def counting(world: World) -> Any:
        observed.append("observed")
        return observe(world)

    def held(outcome: Any) -> Any:
        assert gate.wait(10)
        return act(outcome)

    reconciler.observe, reconciler.act = counting, held  # type: ignore[method-assign]

    async def burst() -> None:
        reconciles = [
            asyncio.create_task(reconciler.reconcile("ml", "clf", kube.world)) for _ in range(5)
        ]
        await asyncio.sleep(0.3)
        assert observed == ["observed"]  # the one in its slot, waiting on its writes
        gate.set()
        await asyncio.gather(*reconciles)
        assert len(observed) == 5

    asyncio.run(burst())
