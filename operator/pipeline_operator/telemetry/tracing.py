"""OpenTelemetry tracing: spans around reconciles, exported when configured.

Exports over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-specific variable) is
set, to the console when ``OTEL_TRACES_EXPORTER=console``; otherwise spans are created but not
exported.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

SERVICE_NAME = "inference-pipelines-operator"


def configure() -> None:
    """Install a tracer provider with the exporter the environment asks for."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    exporter = _exporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _exporter() -> SpanExporter | None:
    if os.environ.get("OTEL_TRACES_EXPORTER") == "console":
        return ConsoleSpanExporter()
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


tracer = trace.get_tracer("pipeline_operator")
