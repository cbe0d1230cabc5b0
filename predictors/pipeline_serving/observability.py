"""Metrics, traces and request guards shared by every data-plane stage (predictors and
transformers).

Metrics go to prometheus-client's default registry, which KServe's model server already
serves on ``GET /metrics`` next to its own ``request_{preprocess,predict,postprocess}_seconds``
histograms. Spans go to an OpenTelemetry SDK tracer provider; the W3C ``traceparent`` of an
incoming request becomes the parent of the stage's server span, and outgoing calls carry the
current span's ``traceparent`` (see :func:`inject_trace_headers`).
"""

from __future__ import annotations

import collections
import inspect
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kserve import Model
from kserve.errors import InferenceError, InvalidInput
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferRequest
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Histogram

from pipeline_serving.codecs import check_requested_outputs, instance_count, non_finite_output
from pipeline_serving.errors import UpstreamError, UpstreamInvalidInput

TRACER_NAME = "inference-pipelines.dataplane"
TRACE_EXPORTERS = ("none", "console", "file", "otlp")

# Every series says which pipeline, stage and revision it measures (the operator gives each
# container INFERENCE_PIPELINE, INFERENCE_PIPELINE_STAGE and INFERENCE_PIPELINE_REVISION), and
# which component of the stage (predictor, transformer, aggregator, ...) and model served it.
IDENTITY = ["pipeline", "stage", "revision", "component", "model"]
REQUESTS = Counter(
    "pipeline_stage_requests_total",
    "Requests handled by a data-plane stage, by outcome (ok, invalid_input, upstream: the "
    "next stage failed, internal).",
    [*IDENTITY, "protocol", "outcome"],
)
LATENCY = Histogram(
    "pipeline_stage_request_duration_seconds",
    "Time a data-plane stage spends on one request (pre-process, predict, post-process).",
    [*IDENTITY, "protocol"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_SIZE = Histogram(
    "pipeline_stage_batch_size",
    "Instances per dynamic batch (one forward pass per length bucket of it).",
    IDENTITY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
ERRORS = Counter(
    "pipeline_stage_errors_total",
    "Failed requests of a data-plane stage, by kind (invalid_input, upstream, internal).",
    [*IDENTITY, "kind"],
)
PREDICTIONS = Counter(
    "pipeline_stage_predictions_total",
    "Predictions a classifier made, by predicted label: each revision's label mix, to "
    "compare a canary's with the stable's.",
    [*IDENTITY, "label"],
)
PIPELINE_ENV = "INFERENCE_PIPELINE"
STAGE_ENV = "INFERENCE_PIPELINE_STAGE"
REVISION_ENV = "INFERENCE_PIPELINE_REVISION"
DEFAULT_MAX_INSTANCES = 1024


class JsonLinesSpanExporter(SpanExporter):
    """Writes one JSON object per finished span to a file (for tests and local debugging)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_record(span)) for span in spans]
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A flat, JSON-friendly view of a finished span (ids in hex, as in ``traceparent``)."""
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "service": span.resource.attributes.get("service.name"),
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
    }


def configure_tracing(
    service_name: str, exporter: str = "none", trace_file: str | None = None
) -> TracerProvider | None:
    """Install the global tracer provider for this process and return it.

    ``exporter``: ``console``, ``file`` (JSON lines to ``trace_file``) or ``otlp`` (needs
    ``opentelemetry-exporter-otlp``; configured by the standard ``OTEL_EXPORTER_OTLP_*``
    environment variables). ``none`` installs no provider: spans that nothing would export are
    not recorded (neither this stage's nor FastAPI's own HTTP spans, which it only opens under
    a configured provider), and the incoming ``traceparent`` passes through unchanged to the
    next stage, so a trace stays whole across a stage that does not export.
    """
    if exporter == "none":
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "file":
        if not trace_file:
            raise ValueError("the file trace exporter needs --trace_file")
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(trace_file)))
    elif exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        except ImportError as exc:
            raise ValueError(
                "the otlp trace exporter needs the opentelemetry-exporter-otlp package"
            ) from exc
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        raise ValueError(f"unknown trace exporter {exporter!r}; one of {TRACE_EXPORTERS}")
    trace.set_tracer_provider(provider)
    return provider


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def inject_trace_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add the current span's W3C trace context (``traceparent``, ``tracestate``) to headers."""
    propagate.inject(headers)
    return headers


def request_protocol(body: object) -> str:
    return "v2" if isinstance(body, InferRequest) else "v1"


