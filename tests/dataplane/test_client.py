"""The transformer's predictor client against a stand-in predictor (aiohttp's test server):
binary tensors, failures named by whose they are, retries of calls that did not get through."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import orjson
import pytest
from aiohttp import web
from kserve.protocol.infer_type import InferRequest, InferResponse

from pipeline_serving.codecs import output_array, v2_response
from pipeline_serving.errors import UpstreamError, UpstreamInvalidInput, UpstreamTimeoutError
from pipeline_transformers.client import PredictorClient
from pipeline_transformers.codecs import tokenized_request

from .harness import free_port

pytestmark = pytest.mark.dataplane

T = TypeVar("T")
HEADER = "inference-header-content-length"
LOGITS = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)


async def predictor(request: web.Request) -> web.Response:
    """Says what it got: v1 JSON echoed in ``predictions``; v2 answered in binary tensors.

    The first v1 instance may say how to fail instead: ``status 503`` (and a KServe error
    body), ``sleep`` (1 s, then answers), ``drop`` (closes the connection), ``garbage`` (a 200
    that is no JSON). Every request is counted in the app's ``calls``.
    """
    request.app[CALLS].append(request.path)
    body = await request.read()
    if request.path.startswith("/v1/"):
        payload = orjson.loads(body)
        first = payload["instances"][0]
        if payload["instances"] == ["bad"]:
            return web.json_response({"error": "instance 0 is bad"}, status=400)
        failures = request.app[FAILURES]
        how = failures.pop(0) if failures else first
        if how.startswith("status "):
            status = int(how.split()[1])
            return web.json_response({"error": f"stand-in says {status}"}, status=status)
        if how == "sleep":
            await asyncio.sleep(1.0)
        if how == "drop":
            assert request.transport is not None
            request.transport.close()
        if how == "garbage":
            return web.Response(body=b"<html>not json</html>")
        seen = {"path": request.path, "content_type": request.content_type}
        return web.json_response({"predictions": [seen]})
    decoded = InferRequest.from_bytes(body, int(request.headers[HEADER]), "clf")
    got = {
        "content_type": request.content_type,
        "binary_outputs": decoded.use_binary_outputs,
        "request_id": request.headers["x-request-id"],
    }
    answer = v2_response(
        "clf", {"logits": LOGITS, "ids": decoded.inputs[0].as_numpy()}, decoded.id, got, True
    )
    data, json_length = answer.to_rest()
    return web.Response(body=data, headers={HEADER: str(json_length)})


CALLS = web.AppKey("calls", list[str])
FAILURES = web.AppKey("failures", list[str])  # how the next requests fail, in turn


def serve(
    check: Callable[[PredictorClient], Awaitable[T]],
    timeout_s: float = 10,
    retries: int = 0,
    failures: list[str] | None = None,
    first_backoff_s: float = 0.01,
) -> tuple[T, list[str]]:
    """``check``'s result against the stand-in, and the paths of the requests it got."""

    async def main() -> tuple[T, list[str]]:
        app = web.Application()
        app[CALLS] = []
        app[FAILURES] = list(failures or [])
        app.router.add_post("/v1/models/{name}:predict", predictor)
        app.router.add_post("/v2/models/{name}/infer", predictor)
        runner = web.AppRunner(app)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        port = sock.getsockname()[1]
        client = PredictorClient(f"http://127.0.0.1:{port}", timeout_s, retries, first_backoff_s)
        try:
            return await check(client), app[CALLS]
        finally:
            await client.close()
            await runner.cleanup()

    return asyncio.run(asyncio.wait_for(main(), timeout=20))


def failing(instance: str, error: type[Exception]) -> Callable[[PredictorClient], Awaitable[Any]]:
    """A check that expects one v1 call of ``instance`` to raise ``error``; returns it."""

    async def check(client: PredictorClient) -> Exception:
        with pytest.raises(error) as failed:
            await client.infer("clf", {"instances": [instance]}, {})
        return failed.value

    return check


def v1_call(client: PredictorClient) -> Awaitable[Any]:
    return client.infer("clf", {"instances": ["fine"]}, {})


