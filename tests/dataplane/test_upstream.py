"""Failures as local processes answer them: a transformer names its predictor's failures with
gateway statuses (502, 504; the predictor's 4xx as it was) and retries calls that did not get
through; a predictor refuses non-finite inputs and fails non-finite outputs; every server caps
the instances of a request.

The transformer's predictor is a stand-in here (an aiohttp app in a thread of the test
process), told per test how to answer and counting the calls it gets, or a closed port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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

from pipeline_serving.codecs import v2_input, v2_response

from .conftest import Models
from .harness import Stage, build_classifier, free_port, stage, start_all

pytestmark = pytest.mark.dataplane

TIMEOUT = 30.0
HEADER = "inference-header-content-length"
TEXTS = ["the first text", "the second one"]


@dataclass
class StandIn:
    """A predictor that answers each call as the next entry of ``script`` says (logits once the
    script is done): ``503`` (an HTTP status, with a KServe error body), ``"nan"`` (logits
    with a NaN), ``"sleep"`` (2 s, longer than the transformer waits), ``"drop"`` (closes the
    connection unanswered)."""

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
        if how == "nan":
            logits[-1, 1] = np.nan
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
    transformer: Stage  # in front of the stand-in: 2 retries, 1 s timeout, 4 instances at most
    orphan: Stage  # in front of a closed port, 1 retry
    classifier: Stage  # a model whose weights are NaN: every answer it computes is NaN


@pytest.fixture(scope="module")
def servers(
    models: Models, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    nan_model = tmp_path_factory.mktemp("nan-model") / "classifier"
    build_classifier(
        nan_model, seed=1, tokenizer_dir=models.root / "tokenizer", decisiveness=np.nan
    )
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
                "--max_instances",
                "4",
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
        classifier = stage(
            "classifier-nan",
            "pipeline_predictors.classifier",
            ["--model_dir", str(nan_model), "--num_threads", "1", "--max_batch_size", "1"],
            log_dir,
            model_name="clf",
        )
        everything = [transformer, orphan, classifier]
        start_all(everything)
        try:
            yield Servers(predictor, transformer, orphan, classifier)
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


def test_non_finite_logits_from_the_predictor_are_a_bad_gateway(servers: Servers) -> None:
    servers.predictor.expect("nan")
    r = post(servers.transformer.v1_url, {"instances": TEXTS})
    assert r.status_code == 502, r.text
    assert error(r) == (
        "the predictor's answer is unusable: tensor 'logits' has a non-finite value: nan at [1, 1]"
    )


def test_more_instances_than_the_cap_are_refused(servers: Servers) -> None:
    servers.predictor.expect()
    r = post(servers.transformer.v1_url, {"instances": ["text"] * 5})
    assert r.status_code == 400, r.text
    assert error(r) == "the request has 5 instances; this server takes at most 4 (--max_instances)"
    assert servers.predictor.calls == 0
    assert post(servers.transformer.v1_url, {"instances": ["text"] * 4}).status_code == 200
    big = {"inputs": [{"name": "text", "shape": [2000], "datatype": "BYTES", "data": ["t"] * 2000}]}
    r = post(servers.classifier.v2_url, big)  # the default cap: 1024
    assert r.status_code == 400, r.text
    assert "has 2000 instances; this server takes at most 1024" in error(r)


def test_a_model_that_computes_nan_fails_naming_the_output(servers: Servers) -> None:
    r = post(servers.classifier.v1_url, {"instances": TEXTS})
    assert r.status_code == 500, r.text
    assert error(r) == "predictor clf produced a non-finite output: predictions[0].score is nan"
    r = post(
        servers.classifier.v2_url,
        {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
    )
    assert r.status_code == 500, r.text
    assert error(r) == "predictor clf produced a non-finite output: output 'logits': nan at [0, 0]"


def test_non_finite_inputs_are_refused_naming_the_input(servers: Servers) -> None:
    """In JSON (a v2 body may carry NaN and Infinity literals) and in binary tensors."""
    ids = {"name": "input_ids", "shape": [1, 2], "datatype": "INT64", "data": [2, 3]}
    mask = {"name": "attention_mask", "shape": [1, 2], "datatype": "FP32", "data": [1.0, "NAN"]}
    body = json.dumps({"inputs": [ids, mask]}).replace('"NAN"', "NaN")
    r = httpx.post(
        servers.classifier.v2_url,
        content=body,
        headers={"content-type": "application/json"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 400, r.text
    assert error(r) == "tensor 'attention_mask' has a non-finite value: nan at [0, 1]"
    binary, length = InferRequest(
        "clf",
        [
            v2_input("input_ids", np.array([[2, 3]])),
            v2_input("attention_mask", np.array([[np.inf, 1.0]], dtype=np.float32)),
        ],
    ).to_rest()
    r = httpx.post(
        servers.classifier.v2_url,
        content=binary,
        headers={"content-type": "application/octet-stream", HEADER: str(length)},
        timeout=TIMEOUT,
    )
    assert r.status_code == 400, r.text
    assert error(r) == "tensor 'attention_mask' has a non-finite value: inf at [0, 0]"
