"""Stages as local processes: transformer + predictor against a one-process baseline,
dynamic batching, bad input, metrics and trace propagation."""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from kserve.protocol.infer_type import InferResponse

from pipeline_serving.codecs import output_array
from pipeline_transformers.codecs import tokenized_request

from .conftest import Stages
from .harness import CORPUS, Baseline, wait_until
from .metrics import value

pytestmark = pytest.mark.dataplane

TIMEOUT = 30.0


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers, timeout=TIMEOUT)


def v2_text(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}


def test_transformer_and_predictor_match_the_baseline_v1(
    stages: Stages, baseline: Baseline
) -> None:
    r = post(stages.transformer_r1.v1_url, {"instances": CORPUS})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    expected = baseline.probabilities(CORPUS)
    for pred, probs in zip(predictions, expected, strict=True):
        order = sorted(range(len(probs)), key=lambda i: -probs[i])[:2]
        assert pred["labels"] == [baseline.labels[i] for i in order]
        assert pred["scores"] == pytest.approx([probs[i] for i in order], abs=1e-5)
        assert pred["revisions"] == {"clf/transformer": "r1", "clf/predictor": "r1"}


def test_transformer_and_predictor_match_the_baseline_v2(
    stages: Stages, baseline: Baseline
) -> None:
    r = post(stages.transformer_r1.v2_url, v2_text(CORPUS[:4]))
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    assert outputs["label"]["shape"] == [4, 2]
    top1 = [label for label, _ in baseline.top1(CORPUS[:4])]
    assert outputs["label"]["data"][0::2] == top1
    assert outputs["score"]["data"][0::2] == pytest.approx(
        [p for _, p in baseline.top1(CORPUS[:4])], abs=1e-5
    )


def test_classifier_takes_text_or_token_ids_alike(stages: Stages, baseline: Baseline) -> None:
    url = stages.classifier_r2.v1_url
    text = CORPUS[0]
    ids = baseline.tokenizer(text)["input_ids"]
    by_text = post(url, {"instances": [text]}).json()["predictions"][0]
    by_ids = post(
        url, {"instances": [{"input_ids": [*ids, 0, 0], "attention_mask": [1] * len(ids) + [0, 0]}]}
    ).json()["predictions"][0]
    assert by_text["probabilities"] == pytest.approx(by_ids["probabilities"], abs=1e-6)
    v2 = post(
        stages.classifier_r2.v2_url,
        {
            "inputs": [
                {"name": "input_ids", "shape": [1, len(ids)], "datatype": "INT64", "data": ids}
            ]
        },
    ).json()
    probs = next(o for o in v2["outputs"] if o["name"] == "probabilities")["data"]
    assert probs == pytest.approx(by_text["probabilities"], abs=1e-5)
    assert v2["parameters"] == {"revision": "r2"}


def test_the_predictor_takes_and_gives_binary_tensors(
    stages: Stages, baseline_r2: Baseline
) -> None:
    """The v2 binary tensor extension, as the transformer calls its predictor."""
    tokenizer = baseline_r2.tokenizer
    ids = [tokenizer(text)["input_ids"] for text in CORPUS[:3]]
    body, json_length = tokenized_request(ids, "clf", tokenizer.pad_token_id).to_rest()
    r = httpx.post(
        stages.classifier_r2.v2_url,
        content=body,
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(json_length),
        },
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text
    length = int(r.headers["inference-header-content-length"])
    assert length < len(r.content)  # raw output tensors after the JSON header
    probabilities = output_array(InferResponse.from_bytes(r.content, length), "probabilities")
    expected = baseline_r2.probabilities(CORPUS[:3])
    for got, want in zip(probabilities.tolist(), expected, strict=True):
        assert got == pytest.approx(want, abs=1e-5)


