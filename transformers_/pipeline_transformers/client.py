"""The transformer's HTTP client for its predictor: v1 JSON, or v2 with binary tensors.

aiohttp (a KServe dependency) rather than KServe's httpx-based ``InferenceRESTClient``: on a
loopback call it costs about a millisecond less per request, which is most of what a hop may
add. A v2 request whose tensors are raw (``InferRequest.to_rest`` returns bytes) goes with the
``Inference-Header-Content-Length`` header of the binary tensor extension, and a binary answer
is decoded by the same header. The predictor's response headers are not relayed to the
transformer's caller (a binary predictor answer's content type would mislabel a JSON one).

Failures are raised as the errors of :mod:`pipeline_serving.errors`, which say whose they are:
the predictor's 4xx is relayed as it was, a 5xx, an unreadable answer or an unreachable
predictor is a 502, no answer in time a 504. Inference has no side effects, so a call that did
not get through (a connection failure, a 502, 503 or 504 answer) is retried, up to
``retries`` times, while the time allowed for the call (one budget for every attempt) lasts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, TypeAlias

import aiohttp
import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.protocol.infer_type import InferRequest, InferResponse

from pipeline_serving.errors import UpstreamError, UpstreamInvalidInput, UpstreamTimeoutError

log = logging.getLogger(__name__)

# What a gateway or a predictor that is not serving (starting, overloaded) answers: worth a retry.
RETRIED_STATUSES = frozenset({502, 503, 504})
FIRST_BACKOFF_S = 0.05  # doubled after every retry

Answer: TypeAlias = dict[str, Any] | InferResponse


class _TransientError(Exception):
    """An attempt that did not get through to the predictor: another one may."""


def error_message(body: bytes) -> str:
    """The ``error`` of a KServe error body, else the start of the body."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:500].decode("utf-8", "replace")
    if isinstance(parsed, Mapping) and "error" in parsed:
        return str(parsed["error"])
    return str(parsed)[:500]


class PredictorClient:
    """Calls one predictor; one connection pool, created in the serving event loop.

    ``timeout_s`` bounds a whole call, retries included (None or 0: no bound); ``retries`` is
    how many more attempts a call that did not get through may make.
    """

    def __init__(
        self,
        base_url: str,
        timeout_s: float | None,
        retries: int = 0,
        first_backoff_s: float = FIRST_BACKOFF_S,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.first_backoff_s = first_backoff_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def infer(
        self,
        model_name: str,
        payload: Mapping[str, Any] | InferRequest,
        headers: Mapping[str, str],
    ) -> Answer:
        """POST a v1 body or a v2 request; the answer as a dict (v1) or an ``InferResponse``.

        Raises ``UpstreamInvalidInput`` with the predictor's 4xx status, ``UpstreamTimeoutError``
        when the time allowed ran out, and ``UpstreamError`` for anything else that failed
        (after the retries that the time allowed).
        """
        outgoing = dict(headers)
        if isinstance(payload, InferRequest):
            url = f"{self.base_url}/v2/models/{model_name}/infer"
            rest, json_length = payload.to_rest()
            if json_length is None:
                body = orjson.dumps(rest)
                outgoing["Content-Type"] = "application/json"
            else:
                body = rest
                outgoing["Content-Type"] = "application/octet-stream"
                outgoing[INFERENCE_CONTENT_LENGTH_HEADER] = str(json_length)
        else:
            url = f"{self.base_url}/v1/models/{model_name}:predict"
            body = orjson.dumps(payload)
            outgoing["Content-Type"] = "application/json"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s if self.timeout_s else None
        backoff = self.first_backoff_s
        attempt = 1
        while True:
            try:
                return await self._attempt(url, body, outgoing, payload, deadline)
            except _TransientError as failed:
                failure = failed
            out_of_time = deadline is not None and loop.time() + backoff >= deadline
            if attempt > self.retries or out_of_time:
                attempts = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise UpstreamError(f"{failure}{attempts}") from failure.__cause__
            log.warning("%s; retry %d of %d", failure, attempt, self.retries)
            await asyncio.sleep(backoff)
            attempt += 1
            backoff *= 2

    async def _attempt(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        payload: Mapping[str, Any] | InferRequest,
        deadline: float | None,
    ) -> Answer:
        """One POST; :class:`_TransientError` when it did not get through."""
        where = f"the predictor at {self.base_url}"
        remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
        if remaining is not None and remaining <= 0:  # aiohttp takes a total of 0 as no bound
            raise UpstreamTimeoutError(f"{where} did not answer within {self.timeout_s}s")
        try:
            async with self._client().post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=remaining)
            ) as response:
                status, content = response.status, await response.read()
                length = response.headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        except TimeoutError as exc:  # aiohttp's timeouts are connection errors too: first
            raise UpstreamTimeoutError(f"{where} did not answer within {self.timeout_s}s") from exc
        except aiohttp.ClientConnectionError as exc:
            raise _TransientError(f"{where} is unreachable: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{where} sent an unreadable answer: {exc}") from exc
        if status >= 500:
            failure = f"{where} failed with {status}: {error_message(content)}"
            if status in RETRIED_STATUSES:
                raise _TransientError(failure)
            raise UpstreamError(failure)
        if status >= 400:
            raise UpstreamInvalidInput(
                f"the predictor refused the request with {status}: {error_message(content)}",
                status,
            )
        try:
            if isinstance(payload, InferRequest):
                return InferResponse.from_bytes(
                    content, int(length) if length is not None else len(content)
                )
            answer = orjson.loads(content)
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"{where} sent an unreadable answer: {exc}") from exc
        if not isinstance(answer, dict):
            raise UpstreamError(f"{where} sent an unreadable answer: not a JSON object")
        return answer

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
