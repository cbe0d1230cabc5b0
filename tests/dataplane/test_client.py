"""The transformer's predictor client against a stand-in predictor (aiohttp's test server)."""

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
from pipeline_transformers.client import PredictorClient, PredictorError
from pipeline_transformers.codecs import tokenized_request

pytestmark = pytest.mark.dataplane

T = TypeVar("T")
HEADER = "inference-header-content-length"
LOGITS = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)


async def predictor(request: web.Request) -> web.Response:
    """Says what it got: v1 JSON echoed in ``predictions``; v2 answered in binary tensors."""
    body = await request.read()
    if request.path.startswith("/v1/"):
        payload = orjson.loads(body)
        if payload["instances"] == ["bad"]:
            return web.json_response({"error": "instance 0 is bad"}, status=400)
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


def serve(check: Callable[[PredictorClient], Awaitable[T]]) -> T:
    async def main() -> T:
        app = web.Application()
        app.router.add_post("/v1/models/{name}:predict", predictor)
        app.router.add_post("/v2/models/{name}/infer", predictor)
        runner = web.AppRunner(app)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        port = sock.getsockname()[1]
        client = PredictorClient(f"http://127.0.0.1:{port}", timeout_s=10)
        try:
            return await check(client)
        finally:
            await client.close()
            await runner.cleanup()

    return asyncio.run(asyncio.wait_for(main(), timeout=20))


def test_v2_requests_and_answers_travel_as_binary_tensors() -> None:
    async def check(client: PredictorClient) -> Any:
        request = tokenized_request([(2, 7, 3), (2, 3)], "clf", pad_id=0)
        return await client.infer("clf", request, {"x-request-id": "r1"})

    answer = serve(check)
    assert isinstance(answer, InferResponse)
    assert answer.parameters == {
        "content_type": "application/octet-stream",
        "binary_outputs": True,
        "request_id": "r1",
    }
    np.testing.assert_array_equal(output_array(answer, "logits"), LOGITS)
    assert output_array(answer, "ids").tolist() == [[2, 7, 3], [2, 3, 0]]


def test_v1_bodies_go_as_json_and_errors_say_why() -> None:
    async def check(client: PredictorClient) -> tuple[Any, PredictorError]:
        ok = await client.infer("clf", {"instances": ["fine"]}, {})
        with pytest.raises(PredictorError) as failed:
            await client.infer("clf", {"instances": ["bad"]}, {})
        return ok, failed.value

    ok, error = serve(check)
    assert ok == {
        "predictions": [{"path": "/v1/models/clf:predict", "content_type": "application/json"}]
    }
    assert error.status == 400
    assert error.message == "instance 0 is bad"