def test_v2_requests_and_answers_travel_as_binary_tensors() -> None:
    async def check(client: PredictorClient) -> Any:
        request = tokenized_request([(2, 7, 3), (2, 3)], "clf", pad_id=0)
        return await client.infer("clf", request, {"x-request-id": "r1"})

    answer, _ = serve(check)
    assert isinstance(answer, InferResponse)
    assert answer.parameters == {
        "content_type": "application/octet-stream",
        "binary_outputs": True,
        "request_id": "r1",
    }
    np.testing.assert_array_equal(output_array(answer, "logits"), LOGITS)
    assert output_array(answer, "ids").tolist() == [[2, 7, 3], [2, 3, 0]]


def test_v1_bodies_go_as_json_and_errors_say_why() -> None:
    async def check(client: PredictorClient) -> tuple[Any, Exception]:
        ok = await v1_call(client)
        return ok, await failing("bad", UpstreamInvalidInput)(client)

    (ok, error), _ = serve(check)
    assert ok == {
        "predictions": [{"path": "/v1/models/clf:predict", "content_type": "application/json"}]
    }
    assert isinstance(error, UpstreamInvalidInput)
    assert error.status_code == 400
    assert str(error) == "the predictor refused the request with 400: instance 0 is bad"


@pytest.mark.parametrize("status", [400, 404, 422, 429])
def test_a_4xx_keeps_its_status_and_is_not_retried(status: int) -> None:
    error, calls = serve(failing(f"status {status}", UpstreamInvalidInput), retries=3)
    assert error.status_code == status
    assert f"with {status}: stand-in says {status}" in str(error)
    assert len(calls) == 1


@pytest.mark.parametrize("status", [500, 501])
def test_a_5xx_that_is_not_transient_fails_at_once_naming_it(status: int) -> None:
    error, calls = serve(failing(f"status {status}", UpstreamError), retries=3)
    assert str(error).endswith(f"failed with {status}: stand-in says {status}")
    assert "the predictor at http://127.0.0.1:" in str(error)
    assert len(calls) == 1


@pytest.mark.parametrize("how", ["status 502", "status 503", "status 504", "drop"])
def test_a_call_that_did_not_get_through_is_retried(how: str) -> None:
    answer, calls = serve(v1_call, retries=2, failures=[how, how])
    assert answer["predictions"][0]["path"] == "/v1/models/clf:predict"
    assert len(calls) == 3


def test_retries_end_with_the_last_failure_and_the_attempts() -> None:
    error, calls = serve(failing("status 503", UpstreamError), retries=2)
    assert type(error) is UpstreamError
    assert str(error).endswith("failed with 503: stand-in says 503 (after 3 attempts)")
    assert len(calls) == 3
    error, calls = serve(failing("status 503", UpstreamError))  # no retries by default
    assert "attempts" not in str(error)
    assert len(calls) == 1


def test_a_timeout_is_a_gateway_timeout_and_is_not_retried() -> None:
    error, calls = serve(failing("sleep", UpstreamTimeoutError), timeout_s=0.3, retries=3)
    assert error.status_code == 504
    assert "did not answer within 0.3s" in str(error)
    assert len(calls) == 1


def test_retries_stop_when_the_time_allowed_would_run_out() -> None:
    """The timeout covers every attempt: no retry waits past it."""
    error, calls = serve(
        failing("status 503", UpstreamError), timeout_s=0.5, retries=5, first_backoff_s=0.3
    )
    assert str(error).endswith("stand-in says 503 (after 2 attempts)")  # 0.3 s, then 0.6 s
    assert len(calls) == 2


def test_an_unreadable_answer_is_a_bad_gateway() -> None:
    error, calls = serve(failing("garbage", UpstreamError), retries=2)
    assert "sent an unreadable answer" in str(error)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("host", "retries", "attempts"),
    [(f"127.0.0.1:{free_port()}", 2, " (after 3 attempts)"), ("predictor.invalid:80", 0, "")],
)
def test_an_unreachable_predictor_is_a_bad_gateway(host: str, retries: int, attempts: str) -> None:
    """A closed port, a name that does not resolve."""

    async def main() -> Exception:
        client = PredictorClient(f"http://{host}", 5, retries, first_backoff_s=0.01)
        try:
            return await failing("fine", UpstreamError)(client)
        finally:
            await client.close()

    error = asyncio.run(asyncio.wait_for(main(), timeout=20))
    assert type(error) is UpstreamError
    assert str(error).startswith(f"the predictor at http://{host} is unreachable: ")
    assert str(error).endswith(attempts)
