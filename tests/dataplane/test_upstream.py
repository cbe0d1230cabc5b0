"""Failures as local processes answer them: a transformer names its predictor's failures with
gateway statuses (502, 504; the predictor's 4xx as it was) and retries calls that did not get
through.

The transformer's predictor is a stand-in here (an aiohttp app in a thread of the test
process), told per test how to answer and counting the calls it gets, or a closed port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiohttp import web
from kserve.protocol.infer_type import InferRequest

from pipeline_serving.codecs import v2_response

from .conftest import Models
from .harness import Stage, free_port, stage, start_all

pytestmark = pytest.mark.dataplane

TIMEOUT = 30.0
HEADER = "inference-header-content-length"
TEXTS = ["the first text", "the second one"]


@dataclass
class StandIn:
    """A predictor that answers each call as the next entry of ``script`` says (logits once the
    script is done): ``503`` (an HTTP status, with a KServe error body), ``"sleep"`` (2 s,
    longer than the transformer waits), ``"drop"`` (closes the connection unanswered)."""

    script: list[int | str] = field(default_factory=list)
    calls: int = 0
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expect(self, *script: int | str) -> None:
        with self.lock:
            self.script, self.calls = list(script), 0

    async def infer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self.lock:
            self.calls += 1
            how = self.script.pop(0) if self.script else "logits"
        if isinstance(how, int):
            return web.json_response({"error": f"stand-in failure {how}"}, status=how)
        if how == "sleep":
            await asyncio.sleep(2.0)
        if how == "drop":
            assert request.transport is not None
            request.transport.close()
        decoded = InferRequest.from_bytes(body, int(request.headers[HEADER]), "clf")
        rows = decoded.inputs[0].shape[0]
        logits = np.tile(np.array([[0.5, -1.0, 2.0]], dtype=np.float32), (rows, 1))
        data, length = v2_response("clf", {"logits": logits}, decoded.id, binary=True).to_rest()
        return web.Response(body=data, headers={HEADER: str(length)})


@contextlib.contextmanager
def stand_in() -> Iterator[StandIn]:
    """Serve a :class:`StandIn` on a free port from its own event loop, in a thread."""
    predictor = StandIn()
    loop = asyncio.new_event_loop()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    predictor.port = sock.getsockname()[1]
    app = web.Application()
    app.router.add_post("/v2/models/{name}/infer", predictor.infer)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.SockSite(runner, sock).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield predictor
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@dataclass(frozen=True)
class Servers:
    predictor: StandIn
    transformer: Stage  # in front of the stand-in: 2 retries, 1 s timeout
    orphan: Stage  # in front of a closed port, 1 retry


@pytest.fixture(scope="module")
def servers(models: Models, log_dir: Path) -> Iterator[Servers]:
    common = ["--model_dir", str(models.model_r1), "--predictor_protocol", "v2"]
    with stand_in() as predictor:
        transformer = stage(
            "transformer-stand-in",
            "pipeline_transformers.tokenizer",
            [
                *common,
                "--predictor_host",
                f"127.0.0.1:{predictor.port}",
                "--predictor_request_retries",
                "2",
                "--predictor_request_timeout_seconds",
                "1",
            ],
            log_dir,
            model_name="clf",
        )
        orphan = stage(
            "transformer-orphan",
            "pipeline_transformers.tokenizer",
            [
                *common,
                "--predictor_host",
                f"127.0.0.1:{free_port()}",
                "--predictor_request_retries",
                "1",
            ],
            log_dir,
            model_name="clf",
        )
        everything = [transformer, orphan]
        start_all(everything)
        try:
            yield Servers(predictor, transformer, orphan)
        finally:
            for server in everything:
                server.stop()


def post(url: str, body: Any) -> httpx.Response:
    return httpx.post(url, json=body, timeout=TIMEOUT)


def error(response: httpx.Response) -> str:
    message = response.json()["error"]
    assert isinstance(message, str)
    return message


def test_an_unreachable_predictor_is_a_bad_gateway(servers: Servers) -> None:
    for r in (
        post(servers.orphan.v1_url, {"instances": TEXTS}),
        post(
            servers.orphan.v2_url,
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
        ),
    ):
        assert r.status_code == 502, r.text
        assert error(r).startswith("the predictor at http://127.0.0.1:")
        assert "is unreachable: " in error(r)
        assert error(r).endswith("(after 2 attempts)")


def test_a_predictor_5xx_is_a_bad_gateway_naming_its_status_and_message(servers: Servers) -> None:
    servers.predictor.expect(500)
    r = post(servers.transformer.v1_url, {"instances": TEXTS})
    assert r.status_code == 502, r.text
    assert error(r).endswith(
        f"127.0.0.1:{servers.predictor.port} failed with 500: stand-in failure 500"
    )
    assert servers.predictor.calls == 1  # a 500 is not retried


def test_a_predictor_4xx_stays_what_it_was(servers: Servers) -> None:
    for status in (400, 404):
        servers.predictor.expect(status)
        r = post(servers.transformer.v1_url, {"instances": TEXTS})
        assert r.status_code == status, r.text
        assert (
            error(r)
            == f"the predictor refused the request with {status}: stand-in failure {status}"
        )
        assert servers.predictor.calls == 1


def test_calls_that_did_not_get_through_are_retried(servers: Servers) -> None:
    servers.predictor.expect(503, "drop")
    r = post(servers.transformer.v1_url, {"instances": TEXTS})
    assert r.status_code == 200, r.text
    assert [p["label"] for p in r.json()["predictions"]] == ["positive", "positive"]
    assert servers.predictor.calls == 3

    servers.predictor.expect(503, 502, 504)
    r = post(servers.transformer.v1_url, {"instances": TEXTS})
    assert r.status_code == 502, r.text
    assert error(r).endswith("failed with 504: stand-in failure 504 (after 3 attempts)")
    assert servers.predictor.calls == 3


def test_a_predictor_that_does_not_answer_in_time_is_a_gateway_timeout(servers: Servers) -> None:
    servers.predictor.expect("sleep")
    r = post(servers.transformer.v1_url, {"instances": TEXTS})
    assert r.status_code == 504, r.text
    assert error(r).endswith("did not answer within 1s")
    assert servers.predictor.calls == 1  # the timeout used the time allowed: no retry