class ObservedModel(Model):  # type: ignore[misc]
    """A ``kserve.Model`` whose every request is counted, timed, traced and guarded.

    The server span's parent is the incoming ``traceparent``; the span stays current while
    pre-process, predict and post-process run, so outgoing calls made from them (with
    :func:`inject_trace_headers`) continue the same trace. A request of more than
    ``max_instances`` instances (0: no cap), or a v2 request for an output that the model's
    metadata (``get_output_types``) does not list, is refused before any work, and a response
    with a NaN or an infinity in it is an ``InferenceError`` (500), never an answer with nulls.
    """

    stage_kind = "predictor"

    def __init__(self, name: str, revision: str | None = None) -> None:
        super().__init__(name)
        self.revision = revision
        self.max_instances = DEFAULT_MAX_INSTANCES
        self.identity = (
            os.environ.get(PIPELINE_ENV, ""),
            os.environ.get(STAGE_ENV, ""),
            revision or "",
            self.stage_kind,
            name,
        )

    @property
    def lineage_key(self) -> str:
        """This stage's key in a response's ``revisions`` (model name and stage kind)."""
        return f"{self.name}/{self.stage_kind}"

    def observe_batch(self, size: int) -> None:
        BATCH_SIZE.labels(*self.identity).observe(size)

    def declare_labels(self, labels: Iterable[str]) -> None:
        """Export a zero for every label the model can predict, so each revision's label
        mix has every label from its first scrape (a query over two revisions matches)."""
        for label in labels:
            PREDICTIONS.labels(*self.identity, label)

    def count_predictions(self, labels: Iterable[str]) -> None:
        """Count each prediction under its label."""
        for label, count in collections.Counter(labels).items():
            PREDICTIONS.labels(*self.identity, label).inc(count)

    async def __call__(
        self,
        body: Any,
        headers: Mapping[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> Any:
        protocol = request_protocol(body)
        # Recent FastAPI versions open an HTTP server span themselves (from the incoming
        # traceparent); nest under it when present, else continue the caller's trace here.
        nested = trace.get_current_span().get_span_context().is_valid
        parent = otel_context.get_current() if nested else propagate.extract(dict(headers or {}))
        pipeline, stage, revision, component, model = self.identity
        attributes: dict[str, str] = {
            "pipeline.name": pipeline,
            "pipeline.stage": stage,
            "pipeline.component": component,
            "pipeline.model": model,
            "pipeline.protocol": protocol,
        }
        if revision:
            attributes["pipeline.revision"] = revision
        started = time.perf_counter()
        outcome = "ok"
        token = otel_context.attach(parent)
        try:
            with tracer().start_as_current_span(
                f"{self.stage_kind} {self.name}",
                kind=SpanKind.INTERNAL if nested else SpanKind.SERVER,
                attributes=attributes,
                record_exception=True,
                set_status_on_exception=True,
            ) as span:
                try:
                    self.check_instances(body)
                    self.check_outputs(body)
                    call = super().__call__(body, headers=headers, verb=verb)
                    result = await call if inspect.isawaitable(call) else call
                    self.check_finite(result[0])  # KServe answers (response, headers)
                    return result
                except UpstreamInvalidInput:
                    outcome = "upstream"  # counted where it happened, in the next stage
                    raise
                except InvalidInput as exc:
                    outcome = "invalid_input"
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                    raise
                except UpstreamError:
                    outcome = "upstream"
                    raise
                except Exception:
                    outcome = "internal"
                    raise
        finally:
            otel_context.detach(token)
            LATENCY.labels(*self.identity, protocol).observe(time.perf_counter() - started)
            REQUESTS.labels(*self.identity, protocol, outcome).inc()
            if outcome != "ok":
                ERRORS.labels(*self.identity, outcome).inc()

    def check_instances(self, body: object) -> None:
        """Refuse a request of more instances than ``max_instances`` (0: any number)."""
        count = instance_count(body)
        if self.max_instances and count > self.max_instances:
            raise InvalidInput(
                f"the request has {count} instances; this server takes at most "
                f"{self.max_instances} (--max_instances)"
            )

    def check_outputs(self, body: object) -> None:
        """Refuse a v2 request for an output that this model's metadata does not list."""
        if isinstance(body, InferRequest) and body.request_outputs:
            names = [tensor["name"] for tensor in self.get_output_types()]
            check_requested_outputs(body.request_outputs, names, self.name)

    def check_finite(self, response: object) -> None:
        """Fail a response that holds a NaN or an infinity, naming where."""
        where = non_finite_output(response)
        if where is not None:
            raise InferenceError(
                f"{self.stage_kind} {self.name} produced a non-finite output: {where}"
            )
