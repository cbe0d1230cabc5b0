"""A KServe transformer: tokenize on the way in, softmax and top-k on the way out.

With ``--predictor_host`` it calls the predictor (v2 by default: INT64 ``input_ids`` and
``attention_mask``; or v1 ``instances``) and answers with the top-k labels in the protocol the
client used. Without a predictor host it only tokenizes: a Sequence step of an InferenceGraph
whose next step is the classifier. Its v1 answer is then ``{"instances": [...]}`` (by default),
the next step's request as it is, or ``{"predictions": [...]}`` for a graph whose next step sets
``mapPredictionsToInstances``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse, RequestedOutput
from opentelemetry.trace import SpanKind
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from pipeline_serving.codecs import (
    ATTENTION_MASK,
    INPUT_IDS,
    TEXT_INPUT,
    merge_revisions,
    tensor_metadata,
)
from pipeline_serving.errors import UpstreamError
from pipeline_serving.observability import ObservedModel, inject_trace_headers, tracer

from ..client import PredictorClient
from ..codecs import (
    LABEL_OUTPUT,
    SCORE_OUTPUT,
    classification_v1,
    classification_v2,
    logits_from_response,
    softmax,
    texts_from_request,
    tokenized_request,
    tokenized_v1,
    tokenized_v2,
    top_k,
)

DEFAULT_MAX_LENGTH = 512
# Caller headers that go on to the predictor (as KServe's own transformer forwards them).
FORWARDED = frozenset({"x-request-id", "x-b3-traceid"})


@dataclass
class _RequestState:
    """What post-processing needs to know about the request it answers."""

    v2: bool
    request_id: str | None
    rows: list[tuple[int, ...]]
    revisions: list[dict[str, str]] = field(default_factory=list)
    binary: bool = False  # a v2 client asked for binary outputs
    requested: list[RequestedOutput] | None = None  # the v2 outputs it asked for, if named


_state: contextvars.ContextVar[_RequestState] = contextvars.ContextVar("tokenizer_request")


def labels_from_config(model_dir: Path) -> list[str]:
    """Label names by index from a Hugging Face ``config.json`` (``id2label``), if any."""
    config = model_dir / "config.json"
    if not config.is_file():
        return []
    id2label = json.loads(config.read_text(encoding="utf-8")).get("id2label") or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


class TokenizerTransformer(ObservedModel):
    """Tokenizer pre-processing and softmax/top-k post-processing around a predictor."""

    stage_kind = "transformer"

    def __init__(
        self,
        name: str,
        model_dir: str,
        *,
        top_k: int = 1,
        max_length: int | None = None,
        labels: list[str] | None = None,
        predictor_model_name: str | None = None,
        revision: str | None = None,
        tokens_key: str = "instances",
    ) -> None:
        super().__init__(name, revision=revision)
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.model_dir = Path(model_dir)
        self.top_k = top_k
        self.requested_max_length = max_length
        self.max_length = max_length or DEFAULT_MAX_LENGTH
        self.labels = labels or []
        self.predictor_model_name = predictor_model_name or name
        if tokens_key not in ("instances", "predictions"):
            raise ValueError(f"tokens_key must be instances or predictions, got {tokens_key!r}")
        self.tokens_key = tokens_key
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.pad_id = 0
        self._predictor_client: PredictorClient | None = None
        self._closing: asyncio.Task[None] | None = None

    def load(self) -> bool:
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"tokenizer directory {self.model_dir} does not exist")
        self.tokenizer = AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]
            str(self.model_dir), local_files_only=True
        )
        limits = [
            n
            for n in (self.requested_max_length, self.tokenizer.model_max_length)
            if isinstance(n, int) and 0 < n < 1_000_000
        ]
        self.max_length = min(limits) if limits else DEFAULT_MAX_LENGTH
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        if not self.labels:
            self.labels = labels_from_config(self.model_dir)
        self.ready = True
        return True

    def start(self) -> None:
        """Readiness stays what :meth:`load` made it."""

    def stop(self) -> None:
        client, self._predictor_client = self._predictor_client, None
        if client is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to close in
                self._closing = asyncio.get_running_loop().create_task(client.close())
        super().stop()

    @property
    def has_predictor(self) -> bool:
        config = self.predictor_config
        return bool(config is not None and config.predictor_host)

    @property
    def predictor_v2(self) -> bool:
        config = self.predictor_config
        return config is None or config.predictor_protocol != "v1"

    def get_input_types(self) -> list[dict[str, Any]]:
        """v2 metadata: BYTES ``text``."""
        return [tensor_metadata(TEXT_INPUT, "BYTES", [-1])]

    def get_output_types(self) -> list[dict[str, Any]]:
        """v2 metadata: the top-k ``label`` and ``score``; tokenize-only, the tokens."""
        if not self.has_predictor:
            return [
                tensor_metadata(INPUT_IDS, "INT64", [-1, -1]),
                tensor_metadata(ATTENTION_MASK, "INT64", [-1, -1]),
            ]
        k = min(self.top_k, len(self.labels)) if self.labels else -1
        return [
            tensor_metadata(LABEL_OUTPUT, "BYTES", [-1, k]),
            tensor_metadata(SCORE_OUTPUT, "FP32", [-1, k]),
        ]

    def tokenize(self, texts: list[str]) -> list[tuple[int, ...]]:
        assert self.tokenizer is not None
        encoded = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        rows = [tuple(int(i) for i in ids) for ids in encoded]
        for i, row in enumerate(rows):
            if len(row) > self.max_length:
                raise InvalidInput(
                    f"instance {i} is too long: {len(row)} tokens, at most {self.max_length}"
                )
        return rows

    async def preprocess(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferRequest:
        texts, revisions = texts_from_request(payload)
        rows = self.tokenize(texts)
        is_v2 = isinstance(payload, InferRequest)
        request_id = payload.id if isinstance(payload, InferRequest) else None
        lineage = [merge_revisions(r, self.lineage_key, self.revision) for r in revisions]
        binary = isinstance(payload, InferRequest) and payload.use_binary_outputs
        requested = payload.request_outputs if isinstance(payload, InferRequest) else None
        _state.set(_RequestState(is_v2, request_id, rows, lineage, binary, requested))
        if self.has_predictor and not self.predictor_v2:
            return tokenized_v1(rows, [{}] * len(rows), key="instances")
        return tokenized_request(rows, self.predictor_model_name, self.pad_id, request_id)

    async def predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse | InferRequest:
        if not self.has_predictor:
            return payload  # tokenize-only: post-processing formats the tokens
        return await super().predict(payload, headers, response_headers)  # type: ignore[no-any-return,unused-ignore]

    @property
    def predictor_client(self) -> PredictorClient:
        config = self.predictor_config
        assert config is not None
        if self._predictor_client is None:
            self._predictor_client = PredictorClient(
                config.predictor_base_url, config.timeout, config.retries
            )
        return self._predictor_client

    async def _http_predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        """Call the predictor in a client span whose ``traceparent`` goes with the request.

        Its failures are the client's upstream errors: 502, 504, or the predictor's 4xx.
        """
        config = self.predictor_config
        assert config is not None
        outgoing = {name: value for name, value in (headers or {}).items() if name in FORWARDED}
        with tracer().start_as_current_span(
            f"call predictor {self.predictor_model_name}",
            kind=SpanKind.CLIENT,
            attributes={"server.address": str(config.predictor_host)},
        ):
            inject_trace_headers(outgoing)
            return await self.predictor_client.infer(self.predictor_model_name, payload, outgoing)

    async def postprocess(
        self,
        result: dict[str, Any] | InferResponse | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        state = _state.get()
        if not self.has_predictor:
            if state.v2:
                return tokenized_v2(
                    state.rows,
                    self.name,
                    self.pad_id,
                    state.request_id,
                    state.binary,
                    state.requested,
                )
            return tokenized_v1(state.rows, state.revisions, key=self.tokens_key)
        try:
            logits = logits_from_response(result)  # type: ignore[arg-type,unused-ignore]
        except InvalidInput as exc:  # the predictor's answer, not the caller's request
            raise UpstreamError(f"the predictor's answer is unusable: {exc}") from exc
        probabilities = softmax(logits)
        if probabilities.shape[0] != len(state.rows):
            raise UpstreamError(
                f"the predictor returned {probabilities.shape[0]} rows for {len(state.rows)} "
                "instances"
            )
        results = top_k(probabilities, self.top_k, self.labels)
        predictor_revision = _predictor_revision(result)
        lineage = [
            merge_revisions(r, f"{self.predictor_model_name}/predictor", predictor_revision)
            for r in state.revisions
        ]
        if state.v2:
            params = {k: v for k, v in lineage[0].items()} if lineage and lineage[0] else None
            return classification_v2(
                results, self.name, state.request_id, params, state.binary, state.requested
            )
        return classification_v1(results, lineage)


def _predictor_revision(result: object) -> str | None:
    if isinstance(result, InferResponse):
        params = result.parameters or {}
        value = params.get("revision") if isinstance(params, Mapping) else None
    elif isinstance(result, Mapping):
        preds = result.get("predictions")
        first = preds[0] if isinstance(preds, list) and preds else None
        revs = first.get("revisions") if isinstance(first, Mapping) else None
        value = next(iter(revs.values()), None) if isinstance(revs, Mapping) and revs else None
    else:
        value = None
    return str(value) if value else None
