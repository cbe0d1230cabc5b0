"""Pure codecs of the tokenizer transformer: texts <-> tensors, logits -> top-k labels.

Everything here is a function of its arguments (no tokenizer, no I/O). Client mistakes raise
``kserve.errors.InvalidInput`` (HTTP 400) with a message saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse, RequestedOutput

from pipeline_serving.codecs import (
    ATTENTION_MASK,
    BINARY_OUTPUTS,
    INPUT_IDS,
    REVISIONS,
    TextInstance,
    instances_from_v1,
    output_array,
    pad,
    require_finite,
    softmax,
    texts_from_v2,
    v2_input,
    v2_response,
)

__all__ = [
    "LABEL_OUTPUT",
    "SCORE_OUTPUT",
    "LabelScores",
    "classification_v1",
    "classification_v2",
    "logits_from_response",
    "softmax",
    "texts_from_request",
    "tokenized_request",
    "tokenized_v1",
    "tokenized_v2",
    "top_k",
]


LABEL_OUTPUT = "label"
SCORE_OUTPUT = "score"


@dataclass(frozen=True)
class LabelScores:
    """The k best labels of one instance, best first."""

    labels: tuple[str, ...]
    scores: tuple[float, ...]


def texts_from_request(payload: object) -> tuple[list[str], list[dict[str, str]]]:
    """Texts (and per-instance revisions) of a v1 body or a v2 ``InferRequest``."""
    if isinstance(payload, InferRequest):
        texts = texts_from_v2(payload)
        return texts, [{} for _ in texts]
    instances = instances_from_v1(payload)
    texts, revisions = [], []
    for i, inst in enumerate(instances):
        if not isinstance(inst, TextInstance):
            raise InvalidInput(f"instance {i}: the tokenizer takes text, not token ids")
        texts.append(inst.text)
        revisions.append(dict(inst.revisions))
    return texts, revisions


def tokenized_request(
    rows: Sequence[Sequence[int]], model_name: str, pad_id: int, request_id: str | None = None
) -> InferRequest:
    """A v2 request with INT64 ``input_ids`` and ``attention_mask`` of shape ``[n, tokens]``.

    Both go as raw bytes after the JSON header (the v2 binary tensor extension), and the
    request asks for binary outputs too (``binary_data_output``): no tensor is JSON-encoded
    on the way to the predictor or back.
    """
    ids, mask = pad(rows, pad_id)
    return InferRequest(
        model_name=model_name,
        request_id=request_id,
        infer_inputs=[v2_input(INPUT_IDS, ids), v2_input(ATTENTION_MASK, mask)],
        parameters={BINARY_OUTPUTS: True},
    )


def tokenized_v1(
    rows: Sequence[Sequence[int]], revisions: Sequence[Mapping[str, str]], key: str = "predictions"
) -> dict[str, Any]:
    """v1 body of tokenized instances (``predictions`` for a response, ``instances`` for a
    request); a Sequence step with ``mapPredictionsToInstances`` turns one into the other."""
    items: list[dict[str, Any]] = []
    for row, revs in zip(rows, revisions, strict=True):
        item: dict[str, Any] = {INPUT_IDS: list(row), ATTENTION_MASK: [1] * len(row)}
        if revs:
            item[REVISIONS] = dict(revs)
        items.append(item)
    return {key: items}


def tokenized_v2(
    rows: Sequence[Sequence[int]],
    model_name: str,
    pad_id: int,
    request_id: str | None = None,
    binary: bool = False,
    requested: Sequence[RequestedOutput] | None = None,
) -> InferResponse:
    ids, mask = pad(rows, pad_id)
    return v2_response(
        model_name,
        {INPUT_IDS: ids, ATTENTION_MASK: mask},
        request_id,
        binary=binary,
        requested=requested,
    )


def logits_from_response(response: InferResponse | Mapping[str, Any]) -> np.ndarray:
    """``[n, labels]`` finite logits from a predictor's v2 response or v1 ``predictions``."""
    if isinstance(response, InferResponse) or "outputs" in response:
        logits = output_array(response, "logits").astype(np.float64)
    else:
        predictions = response.get("predictions")
        if not isinstance(predictions, list) or not predictions:
            raise InvalidInput("the predictor's response has no 'predictions'")
        rows = [p.get("logits") if isinstance(p, Mapping) else p for p in predictions]
        try:
            logits = np.array(rows, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"the predictor's predictions are not logits: {exc}") from exc
    if logits.ndim != 2:
        raise InvalidInput(f"logits must be [instances, labels], got shape {list(logits.shape)}")
    return require_finite(logits, "logits")


def top_k(probabilities: np.ndarray, k: int, labels: Sequence[str]) -> list[LabelScores]:
    """The ``k`` most probable labels per row, best first (ties keep the lower index)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    probs = np.asarray(probabilities, dtype=np.float64)
    k = min(k, probs.shape[-1])
    out = []
    for row in probs:
        order = np.argsort(-row, kind="stable")[:k]
        names = tuple(labels[i] if i < len(labels) else f"LABEL_{i}" for i in order)
        out.append(LabelScores(names, tuple(float(row[i]) for i in order)))
    return out


def classification_v1(
    results: Sequence[LabelScores], revisions: Sequence[Mapping[str, str]]
) -> dict[str, Any]:
    predictions: list[dict[str, Any]] = []
    for res, revs in zip(results, revisions, strict=True):
        item: dict[str, Any] = {
            "label": res.labels[0],
            "score": res.scores[0],
            "labels": list(res.labels),
            "scores": list(res.scores),
        }
        if revs:
            item[REVISIONS] = dict(revs)
        predictions.append(item)
    return {"predictions": predictions}


def classification_v2(
    results: Sequence[LabelScores],
    model_name: str,
    request_id: str | None = None,
    parameters: Mapping[str, str | int | bool] | None = None,
    binary: bool = False,
    requested: Sequence[RequestedOutput] | None = None,
) -> InferResponse:
    """Outputs ``label`` (BYTES) and ``score`` (FP32), both ``[n, k]``."""
    labels = np.array([list(r.labels) for r in results], dtype=object)
    scores = np.array([list(r.scores) for r in results], dtype=np.float32)
    return v2_response(
        model_name,
        {LABEL_OUTPUT: labels, SCORE_OUTPUT: scores},
        request_id,
        parameters,
        binary,
        requested,
    )
