"""The model server's command line and start-up, shared by every data-plane stage.

Every server's parser extends KServe's own (``kserve.model_server.parser``: ``--http_port``,
``--model_name``, ``--predictor_host``, ...) with the flags below. Nothing is parsed at import
time: each ``__main__`` builds its parser and parses inside ``main()``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import Iterator, Sequence

from kserve import ModelServer
from kserve import model_server as kserve_model_server
from kserve.logging import KSERVE_TRACE_LOGGER_NAME
from kserve.predictor_config import PredictorConfig

from pipeline_serving.content_type import JsonUnlessBinary
from pipeline_serving.errors import add_upstream_handlers
from pipeline_serving.observability import (
    DEFAULT_MAX_INSTANCES,
    REVISION_ENV,
    TRACE_EXPORTERS,
    ObservedModel,
    configure_tracing,
)

DEFAULT_MODEL_DIR = "/mnt/models"


def str2bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def non_negative_int(value: str) -> int:
    stripped = value.strip()
    if not (stripped.isascii() and stripped.isdigit()):
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {value!r}")
    return int(stripped)


def stage_parser(description: str) -> argparse.ArgumentParser:
    """KServe's parser plus revision, tracing and request-limit flags."""
    parser = argparse.ArgumentParser(
        description=description,
        parents=[kserve_model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    group = parser.add_argument_group("pipeline stage")
    group.add_argument(
        "--revision",
        default=os.environ.get(REVISION_ENV) or None,
        help="Pipeline revision this stage serves, stamped into responses and metrics (env "
        f"{REVISION_ENV}, which the operator sets).",
    )
    group.add_argument(
        "--trace_exporter",
        choices=TRACE_EXPORTERS,
        default=os.environ.get("PIPELINE_TRACE_EXPORTER", "none"),
        help="Where finished spans go (env PIPELINE_TRACE_EXPORTER); traceparent is "
        "propagated whatever the exporter.",
    )
    group.add_argument(
        "--trace_file",
        default=os.environ.get("PIPELINE_TRACE_FILE") or None,
        help="JSON-lines span file for --trace_exporter file (env PIPELINE_TRACE_FILE).",
    )
    group.add_argument(
        "--access_log",
        type=str2bool,
        default=str2bool(os.environ.get("PIPELINE_ACCESS_LOG", "false")),
        help="One access-log line per request (env PIPELINE_ACCESS_LOG); requests are counted "
        "and timed in the metrics either way.",
    )
    group.add_argument(
        "--max_instances",
        type=non_negative_int,
        default=DEFAULT_MAX_INSTANCES,
        help="Most instances in one request; more are refused with a 400. 0: no cap.",
    )
    # Per-request log lines cost more than a hop may: KServe's latency lines are opt-in here.
    parser.set_defaults(enable_latency_logging=False)
    return parser


def use_event_loop(choice: str) -> None:
    """Make KServe's ``--event-loop`` choice effective.

    KServe's ``ModelServer.start`` runs its servers with ``asyncio.run``, which ignores the
    loop named in uvicorn's config; the event-loop policy is what ``asyncio.run`` follows.
    ``auto`` is uvloop when it is installed (KServe's ``uvicorn[standard]`` brings it).
    """
    if choice == "asyncio":
        return
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return
    policy = uvloop.EventLoopPolicy()
    asyncio.set_event_loop_policy(policy)
    # KServe's setup_event_loop() asks for the current loop before asyncio.run makes its own;
    # asyncio's default policy creates one on demand, uvloop's does not.
    asyncio.set_event_loop(policy.new_event_loop())


def quiet_request_logs(access_log: bool, latency_logging: bool) -> None:
    """Silence the per-request log lines that are not asked for: uvicorn's access log, and
    KServe's request timings (its latency lines and its timing middleware's, on one logger)."""
    if not access_log:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    if not latency_logging:
        logging.getLogger(KSERVE_TRACE_LOGGER_NAME).setLevel(logging.WARNING)


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep what loading made out of the garbage collector's way while the body runs.

    torch, transformers and a model leave about half a million long-lived objects; a full
    collection walks them all and stalls serving for most of a second, every few thousand
    requests. Frozen, they are not walked again until the body is done (then they are, so
    that what is torn down at exit is collected as usual).
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def serve(args: argparse.Namespace, models: Sequence[ObservedModel], service_name: str) -> None:
    """Configure tracing, the event loop, logging, request limits, the statuses of upstream
    failures and v2 JSON bodies without a Content-Type, and run KServe's model server."""
    configure_tracing(service_name, args.trace_exporter, args.trace_file)
    use_event_loop(args.event_loop)
    for model in models:
        model.max_instances = args.max_instances
    # KServe's REST server serves this application; it adds its own handlers when it starts.
    add_upstream_handlers(kserve_model_server.app)
    kserve_model_server.app.add_middleware(JsonUnlessBinary)
    server = ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        predictor_config=predictor_config(args),
    )
    # After ModelServer: it configures KServe's logging (levels included) when it is built.
    quiet_request_logs(args.access_log, args.enable_latency_logging)
    with frozen_heap():
        server.start(list(models))


def predictor_config(args: argparse.Namespace) -> PredictorConfig:
    """Where a transformer calls its predictor (KServe's ``--predictor_*`` flags)."""
    if args.predictor_request_retries < 0:
        raise ValueError(
            f"--predictor_request_retries must be 0 or more, got {args.predictor_request_retries}"
        )
    protocol = args.predictor_protocol
    if protocol == "v1" and args.protocol != "v1":  # the deprecated --protocol flag
        protocol = args.protocol
    return PredictorConfig(
        predictor_host=args.predictor_host,
        predictor_protocol=protocol,
        predictor_use_ssl=args.predictor_use_ssl,
        predictor_request_timeout_seconds=args.predictor_request_timeout_seconds,
        predictor_request_retries=args.predictor_request_retries,
        predictor_health_check=args.enable_predictor_health_check,
    )