def test_dynamic_batching_groups_concurrent_requests(stages: Stages, baseline: Baseline) -> None:
    clf = stages.classifier_r1
    texts = (CORPUS * 2)[:16]
    # One at a time: every forward pass holds one instance (the unbatched reference).
    alone = [post(clf.v1_url, {"instances": [t]}).json()["predictions"][0] for t in texts]
    count_before = value(clf.url, "pipeline_stage_batch_size_count", component="predictor")
    sum_before = value(clf.url, "pipeline_stage_batch_size_sum", component="predictor")
    with ThreadPoolExecutor(len(texts)) as pool:
        responses = list(pool.map(lambda t: post(clf.v1_url, {"instances": [t]}), texts))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    batches = (
        value(clf.url, "pipeline_stage_batch_size_count", component="predictor") - count_before
    )
    instances = value(clf.url, "pipeline_stage_batch_size_sum", component="predictor") - sum_before
    assert instances == len(texts)
    assert batches < len(texts), "no two concurrent requests shared a forward pass"
    assert instances / batches > 1
    together = [r.json()["predictions"][0] for r in responses]
    for a, b, expected in zip(alone, together, baseline.probabilities(texts), strict=True):
        assert a["label"] == b["label"]
        assert b["probabilities"] == pytest.approx(a["probabilities"], abs=1e-5)
        assert b["probabilities"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("body", "v2", "message"),
    [
        ({"instances": [42]}, False, "instance 0: expected a string"),
        ({"instances": []}, False, '"instances" is empty'),
        ({"instances": [""]}, False, "instance 0 is an empty string"),
        ({"instances": ["word " * 200]}, False, "instance 0 is too long: 202 tokens, at most 64"),
        ({"text": "no instances key"}, False, '"instances" list'),
        (
            {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
            True,
            "must be BYTES",
        ),
        (
            {"inputs": [{"name": "other", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
            True,
            "expected a BYTES input named 'text'",
        ),
        (
            {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["x"]}]},
            True,
            "does not match shape",
        ),
        ({"inputs": "not a list"}, True, "inputs"),
    ],
)
def test_bad_input_is_a_4xx_that_says_why(
    stages: Stages, body: Any, v2: bool, message: str
) -> None:
    tf = stages.transformer_r1
    r = post(tf.v2_url if v2 else tf.v1_url, body)
    assert 400 <= r.status_code < 500, r.text
    assert message in r.json().get("error", r.text)
    ok = post(tf.v1_url, {"instances": ["still serving"]})
    assert ok.status_code == 200, ok.text


def test_metrics_are_exported(stages: Stages) -> None:
    tf, clf = stages.transformer_r1, stages.classifier_r1
    post(tf.v1_url, {"instances": ["count me"]})
    post(tf.v1_url, {"instances": [7]})
    assert (
        value(tf.url, "pipeline_stage_requests_total", component="transformer", outcome="ok") >= 1
    )
    assert value(tf.url, "pipeline_stage_errors_total", kind="invalid_input") >= 1
    assert (
        value(tf.url, "pipeline_stage_request_duration_seconds_count", component="transformer") >= 2
    )
    assert (
        value(clf.url, "pipeline_stage_requests_total", component="predictor", protocol="v2") >= 1
    )
    assert value(clf.url, "pipeline_stage_batch_size_count") >= 1
    # KServe's own per-step histograms are served on the same endpoint.
    assert value(clf.url, "request_predict_seconds_count", model_name="clf") >= 1


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ancestors(span: dict[str, Any], spans: list[dict[str, Any]]) -> list[str]:
    """Span ids from ``span``'s parent up to the first parent that is not in ``spans``."""
    by_id = {s["span_id"]: s for s in spans}
    chain, parent = [], span["parent_span_id"]
    while parent is not None:
        chain.append(parent)
        parent = by_id[parent]["parent_span_id"] if parent in by_id else None
    return chain


def test_traceparent_propagates_from_client_to_predictor(stages: Stages) -> None:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    r = post(stages.transformer_r1.v1_url, {"instances": ["trace me"]}, headers)
    assert r.status_code == 200, r.text

    def spans() -> list[dict[str, Any]]:
        files = ("transformer-r1", "classifier-r1")
        found = [s for f in files for s in read_spans(stages.trace_dir / f"{f}.jsonl")]
        return [s for s in found if s["trace_id"] == trace_id]

    def named(name: str) -> dict[str, Any] | None:
        return next((s for s in spans() if s["name"] == name), None)

    wait_until(
        lambda: named("predictor clf") is not None and named("transformer clf") is not None,
        10.0,
        "the spans of the traced request",
        lambda: None,
    )
    everything = spans()
    transformer, client, predictor = (
        named("transformer clf"),
        named("call predictor clf"),
        named("predictor clf"),
    )
    assert transformer is not None
    assert client is not None
    assert predictor is not None
    assert client["kind"] == "CLIENT"
    # One trace: caller -> transformer stage -> client call -> predictor stage.
    assert ancestors(transformer, everything)[-1] == parent_id
    assert transformer["span_id"] in ancestors(client, everything)
    assert client["span_id"] in ancestors(predictor, everything)
    assert predictor["attributes"]["pipeline.revision"] == "r1"
    assert transformer["service"] == "transformer/clf"
    assert predictor["service"] == "classifier/clf"
